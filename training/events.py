"""Events: how a training process tells the worker what it is doing (docs/contracts.md).

`EventWriter` writes the JSON lines. The stages never see it: they talk to a `Reporter`, so the
loop can be run with a fake one in tests and with `EventReporter` under the CLI.
"""

from __future__ import annotations

import json
import math
import signal
import time
from typing import Any, Protocol, TextIO


class EventStreamClosed(RuntimeError):
    """The reader of the events went away (the worker died): nobody will see this run's progress."""


class EventWriter:
    """One flushed JSON object a line, each with `t` and `seq` (rising by one from `seq_start`)."""

    def __init__(self, stream: TextIO, seq_start: int = 1) -> None:
        self.stream = stream
        self.next_seq = seq_start
        self.closed = False

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        if self.closed:
            raise EventStreamClosed("the events stream is closed")
        event = {"seq": self.next_seq, "t": time.time(), "type": type, **_finite(fields)}
        line = json.dumps(event, allow_nan=False, ensure_ascii=False) + "\n"
        try:
            self.stream.write(line)
            self.stream.flush()
        # BrokenPipeError when the reader died; ValueError when the stream object was closed.
        except (OSError, ValueError) as e:
            self.closed = True
            raise EventStreamClosed(f"the events stream broke: {e}") from e
        # seq only advances once the line is out, so a retry after a failure never skips a number.
        self.next_seq += 1
        return event

    def status(
        self,
        status: str,
        *,
        total_steps: int | None = None,
        step: int | None = None,
        summary: dict[str, Any] | None = None,
    ) -> None:
        fields: dict[str, Any] = {"status": status}
        if total_steps is not None:
            fields["total_steps"] = total_steps
        if step is not None:
            fields["step"] = step
        if summary is not None:
            fields["summary"] = summary
        self.emit("status", **fields)

    def metric(self, step: int, values: dict[str, float]) -> None:
        self.emit("metric", step=step, values=values)

    def log(self, message: str, level: str = "info") -> None:
        self.emit("log", level=level, message=message)

    def sample(self, step: int, prompt: str, text: str, rewards: dict[str, float | None] | None = None) -> None:
        fields: dict[str, Any] = {"rewards": rewards} if rewards is not None else {}
        self.emit("sample", step=step, prompt=prompt, text=text, **fields)

    def checkpoint(self, step: int, path: str) -> None:
        self.emit("checkpoint", step=step, path=path)

    def artifact(self, kind: str, path: str, metadata: dict[str, Any]) -> None:
        self.emit("artifact", kind=kind, path=path, metadata=metadata)

    def error(self, message: str, field: str | None = None, traceback: str | None = None) -> None:
        fields: dict[str, Any] = {"message": message}
        if field is not None:
            fields["field"] = field
        if traceback is not None:
            fields["traceback"] = traceback
        self.emit("error", **fields)


def _finite(value: Any) -> Any:
    """NaN and infinity are not JSON (browsers reject them): they travel as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class Reporter(Protocol):
    """What a stage tells the outside world, and how it learns it should stop."""

    def status(
        self,
        status: str,
        *,
        total_steps: int | None = None,
        step: int | None = None,
        summary: dict[str, Any] | None = None,
    ) -> None: ...

    def metric(self, step: int, values: dict[str, float]) -> None: ...

    def log(self, message: str, level: str = "info") -> None: ...

    def sample(self, step: int, prompt: str, text: str, rewards: dict[str, float | None] | None = None) -> None:
        """A generated answer; `rewards`: what each reward gave it (the rl stage's table)."""
        ...

    def checkpoint(self, step: int, path: str) -> None: ...

    def artifact(self, kind: str, path: str, metadata: dict[str, Any]) -> None: ...

    def should_stop(self) -> bool:
        """True once a stop was asked for: finish the current step, checkpoint, report cancelled."""
        ...


class EventReporter:
    """A Reporter writing events, stopping on SIGINT/SIGTERM once `install_signal_handlers` ran."""

    def __init__(self, writer: EventWriter) -> None:
        self.writer = writer
        self.stop_signal: int | None = None
        self.status = writer.status
        self.metric = writer.metric
        self.log = writer.log
        self.sample = writer.sample
        self.checkpoint = writer.checkpoint
        self.artifact = writer.artifact

    def should_stop(self) -> bool:
        return self.stop_signal is not None

    def request_stop(self, signum: int, frame: object = None) -> None:
        # Only set a flag: a handler that wrote an event could run in the middle of another event's
        # write and interleave two JSON lines. The loop notices the flag after the current step.
        self.stop_signal = signum

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM ask for a clean stop; the worker kills us if it takes too long."""
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
