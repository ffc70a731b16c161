"""Compare runs: the picked runs of one team overlaid (curves by step, tokens or time), the last and
best of each metric, only the config that differs, and the samples written at the same step; reached
from the notebook and the run page. Another team's run is a 404, a bad or excess id a 400 naming it."""

import json
from html import unescape
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils import timezone

from lab.notebooks.models import Cell, Notebook
from lab.runs.compare import MAX_RUNS
from lab.runs.models import Artifact, Run
from tests.builders import FAST_PRETRAIN

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999"  # past 2**64


def stored_run(team, cell, config: dict, events: list[dict], stage: str = "pretrain") -> Run:
    """A run whose worker stored `events` (seq and t added) through the run's own path, then succeeded."""
    run = Run.objects.create(team=team, cell=cell, stage=stage, config=config, admitted_at=timezone.now())
    token = run.claim("test-worker", 60)
    run.store_events([{"seq": i, "t": 1_000.0 + 2 * i, **event} for i, event in enumerate(events, 1)], token)
    run.finish(token, "succeeded")
    return run


def pretrain_events(losses: list[float], val_losses: dict[int, float], samples: dict[int, str], tokens_per_step: int = 512,
                    checkpoint_perplexities: dict[int, float] | None = None) -> list[dict]:
    """What pretrain reports: train metrics every 10 steps, eval metrics and a sample at some steps, and
    the scores of the checkpoints it saved (evaluation during training)."""
    events = [{"type": "status", "status": "running", "total_steps": 10 * len(losses)}]
    for i, loss in enumerate(losses, 1):
        step = 10 * i
        events.append({"type": "metric", "step": step, "values": {"loss": loss, "lr": 1e-3, "tokens": step * tokens_per_step,
                                                                   "tokens_per_s": 5000.0, "progress": step / (10 * len(losses))}})
        if step in val_losses:
            events.append({"type": "metric", "step": step, "values": {"val_loss": val_losses[step], "val_ppl": 2.718 ** val_losses[step]}})
        if step in samples:
            events.append({"type": "sample", "step": step, "prompt": "ROMEO:", "text": samples[step]})
        if step in (checkpoint_perplexities or {}):
            events += [{"type": "checkpoint", "step": step, "path": f"/data/runs/x/checkpoint-{step}"},
                       {"type": "metric", "step": step, "values": {"eval/held/perplexity": checkpoint_perplexities[step]}}]
    return events + [{"type": "status", "status": "succeeded"}]


@pytest.fixture
def two_runs(cast):
    notebook = Notebook.objects.create(team=cast.team, title="Shakespeare", created_by=cast.alice)
    cell = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.PRETRAIN, title="Tiny", config={})
    config = {**FAST_PRETRAIN, "corpus_path": "/data/corpus.txt", "tokenizer_path": "/data/tok.json"}
    fast = stored_run(cast.team, cell, {**config, "output_dir": "/data/runs/a"},
                      pretrain_events([5.0, 4.0, 3.5, 3.6], {20: 3.9, 40: 3.7}, {20: " fast at twenty", 40: " fast at forty"},
                                      checkpoint_perplexities={20: 61.0, 40: 44.5}))
    slow = stored_run(cast.team, cell, {**config, "lr": 1e-3, "output_dir": "/data/runs/b"},
                      pretrain_events([5.0, 4.5, 4.2, 4.0], {20: 4.4, 40: 4.1}, {20: " slow at twenty"}, tokens_per_step=256))
    cell.current_run = slow
    cell.save()
    return {"notebook": notebook, "cell": cell, "fast": fast, "slow": slow}


def _page(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


class _Table(HTMLParser):
    """The rows of one table (`data-role`), each as the words of its cells, keyed by a row attribute."""

    def __init__(self, role: str, key: str):
        super().__init__()
        self.role, self.key, self.inside, self.rows, self.row, self.cell = role, key, False, {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.inside = attrs.get("data-role") == self.role
        elif self.inside and tag == "tr" and self.key in attrs:
            self.row = self.rows.setdefault(attrs[self.key], [])
        elif self.row is not None and tag == "td":
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.row.append(" ".join(" ".join(self.cell).split()))
            self.cell = None
        elif tag in ("tr", "table"):
            self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def table_rows(html: str, role: str, key: str) -> dict[str, list[str]]:
    parser = _Table(role, key)
    parser.feed(html)
    return parser.rows


def _chart_data(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="compare-data" type="application/json">') + len('<script id="compare-data" type="application/json">')
    return json.loads(html[start:html.index("</script>", start)])


def test_it_overlays_the_curves_and_tables_the_metrics_the_config_diff_and_the_samples(cast, two_runs):
    fast, slow = two_runs["fast"], two_runs["slow"]
    response = _page(cast.carol).get("/runs/compare/", {"run": [fast.pk, slow.pk]})
    assert response.status_code == 200
    data = _chart_data(response)

    assert [run["id"] for run in data["runs"]] == [fast.pk, slow.pk]
    assert data["keys"][:3] == ["loss", "val_loss", "val_ppl"] and "progress" not in data["keys"] and "tokens" not in data["keys"]
    fast_loss, slow_loss = (curves["loss"] for curves in data["curves"])
    assert fast_loss["step"] == [10, 20, 30, 40] and fast_loss["y"] == [5.0, 4.0, 3.5, 3.6]
    assert fast_loss["tokens"] == [5120, 10240, 15360, 20480] and slow_loss["tokens"] == [2560, 5120, 7680, 10240]
    assert fast_loss["time"][0] == 2.0  # seconds since the run's "running": its first metric came one event later
    # An eval point sits on the tokens axis where the train metric of its step put it.
    assert data["curves"][0]["val_loss"] == {"step": [20, 40], "time": [6.0, 18.0], "tokens": [10240, 20480], "y": [3.9, 3.7]}

    page = response.content.decode()
    metrics = table_rows(page, "metrics-table", "data-metric")
    assert metrics["loss"] == ["loss lower is better", "last 3.6 step 40 best 3.5 step 30", "last 4 step 40 best 4 step 40"]
    assert '<b class="top" title="the best of these runs">3.5</b>' in page  # the better of the two runs' best losses
    assert metrics["lr"] == ["lr", "last 0.001 step 40", "last 0.001 step 40"]  # a learning rate has no best
    # A checkpoint's scores (evaluation during training) are a metric like any: the slow run had none.
    assert metrics["eval/held/perplexity"] == ["eval/held/perplexity lower is better", "last 44.5 step 40 best 44.5 step 40", "—"]
    # Only what differs: not the equal fields, nor each run's own output folder.
    assert {key: values[1:] for key, values in table_rows(page, "config-diff", "data-key").items()} == {"lr": ["0.003", "0.001"]}
    samples = table_rows(page, "samples", "data-step")
    assert samples == {"20": ["20", "ROMEO: fast at twenty", "ROMEO: slow at twenty"],
                       "40": ["40 partial", "ROMEO: fast at forty", "—"]}


def test_a_resumed_run_draws_one_curve_and_its_checkpoint_picks_it(cast, two_runs):
    cell = two_runs["cell"]
    lost_then_resumed = pretrain_events([5.0, 4.0, 3.0], {}, {30: " lost attempt"})[:-1] + [
        {"type": "checkpoint", "step": 20, "path": "/data/runs/c/step-000020"},
        {"type": "status", "status": "running", "summary": {"resumed_from_step": 20}},
        {"type": "metric", "step": 30, "values": {"loss": 3.3, "tokens": 15360}},
        {"type": "sample", "step": 30, "prompt": "ROMEO:", "text": " resumed"},
    ]
    resumed = stored_run(cast.team, cell, {"lr": 1e-3}, lost_then_resumed)
    checkpoint = Artifact.objects.create(team=cast.team, run=resumed, kind="checkpoint", name="c", path="runs/c", sha256="0" * 64)

    response = _page(cast.alice).get("/runs/compare/", {"run": two_runs["fast"].pk, "checkpoint": checkpoint.pk})
    data = _chart_data(response)
    assert [run["id"] for run in data["runs"]] == [two_runs["fast"].pk, resumed.pk]
    assert data["curves"][1]["loss"]["step"] == [10, 20, 30] and data["curves"][1]["loss"]["y"] == [5.0, 4.0, 3.3]
    assert " lost attempt" not in response.content.decode() and "ROMEO: resumed" in response.content.decode()


def test_it_is_reached_from_the_notebook_and_the_run_page(cast, two_runs):
    fast, slow = two_runs["fast"], two_runs["slow"]
    client = _page(cast.alice)
    notebook = unescape(client.get(f"/notebooks/{two_runs['notebook'].pk}/").content.decode())
    assert '<form id="compare-runs" method="get" action="/runs/compare/">' in notebook
    for run in (fast, slow):
        assert f'name="run" value="{run.pk}" form="compare-runs"' in notebook

    run_page = client.get(f"/runs/{fast.pk}/").content.decode()
    assert 'data-role="compare-with"' in run_page
    assert f'<option value="{slow.pk}">run {slow.pk} · Tiny · pretrain · succeeded</option>' in run_page
    theirs = Run.objects.create(team=cast.other_team, stage="pretrain", config={})
    assert f'value="{theirs.pk}"' not in run_page


@pytest.mark.parametrize("query, words", [
    ({"run": "abc"}, "run: Enter a whole number."),
    ({"run": HUGE}, "run: Ensure this value is less than or equal to 9223372036854775807."),
    ({"run": "0"}, "run: Ensure this value is greater than or equal to 1."),
    ({"run": ""}, "run: This field is required."),
    ({"checkpoint": "1e3"}, "checkpoint: Enter a whole number."),
    ({"run": ["1"] * 999}, f"run: compare at most {MAX_RUNS} runs at once (999 given)"),  # 1,000 is Django's own limit
    ({}, "run: pick at least one run (run=<id>) or checkpoint (checkpoint=<id>)"),
])
def test_a_malformed_huge_or_excess_selection_is_a_400_naming_the_field(cast, two_runs, query, words):
    response = _page(cast.alice).get("/runs/compare/", query)
    assert response.status_code == 400 and response.content.decode() == words


def test_another_teams_run_or_checkpoint_is_a_404_and_so_is_a_tokenizer_as_checkpoint_a_400(cast, two_runs):
    mine = two_runs["fast"].pk
    theirs = Run.objects.create(team=cast.other_team, stage="pretrain", config={})
    their_checkpoint = Artifact.objects.create(team=cast.other_team, run=theirs, kind="checkpoint", name="m", path="m", sha256="1" * 64)
    tokenizer = Artifact.objects.create(team=cast.team, kind="tokenizer", name="t", path="t.json", sha256="2" * 64)
    client = _page(cast.alice)
    assert client.get("/runs/compare/", {"run": [mine, theirs.pk]}).status_code == 404
    assert client.get("/runs/compare/", {"run": mine, "checkpoint": their_checkpoint.pk}).status_code == 404
    assert client.get("/runs/compare/", {"run": mine + 10_000}).status_code == 404
    response = client.get("/runs/compare/", {"run": mine, "checkpoint": tokenizer.pk})
    assert response.status_code == 400
    assert response.content.decode() == f"checkpoint: artifact {tokenizer.pk} is not a checkpoint a run of the lab made"
    assert _page(cast.mallory).get("/runs/compare/", {"run": mine}).status_code == 404
    assert _page(cast.bob).get("/runs/compare/", {"run": mine}).status_code == 404  # an annotator sees no runs
    assert Client().get("/runs/compare/", {"run": mine}).status_code == 302  # to the login page


def test_more_runs_than_the_limit_is_a_400_and_the_limit_itself_is_fine(cast, two_runs):
    runs = [stored_run(cast.team, two_runs["cell"], {"lr": i}, [{"type": "metric", "step": 1, "values": {"loss": float(i)}}])
            for i in range(MAX_RUNS)]
    client = _page(cast.alice)
    response = client.get("/runs/compare/", {"run": [run.pk for run in runs], "checkpoint": []})
    assert response.status_code == 200 and len(_chart_data(response)["runs"]) == MAX_RUNS
    checkpoint = Artifact.objects.create(team=cast.team, run=two_runs["fast"], kind="checkpoint", name="c", path="c", sha256="0" * 64)
    response = client.get("/runs/compare/", {"run": [run.pk for run in runs], "checkpoint": checkpoint.pk})
    assert response.status_code == 400
    assert response.content.decode() == f"run: compare at most {MAX_RUNS} runs at once ({MAX_RUNS + 1} given)"
