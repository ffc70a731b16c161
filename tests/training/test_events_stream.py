"""The events stream: one flushed JSON line per event, seq rising by one, and a dead reader stops the run."""

from __future__ import annotations

import io
import json
import math
import os
import signal

import pytest

from training.events import EventReporter, EventStreamClosed, EventWriter


def test_it_writes_one_json_line_per_event_with_contiguous_seq():
    stream = io.StringIO()
    writer = EventWriter(stream, seq_start=41)
    writer.status("running", total_steps=10)
    writer.metric(5, {"loss": 3.5, "lr": 1e-3})
    writer.log("hello", level="warning")
    writer.sample(5, "To be", ", or not")
    writer.checkpoint(5, "/runs/1/checkpoint-5")
    writer.artifact("checkpoint", "/runs/1/checkpoint-5", {"params": 10})
    writer.error("boom", field="lr")
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["seq"] for e in events] == list(range(41, 48))
    assert [e["type"] for e in events] == ["status", "metric", "log", "sample", "checkpoint", "artifact", "error"]
    assert all(isinstance(e["t"], float) for e in events)
    assert events[0] == {**events[0], "status": "running", "total_steps": 10}
    assert events[1]["values"] == {"loss": 3.5, "lr": 1e-3} and events[1]["step"] == 5
    assert events[6] == {**events[6], "message": "boom", "field": "lr"}


def test_it_sends_non_finite_numbers_as_null():
    stream = io.StringIO()
    EventWriter(stream).metric(1, {"loss": math.nan, "grad_norm": math.inf})
    assert json.loads(stream.getvalue())["values"] == {"loss": None, "grad_norm": None}


def test_it_raises_once_the_reader_is_gone():
    read_fd, write_fd = os.pipe()
    stream = os.fdopen(write_fd, "w", buffering=1)
    writer = EventWriter(stream)
    writer.log("first")
    os.close(read_fd)
    with pytest.raises(EventStreamClosed):
        writer.log("nobody hears this")
    with pytest.raises(EventStreamClosed):
        writer.log("nor this")
    assert writer.next_seq == 2
    os.dup2(os.open(os.devnull, os.O_WRONLY), write_fd)  # let the buffered line go somewhere at close
    stream.close()


def test_it_turns_sigint_and_sigterm_into_a_stop_request():
    reporter = EventReporter(EventWriter(io.StringIO()))
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        reporter.install_signal_handlers()
        assert not reporter.should_stop()
        os.kill(os.getpid(), signal.SIGTERM)
        assert reporter.should_stop() and reporter.stop_signal == signal.SIGTERM
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
