"""The whole REST API fuzzed from its own OpenAPI schema (schemathesis): no operation answers a server error.

Requests carry a team member's token, and their ids and fields are steered, half the time, to the team's
real things (a notebook and its cells, datasets, a run and its artifact, a campaign with items, an upload),
so that they reach the code behind authentication and lookups. Each request runs in a savepoint rolled
back after it: a DELETE or a POST never changes what the next request meets. Hypothesis is derandomized,
so every run sends the same requests.
"""

import os
import traceback

import pytest
import schemathesis
from django.core.signals import got_request_exception, request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.test import Client
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from lab.datasets.actions import create_dataset_from_path
from lab.datasets.uploads import start_upload
from lab.feedback.assignment import record_vote, take_items
from lab.runs.models import Artifact, Run
from tests.builders import shakespeare_notebook
from tests.feedback.builders import campaign_with_items

pytestmark = pytest.mark.django_db

# Examples per operation: about 40 operations x 30 requests run in well under a minute. A deeper search,
# other requests each time:
#   LAB_FUZZ_EXAMPLES=500 LAB_FUZZ_SEED=$RANDOM .venv/bin/python -m pytest --timeout 0 tests/lab/test_api_fuzz.py
EXAMPLES = int(os.environ.get("LAB_FUZZ_EXAMPLES") or 30)
SEED = os.environ.get("LAB_FUZZ_SEED")


@pytest.fixture
def things(cast, sample_data, settings):
    """The team's things, as the app makes them; alice also annotates, so her votes reach the queue."""
    cells = shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])
    notebook = cells.pop("notebook")
    sft = create_dataset_from_path(cast.team, cast.alice, sample_data["sft/dolly-2k.jsonl"])
    preference = create_dataset_from_path(cast.team, cast.alice, sample_data["preference/hh-harmless-test-1811.prompt.jsonl"])
    run = Run.objects.create(team=cast.team, cell=cells["tokenizer"], stage="tokenizer", config={}, status="succeeded")
    run.append_event("log", level="info", message="trained")
    folder = settings.LAB_DATA_DIR / "runs" / str(run.pk)
    folder.mkdir(parents=True)
    (folder / "tokenizer.json").write_text("{}")
    artifact = Artifact.objects.create(team=cast.team, run=run, kind="tokenizer", name="tok",
                                       path=f"runs/{run.pk}/tokenizer.json", sha256="0" * 64)
    queued = Run.objects.create(team=cast.team, cell=cells["pretrain"], stage="pretrain", config={}, status="queued")
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob, cast.alice])
    record_vote(campaign, cast.bob, take_items(campaign, cast.bob)[0].item_id, "left")  # statistics to compute
    take_items(campaign, cast.alice)  # items alice holds, to vote on or skip
    upload = start_upload(cast.alice, "poems.txt", 64)
    datasets = [cells["corpus"].config["corpus"], sft.pk, preference.pk]
    return {
        # path parameter `id`, by the collection the path names
        "ids": {
            "artifacts": [artifact.pk], "campaigns": [campaign.pk], "cells": [c.pk for c in cells.values()],
            "datasets": datasets, "notebooks": [notebook.pk], "runs": [run.pk, queued.pk], "uploads": [str(upload.pk)],
        },
        # body fields naming one of the team's things
        "fields": {
            "team": [cast.team.pk], "item": list(campaign.items.values_list("pk", flat=True)),
            "annotators": [[cast.bob.pk], [cast.bob.pk, cast.carol.pk]], "source_run": [run.pk],
        },
        "configs": [(c.kind, c.config) for c in cells.values()],
        "token": Token.objects.create(user=cast.alice).key,
        # A DELETE removes the upload's file with its row, and only the row comes back with the rollback.
        "files": [upload.part_path],
    }


class ServerErrors:
    """Tracebacks of the exceptions Django turned into 500s, by the request that raised them."""

    def __init__(self):
        self.last = ""

    def __call__(self, sender, request=None, **kwargs):
        self.last = traceback.format_exc()


@pytest.fixture
def wsgi_app():
    """Django's WSGI application in this thread, on the test's connection: as Django's test client does,
    requests must not close the connection (and with it the test's transaction) when they start or end."""
    errors = ServerErrors()
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    got_request_exception.connect(errors)
    try:
        yield get_wsgi_application(), errors
    finally:
        got_request_exception.disconnect(errors)
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def steer(case, things, data) -> None:
    """Half the time, an id or a field names one of the team's real things instead of a generated value."""
    # New dicts, never edits of the generated ones: Hypothesis may hand the same object again, and a
    # replay must draw exactly as the first run did.
    collection = case.operation.path.split("/")[2]
    if "id" in case.path_parameters and data.draw(st.booleans()):
        case.path_parameters = {**case.path_parameters, "id": data.draw(st.sampled_from(things["ids"][collection]))}
    if not isinstance(case.body, dict):
        return
    body = dict(case.body)
    for field, values in things["fields"].items():
        if field in body and data.draw(st.booleans()):
            body[field] = data.draw(st.sampled_from(values))
    if "config" in body and data.draw(st.booleans()):
        # a real cell's config, the generated keys over it
        kind, config = data.draw(st.sampled_from(things["configs"]))
        body["config"] = {**config, **body["config"]} if isinstance(body["config"], dict) else config
        if "kind" in body:
            body["kind"] = kind
    case.body = body


def fuzz(operation, things, errors) -> str | None:
    """Runs the operation's examples; the first server error, described, or None."""
    auth = {"Authorization": f"Token {things['token']}"}
    cases = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                      operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    found = []

    @hypothesis_settings(max_examples=EXAMPLES, derandomize=SEED is None, database=None, deadline=None,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @seed(int(SEED or 0))
    @given(case=cases, data=st.data())
    def examples(case, data):
        steer(case, things, data)
        errors.last = ""
        for path in things["files"]:
            path.touch()
        with transaction.atomic():
            response = case.call(headers=auth)
            transaction.set_rollback(True)
        if response.status_code >= 500:
            found.append(f"{case.as_curl_command(headers=auth)}\n{errors.last or response.text}")
        case.validate_response(response, checks=[not_a_server_error], headers=auth)

    try:
        examples()
    except BaseExceptionGroup:  # schemathesis' FailureGroup of the checks that failed
        if not found:
            raise
        return found[0]
    return None


def test_no_operation_of_the_api_answers_a_server_error(things, wsgi_app):
    app, errors = wsgi_app
    schema = schemathesis.openapi.from_wsgi("/api/schema/", app)
    failures = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if (failure := fuzz(operation, things, errors)) is not None:
            failures[operation.label] = failure

    assert not failures, f"{len(failures)} operations answered a server error:\n\n" + "\n\n".join(
        f"{label}\n{failure}" for label, failure in failures.items())


def test_an_empty_chunk_appends_nothing(cast):
    """Found by the fuzz: DRF gives no stream for an empty body, and the upload view read from None."""
    upload = start_upload(cast.alice, "poems.txt", 64)
    client = Client(headers={"Authorization": f"Token {Token.objects.create(user=cast.alice).key}"})

    response = client.patch(f"/api/uploads/{upload.pk}/?offset=0", b"", content_type="application/octet-stream")

    assert response.status_code == 200 and response.json()["offset"] == 0
