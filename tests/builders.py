"""Building notebooks for tests the way a user would: corpus → tokenizer → pretrain cells, and the
models a team brings."""

import shutil
from datetime import datetime
from pathlib import Path

from lab.datasets.actions import create_dataset_from_path
from lab.notebooks.models import Cell, Notebook
from lab.runs.models import Run, RunEvent


def brought_model(folder: Path, data_dir: Path, name: str) -> Path:
    """A fixture's model folder copied into the test's data dir, without its training state, as a team
    would bring one (registering keeps the path as given, so it must live where the test cleans up)."""
    target = data_dir / "brought" / name
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("optimizer.pt", "trainer_state.json"))
    return target


# Small enough for CPU in a few seconds, big enough that the loss falls clearly.
FAST_PRETRAIN = {
    "preset": "tiny", "context_length": 64, "batch_size": 8, "grad_accum": 1, "max_steps": 40, "lr": 3e-3,
    "warmup_steps": 4, "eval_every": 20, "eval_batches": 2, "sample_every": 20, "sample_tokens": 16,
    "sample_prompt": "ROMEO:", "checkpoint_every_steps": 20, "log_every": 5,
}


def shakespeare_notebook(team, user, corpus_path: Path, **pretrain) -> dict[str, Cell]:
    corpus = create_dataset_from_path(team, user, corpus_path, name="tinyshakespeare")
    notebook = Notebook.objects.create(team=team, title="Shakespeare", created_by=user)
    corpus_cell = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.CORPUS, config={"corpus": corpus.pk})
    tokenizer = Cell.objects.create(
        notebook=notebook, position=1, kind=Cell.Kind.TOKENIZER, title="BPE",
        config={"corpus_cell": corpus_cell.pk, "vocab_size": 512, "min_frequency": 2, "special_tokens": ["<|endoftext|>", "<|pad|>"]},
    )
    pretrain_cell = Cell.objects.create(
        notebook=notebook, position=2, kind=Cell.Kind.PRETRAIN, title="Tiny",
        config={"corpus_cell": corpus_cell.pk, "tokenizer_cell": tokenizer.pk, **FAST_PRETRAIN, **pretrain},
    )
    return {"notebook": notebook, "corpus": corpus_cell, "tokenizer": tokenizer, "pretrain": pretrain_cell}


def run_status(run: Run) -> str:
    run.refresh_from_db()
    return run.status


def seqs(run: Run) -> list[int]:
    return list(run.events.order_by("seq").values_list("seq", flat=True))


def losses(run: Run) -> list[tuple[int, float]]:
    return [(e.data["step"], e.data["values"]["loss"]) for e in run.events.filter(type="metric") if "loss" in e.data.get("values", {})]


def held(run: Run, since: datetime, until: datetime | None = None, ended: str = "succeeded") -> Run:
    """An attempt of `run` on a worker, as the worker's status events record it: `running` at `since`,
    then `ended` at `until` (none: it still holds its devices). lab/fleet/usage.py counts these."""
    run.refresh_from_db(fields=["last_seq"])
    for at, status in [(since, "running"), *([(until, ended)] if until else [])]:
        run.last_seq += 1
        RunEvent.objects.create(run=run, seq=run.last_seq, t=at.timestamp(), type="status", data={"status": status})
    Run.objects.filter(pk=run.pk).update(last_seq=run.last_seq)
    return run
