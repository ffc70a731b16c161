"""Helpers of the training tests: where the sample corpus lies, a recording Reporter, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DATA = Path(os.environ.get("LAB_SAMPLE_DATA", REPO / ".." / "shared" / "data")).resolve()
CORPUS = SAMPLE_DATA / "corpora" / "tinyshakespeare.txt"


class FakeReporter:
    """Records events as the EventWriter would shape them; `stop_at_step` asks for a stop once a metric
    of that step (or later) was reported, which is how SIGINT looks to the loop."""

    def __init__(self, stop_at_step: int | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.stop_at_step = stop_at_step

    def _add(self, type: str, **fields: Any) -> None:
        self.events.append({"type": type, **fields})

    def status(self, status: str, **fields: Any) -> None:
        self._add("status", status=status, **{k: v for k, v in fields.items() if v is not None})

    def metric(self, step: int, values: dict[str, float]) -> None:
        self._add("metric", step=step, values=values)

    def log(self, message: str, level: str = "info") -> None:
        self._add("log", level=level, message=message)

    def sample(self, step: int, prompt: str, text: str, rewards: dict[str, float | None] | None = None) -> None:
        fields = {"rewards": rewards} if rewards is not None else {}
        self._add("sample", step=step, prompt=prompt, text=text, **fields)

    def checkpoint(self, step: int, path: str) -> None:
        self._add("checkpoint", step=step, path=path)

    def artifact(self, kind: str, path: str, metadata: dict[str, Any]) -> None:
        self._add("artifact", kind=kind, path=path, metadata=metadata)

    def should_stop(self) -> bool:
        if self.stop_at_step is None:
            return False
        return any(e["type"] == "metric" and e["step"] >= self.stop_at_step for e in self.events)

    def of_type(self, type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type]

    def losses(self) -> list[float]:
        return [e["values"]["loss"] for e in self.of_type("metric") if "loss" in e["values"]]

    def val_losses(self) -> list[float]:
        return [e["values"]["val_loss"] for e in self.of_type("metric") if "val_loss" in e["values"]]


def tiny_config(corpus: Path, tokenizer_path: Path, output_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A pretrain config of the tiny preset that takes a fraction of a second per step on CPU."""
    cfg: dict[str, Any] = {
        "corpus_path": str(corpus),
        "tokenizer_path": str(tokenizer_path),
        "output_dir": str(output_dir),
        "preset": "tiny",
        "context_length": 32,
        "batch_size": 4,
        "max_steps": 12,
        "warmup_steps": 2,
        "lr": 3e-3,
        "log_every": 2,
        "eval_every": 6,
        "eval_batches": 2,
        "sample_every": 0,
        "checkpoint_every_steps": 0,
    }
    cfg.update(overrides)
    return cfg


def run_cli(*args: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`python -m training …` in a fresh interpreter, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def cli_env() -> dict[str, str]:
    """The test's environment with one OpenMP thread (see the `one_torch_thread` fixture)."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def parse_events(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line must be one JSON event: anything else would break the worker."""
    return [json.loads(line) for line in stdout.splitlines()]


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(json.dumps(cfg))
    return path
