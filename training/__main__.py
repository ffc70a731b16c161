"""`python -m training <stage> --config run.json [--events PATH] [--seq-start N]`.

The contract with the worker is docs/contracts.md.

Exit codes: 0 finished (succeeded or cancelled: the last status event says which), 2 bad config (an
`error` event with `field` was written), 1 failure (an `error` event was written when possible).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Any, TextIO

from training import distributed
from training.config import ConfigError
from training.events import EventReporter, EventStreamClosed, EventWriter
from training.stages import STAGES, Gpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training", description="Run one LLM Lab training stage.",
        epilog=stages_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--config", required=True, help="JSON file holding the stage's config")
    parser.add_argument("--events", default="-", help="where JSON-line events go; - is stdout")
    parser.add_argument("--seq-start", type=int, default=1, help="seq of the first event written")
    args = parser.parse_args(argv)

    writer = EventWriter(open_events(args.events), seq_start=args.seq_start)
    try:
        return run(args.stage, args.config, writer)
    except EventStreamClosed as e:
        # The worker is gone: nobody reads our progress, and a new worker will resume from the last
        # checkpoint. Stop now rather than train on as an orphan holding the GPU.
        print(f"training: {e}; stopping", file=sys.stderr)
        _silence(writer.stream)
        return 1


def run(stage: str, config_path: str, writer: EventWriter) -> int:
    try:
        if distributed.world_size() > 1 and not STAGES[stage].multi_device:
            raise ConfigError("devices", f"the {stage} stage runs on one device, not {distributed.world_size()}")
        cfg = STAGES[stage].config.from_dict(load_json(config_path))
    except ConfigError as e:
        writer.error(e.message, field=e.field)
        return 2

    reporter = EventReporter(writer)
    reporter.install_signal_handlers()
    _quiet_libraries()
    try:
        STAGES[stage].run(cfg, reporter)
    except ConfigError as e:  # found once data or model is known: empty corpus, batch too large…
        writer.error(e.message, field=e.field)
        return 2
    except EventStreamClosed:
        raise
    except Exception as e:
        writer.error(f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        if not distributed.is_main():  # its events go nowhere: the log keeps why this rank failed
            traceback.print_exc()
        return 1
    finally:
        distributed.shutdown()
    return 0


def stages_help() -> str:
    width = max(len(name) for name in STAGES)
    lines = [
        f"  {s.name:<{width}}  {s.summary} -> {s.output.kind}"
        + ("" if s.gpu is Gpu.NONE else f" ({s.gpu.value} a GPU)")
        for s in STAGES.values()
    ]
    return "stages:\n" + "\n".join(lines)


def load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise ConfigError("config", f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise ConfigError("config", f"{path} is not valid JSON: {e}") from None


def open_events(target: str) -> TextIO:
    """The events stream. With `-`, stdout is kept for events alone.

    Libraries print to stdout now and then (a warning, a progress line), and one such line would
    break the worker's JSON parsing. So the real stdout is duplicated for the events, and file
    descriptor 1 — Python's and C's — is pointed at stderr.

    Under torchrun every rank inherits the same stdout; rank 0 alone writes events, the others'
    go nowhere (their stdout is pointed at stderr all the same).
    """
    if not distributed.is_main():
        if target == "-":
            os.dup2(2, 1)
        return open(os.devnull, "w", encoding="utf-8")
    if target != "-":
        # Line-buffered append: /dev/fd/N of the worker's pipe, or a file that a resume adds to.
        return open(target, "a", encoding="utf-8", buffering=1)
    sys.stdout.flush()
    events_fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(events_fd, "w", encoding="utf-8", buffering=1)


def _quiet_libraries() -> None:
    # A web-less run needs no hub access: local folders only, and no telemetry or update checks.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _silence(stream: TextIO) -> None:
    """Point a broken stream's descriptor at /dev/null, so the final flush at exit stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
