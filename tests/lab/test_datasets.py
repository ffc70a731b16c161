"""Datasets of every kind: uploaded through the API and the page, detected, described, previewed."""

import html
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token

from lab.datasets.models import Dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(cast):
    return Client(headers={"Authorization": f"Token {Token.objects.create(user=cast.alice).key}"})


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))


def _post(api, team, path, kind=None):
    data = {"team": team.pk, "file": SimpleUploadedFile(path.name, path.read_bytes())}
    if kind:
        data["kind"] = kind
    return api.post("/api/datasets/", data)


@pytest.mark.parametrize("sample, kind, records", [
    ("corpora/tinyshakespeare.txt", "text", 7222),
    ("sft/dolly-2k.messages.jsonl", "sft", 2000),
    ("sft/dolly-2k.jsonl", "sft", 2000),
    ("preference/hh-harmless-test-1811.prompt.jsonl", "preference", 1804),
    ("classification/sms-spam-5k.tsv", "classification", 5000),
    ("eval/mmlu-test-500.jsonl", "eval", 500),
    ("eval/gsm8k-test-300.jsonl", "eval", 300),
])
def test_it_detects_the_kind_of_every_sample_and_counts_its_records(cast, api, sample_data, sample, kind, records):
    response = _post(api, cast.team, sample_data[sample])

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["n_records"]) == (kind, records)
    assert body["stats"]["chars"]["count"] == records


def test_it_shows_label_balance_and_pages_of_records(cast, api, sample_data):
    dataset_id = _post(api, cast.team, sample_data["classification/sms-spam-5k.tsv"]).json()["id"]
    dataset = Dataset.objects.get(pk=dataset_id)
    assert dataset.stats["breakdown"]["labels"] == {"ham": 4336, "spam": 664}

    page = Client()
    page.force_login(cast.alice)
    first = html.unescape(page.get(f"/datasets/{dataset_id}/").content.decode())
    last = html.unescape(page.get(f"/datasets/{dataset_id}/?page=250").content.decode())
    assert "Records 1–20 of 5000" in _text(first) and "Records 4981–5000 of 5000" in _text(last)
    assert "Babe ? I lost you ... :-(" in last and "Babe ? I lost you" not in first  # the file's last record
    assert first.count('<pre class="preview">') == 20
    assert '"labels": {"ham": 4336, "spam": 664}' in first  # the data the label-balance chart draws


def test_it_takes_utf16_with_a_byte_order_mark(cast, api, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("première note\n\nseconde note\n", encoding="utf-16")

    response = _post(api, cast.team, path)

    assert response.status_code == 201 and response.json()["n_records"] == 2


def test_it_refuses_a_kind_the_records_do_not_have(cast, api, sample_data, data_dir):
    response = _post(api, cast.team, sample_data["sft/dolly-2k.messages.jsonl"], kind="preference")

    assert response.status_code == 400
    assert response.json()["file"] == "dolly-2k.messages.jsonl" and response.json()["line"] == 1
    assert not Dataset.objects.exists() and not any(p.is_file() for p in data_dir.rglob("*"))


def test_a_corpus_cell_offers_only_text_datasets(cast, api, sample_data):
    from lab.notebooks.forms import FORMS
    from lab.notebooks.models import Cell, Notebook

    text = _post(api, cast.team, sample_data["corpora/tinyshakespeare.txt"]).json()["id"]
    _post(api, cast.team, sample_data["eval/mmlu-test-500.jsonl"])
    notebook = Notebook.objects.create(team=cast.team, title="n", created_by=cast.alice)
    cell = Cell.objects.create(notebook=notebook, kind=Cell.Kind.CORPUS, config={})

    form = FORMS[Cell.Kind.CORPUS](cell=cell)

    assert [pk for pk, _ in form.fields["corpus"].choices] == [text]
