"""Bad input gets a clear message naming the field (and file and line), never a 500, and nothing half-made."""

import html
import io
import json
import re
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token

from lab.datasets.models import Dataset
from lab.notebooks.models import Cell
from lab.runs.models import Run
from tests.builders import shakespeare_notebook

pytestmark = pytest.mark.django_db


def _zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _upload(client, team, name, content: bytes):
    return client.post("/datasets/", {"team": team.pk, "name": "", "file": SimpleUploadedFile(name, content)})


@pytest.mark.parametrize("filename, content, message", [
    ("empty.txt", b"", "empty.txt: is empty"),
    ("blank.txt", b"\n\n  \n", "blank.txt: holds no records"),
    ("model.txt", b"PK\x03\x04\x00\x00binary", "model.txt: contains NUL bytes: a binary file"),
    ("latin1.txt", "first line\ncafé\n".encode("latin-1"), "latin1.txt, line 2: not valid UTF-8 (byte 0xe9 at column 4)"),
    ("bad.jsonl", b'{"text": "fine"}\n{"text": oops}\n', "bad.jsonl, line 2: not valid JSON"),
    ("nofield.jsonl", b'{"text": "fine"}\n{"body": "x"}\n', 'nofield.jsonl, line 2: field "text": is missing'),
    ("typed.jsonl", b'{"text": 5}\n', 'typed.jsonl, line 1: field "text": must be a string, not a number'),
    ("corpus.pdf", b"%PDF-1.4", "corpus.pdf: unsupported file type"),
    ("evil.zip", "zip-slip", "escapes the archive"),
])
def test_it_rejects_bad_corpora_with_file_and_line(cast, data_dir, filename, content, message):
    if content == "zip-slip":
        content = _zip({"../evil.txt": "outside"})
    client = Client()
    client.force_login(cast.alice)
    response = _upload(client, cast.team, filename, content)
    assert response.status_code == 400
    assert message in html.unescape(response.content.decode())
    assert not Dataset.objects.exists()
    assert not any(p.is_file() for p in data_dir.rglob("*")), "nothing half-written may stay on disk"


def test_it_accepts_a_good_corpus_and_counts_documents(cast):
    client = Client()
    client.force_login(cast.alice)
    response = _upload(client, cast.team, "two.txt", "\ufeffOne doc.\nStill one.\n\nTwo.\n".encode())
    assert response.status_code == 302
    corpus = Dataset.objects.get()
    assert (corpus.n_records, corpus.format) == (2, "txt")
    assert corpus.absolute_path.read_bytes().startswith(b"\xef\xbb\xbfOne")


def test_it_refuses_a_corpus_over_the_size_limit(cast, settings, data_dir):
    settings.LAB_UPLOAD_MAX_BYTES = 100
    client = Client()
    client.force_login(cast.alice)
    response = _upload(client, cast.team, "big.txt", b"word " * 100)
    assert response.status_code == 400 and "larger than the limit of 100 bytes" in response.content.decode()
    assert not Dataset.objects.exists() and not any(p.is_file() for p in data_dir.rglob("*"))


def test_the_api_names_file_and_line_of_a_bad_corpus(cast):
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=cast.alice).key}")
    response = client.post("/api/datasets/", {"team": cast.team.pk, "file": SimpleUploadedFile("x.jsonl", b'{"text": "a"}\n[1]\n')})
    assert response.status_code == 400
    assert response.json() == {"field": "file", "file": "x.jsonl", "line": 2, "error": "each line must be a JSON object, not a list"}


@pytest.fixture
def notebook(cast, sample_data):
    return shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])


@pytest.mark.parametrize("field, value, message", [
    ("preset", "gpt-9", "Select a valid choice"),
    ("lr", 0, "learning rate must be greater than 0"),
    ("context_length", 5000, "longer than the 1024 positions the tiny model can serve"),
    ("warmup_steps", 100, "fewer than max_steps"),
    ("val_fraction", 0.9, "must be above 0 and below 0.5"),
])
def test_it_names_the_field_of_a_bad_pretrain_config(cast, notebook, field, value, message):
    cell = notebook["pretrain"]
    client = Client()
    client.force_login(cast.alice)
    form = {**cell.config, field: value, "title": "Tiny"}
    response = client.post(f"/cells/{cell.pk}/save/", form)
    assert response.status_code == 400
    page = html.unescape(response.content.decode())
    assert f'data-field="{field}"' in page and message in page
    cell.refresh_from_db()
    assert cell.config.get(field) != value

    api = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=cast.carol).key}")
    response = api.patch(f"/api/cells/{cell.pk}/", {"config": {field: value}}, content_type="application/json")
    assert response.status_code == 400 and field in response.json()


def test_it_refuses_a_batch_larger_than_the_data_before_queueing(cast, notebook, settings):
    tokenizer_cell, pretrain = notebook["tokenizer"], notebook["pretrain"]
    # A tokenizer output that counted this corpus at 4,000 tokens: 61 sequences of 65 tokens, 57 for training.
    run = Run.objects.create(team=cast.team, cell=tokenizer_cell, stage="tokenizer", config={}, status="succeeded")
    path = settings.LAB_DATA_DIR / "tok.json"
    path.write_text("{}")
    artifact = run.artifacts.create(team=cast.team, kind="tokenizer", name="t", path="tok.json", sha256="1" * 64,
                                    metadata={"vocab_size": 512, "tokens": 4000, "n_records": 10})
    artifact.parent_datasets.add(notebook["corpus"].config["corpus"])
    Cell.objects.filter(pk=tokenizer_cell.pk).update(current_run=run)
    pretrain.config["batch_size"] = 64
    pretrain.save()
    client = Client()
    client.force_login(cast.alice)
    response = client.post(f"/cells/{pretrain.pk}/run/", follow=True)
    page = html.unescape(response.content.decode())
    assert "batch_size: 64 is larger than the ~57 training sequences" in page, re.findall("msg-[a-z]+.>([^<]*)", page)
    assert not Run.objects.filter(cell=pretrain).exists()


def test_it_refuses_to_run_a_cell_whose_input_has_no_output(cast, notebook):
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=cast.alice).key}")
    response = client.post(f"/api/cells/{notebook['pretrain'].pk}/run/")
    assert response.status_code == 400
    assert response.json() == {"field": "tokenizer_cell", "error": "'BPE' has no output yet: run it first"}
    assert not Run.objects.exists()
    assert json.loads(json.dumps(notebook["pretrain"].config))  # config untouched and still JSON


DEEP_JSON = "[" * 50_000 + "]" * 50_000


@pytest.mark.parametrize("method, url", [
    ("post", "/api/token/"),  # logged out: DRF's token view names its own parsers
    ("post", "/api/notebooks/"),
    ("post", "/api/uploads/"),
    ("post", "/api/campaigns/"),
    ("post", "/api/datasets/"),
])
def test_a_deeply_nested_json_body_is_a_400_not_a_recursion_error(cast, method, url):
    api = Client(headers={"Authorization": f"Token {Token.objects.get_or_create(user=cast.alice)[0].key}"})
    client = Client() if url == "/api/token/" else api
    response = getattr(client, method)(url, DEEP_JSON, content_type="application/json")
    assert response.status_code == 400
    assert "nested deeper than 64 levels" in response.json()["detail"]
