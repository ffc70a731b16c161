"""A clean cell runs on a real worker: its cleaned corpus becomes a new version of the dataset, its
validation split a dataset of its own, and the next cell trains a tokenizer on the train split."""

import json
from html import unescape

import pytest
from django.test import Client

from lab.datasets.actions import create_dataset_from_path
from lab.datasets.models import Dataset
from lab.notebooks.actions import start_cell_run
from lab.notebooks.models import Cell, Notebook
from lab.runs.models import Status
from tests.builders import run_status
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e


def _finish(cell, user):
    run = start_cell_run(cell, user)
    wait_for(lambda: run_status(run) not in (Status.QUEUED, Status.RUNNING), timeout=180, what=f"run {run.pk}")
    assert run.status == Status.SUCCEEDED, run.error
    cell.refresh_from_db()
    return run


def test_a_clean_cell_makes_a_new_dataset_version_that_the_tokenizer_reads(cast, sample_data, processes, tmp_path):
    # tinyshakespeare twice, so that every document has an exact duplicate to remove.
    doubled = tmp_path / "doubled.txt"
    text = sample_data["corpora/tinyshakespeare.txt"].read_text()
    doubled.write_text(text + "\n\n" + text)
    source = create_dataset_from_path(cast.team, cast.alice, doubled, name="doubled")
    notebook = Notebook.objects.create(team=cast.team, title="clean", created_by=cast.alice)
    corpus = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.CORPUS, config={"corpus": source.pk})
    clean = Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.CLEAN,
                                config={"corpus_cell": corpus.pk, "val_fraction": 0.1, "min_chars": 40})
    tokenizer = Cell.objects.create(notebook=notebook, position=2, kind=Cell.Kind.TOKENIZER,
                                    config={"corpus_cell": clean.pk, "vocab_size": 512})
    processes.worker("w1")

    clean_run = _finish(clean, cast.alice)

    cleaned, validation = (Dataset.objects.get(source_run=clean_run, path__endswith=name) for name in ("/train.jsonl", "/validation.jsonl"))
    report = clean_run.events.get(type="artifact").data["metadata"]
    assert cleaned.parent == source and cleaned.kind == "text"
    # The held-out split is a text dataset of its own, from the same source, with no text of the train split.
    assert validation.parent == source and validation.kind == "text" and validation.n_records == report["split"]["validation"]
    held_out = {json.loads(line)["text"] for line in validation.absolute_path.open()}
    assert len(held_out) == validation.n_records and not held_out & {json.loads(line)["text"] for line in cleaned.absolute_path.open()}
    assert report["documents_in"] == 2 * 7222
    # The second copy is gone whole: what the filters kept of it, exact dedup removed.
    assert report["documents_kept"] < 7222 and report["removed"]["exact_duplicate"] > 5000
    assert report["removed"]["too_short"] > 0  # speeches under 40 characters
    assert cleaned.n_records == report["split"]["train"]
    assert sum(report["removed"].values()) + report["documents_kept"] == report["documents_in"]
    assert 0.08 < report["split"]["validation"] / report["documents_kept"] < 0.12

    tokenizer_run = _finish(tokenizer, cast.alice)
    assert tokenizer_run.inputs["corpus_cell"] == {"cell": clean.pk, "kind": "dataset", "id": cleaned.pk, "sha256": cleaned.sha256}
    assert tokenizer_run.artifacts.get().parent_datasets.get() == cleaned

    page = Client()
    page.force_login(cast.alice)
    html = unescape(page.get(f"/notebooks/{notebook.pk}/").content.decode())
    assert "exact duplicate" in html and f"/datasets/{cleaned.pk}/" in html and cleaned.name in html
    assert f"/datasets/{validation.pk}/" in html and validation.name in html
