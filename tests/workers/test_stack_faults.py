"""`make up`'s stack (python -m lab.devstack) hurt on purpose: a worker's main process killed, Redis
killed, and stopped (twice, as `kill -- -<pgid>` of `make up` does) with a run in progress.

Each test starts the stack in its own process group with its own Redis (port and data folder) on
the test database, and drives it as a person does, through the HTTP API."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from rest_framework.authtoken.models import Token

from lab.runs.models import Run, Status
from tests.builders import losses, run_status, seqs, shakespeare_notebook
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevStack:
    """One `python -m lab.devstack`, started again on the same ports and data after it stops."""

    def __init__(self, env: dict[str, str], var_dir: Path):
        # Its own Redis, not the tests'.
        self.env = {k: v for k, v in env.items() if k != "REDIS_URL"}
        self.port, self.redis_port = free_port(), free_port()
        self.env.update(
            LAB_PORT=str(self.port),
            LAB_LEASE_SECONDS="4",
            LAB_HEARTBEAT_SECONDS="1",
            LAB_REAP_SECONDS="1",
            LAB_CANCEL_GRACE_SECONDS="15",
        )
        self.var_dir = var_dir
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.logs: list[Path] = []

    def start(self) -> None:
        self.logs.append(self.var_dir.parent / f"devstack-{len(self.logs) + 1}.log")
        with open(self.logs[-1], "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lab.devstack", "--var-dir", str(self.var_dir),
                 "--redis-port", str(self.redis_port)],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(
            lambda: "LLM Lab is up" in self.output() or self.proc.poll() is not None,
            timeout=180,
            interval=0.5,
            what="the stack to start",
        )
        assert self.proc.poll() is None, self.output()[-3000:]

    def output(self) -> str:
        return self.logs[-1].read_text(errors="replace")

    def child_pid(self, name: str) -> int:
        """The pid of the stack's `worker` (main process) or `redis` now."""
        pattern = {"worker": r"-n local@", "redis": rf"redis-server .*:{self.redis_port}\b"}[name]
        return _pid_of(pattern)

    def stop(self, sig=signal.SIGTERM, times: int = 1) -> int:
        for _ in range(times):
            os.killpg(self.proc.pid, sig)
        return self.proc.wait(timeout=120)

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.stop(signal.SIGINT)
        for log in self.logs:  # whatever a child left (none should) must not outlive the test
            said = log.read_text(errors="replace")
            for pid in {int(p) for p in re.findall(r"\(pid (\d+)", said)}:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


def _pid_of(pattern: str) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
            pgid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
        except (OSError, ValueError):
            continue
        if pgid == int(entry.name) and re.search(pattern, argv) and "lab.devstack" not in argv:
            return int(entry.name)
    raise AssertionError(f"no process matching {pattern}")


@pytest.fixture
def stack(process_env, tmp_path):
    devstack = DevStack(process_env, tmp_path / "var")
    yield devstack
    devstack.close()
    for log in devstack.logs:  # on failure, show what the stack said
        sys.stdout.write(f"--- {log.name} (tail)\n{log.read_text(errors='replace')[-4000:]}\n")


def api(stack: DevStack, user, method: str, path: str) -> dict:
    token = Token.objects.get_or_create(user=user)[0].key
    request = urllib.request.Request(
        f"{stack.url}/api/{path}",
        method=method,
        data=b"" if method == "POST" else None,
        headers={"Authorization": f"Token {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def login_page_answers(stack: DevStack) -> bool:
    with urllib.request.urlopen(f"{stack.url}/accounts/login/", timeout=10) as response:
        return response.status == 200


def run_cell(stack: DevStack, cast, cell) -> Run:
    return Run.objects.get(pk=api(stack, cast.alice, "POST", f"cells/{cell.pk}/run/")["id"])


def notebook(stack, cast, sample_data, **pretrain):
    cells = shakespeare_notebook(
        cast.team,
        cast.alice,
        sample_data["corpora/tinyshakespeare.txt"],
        eval_every=0,
        sample_every=0,
        **pretrain,
    )
    tokenizer = run_cell(stack, cast, cells["tokenizer"])
    wait_for(
        lambda: run_status(tokenizer) == Status.SUCCEEDED, timeout=120, what="the tokenizer run"
    )
    return cells


def test_a_killed_redis_or_worker_is_restarted_and_the_run_resumed_with_no_human(
    cast, sample_data, stack
):
    stack.start()
    client = redis.Redis(port=stack.redis_port)
    client.set("faults-test:kept", "yes")
    time.sleep(1.5)  # the append-only file is written every second
    first_redis = stack.child_pid("redis")

    os.kill(first_redis, signal.SIGKILL)

    assert login_page_answers(stack)  # pages that need no Redis answer while it is away
    wait_for(lambda: "redis started again" in stack.output(), timeout=20, what="Redis's restart")
    wait_for(lambda: _answers(client), timeout=20, what="Redis to answer")
    assert client.get("faults-test:kept") == b"yes"
    assert stack.child_pid("redis") != first_redis
    # Runs go through web, queue and worker after Redis's restart.
    cells = notebook(stack, cast, sample_data, max_steps=40, checkpoint_every_steps=5)
    run = run_cell(stack, cast, cells["pretrain"])
    wait_for(lambda: Run.objects.get(pk=run.pk).last_checkpoint, timeout=120, what="a checkpoint")
    worker = stack.child_pid("worker")

    os.kill(worker, signal.SIGKILL)  # the main process alone

    wait_for(lambda: "worker started again" in stack.output(), timeout=20, what="worker's restart")
    restarted = rf"worker \(pid {worker}\) exited with SIGKILL .*starting it again in 1s"
    assert re.search(restarted, stack.output())
    wait_for(lambda: run_status(run) == Status.SUCCEEDED, timeout=150, what="the resumed run")
    assert run.restarts == 1 and run.attempt == 2
    lost = run.events.filter(type="status", data__status="lost")
    assert lost.count() == 1 and "stopped answering" in lost.get().data["message"]
    assert seqs(run) == list(range(1, run.last_seq + 1))
    assert max(step for step, _ in losses(run)) == 40
    assert stack.child_pid("worker") != worker
    assert login_page_answers(stack)


def _answers(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


def test_stopping_the_stack_checkpoints_the_run_and_the_next_start_resumes_it(
    cast, sample_data, stack
):
    stack.start()
    cells = notebook(stack, cast, sample_data, max_steps=30, checkpoint_every_steps=1000)
    run = run_cell(stack, cast, cells["pretrain"])
    wait_for(
        lambda: Run.objects.get(pk=run.pk).step >= 5, timeout=120, what="the run to pass step 5"
    )

    # `kill -- -<pgid>` of `make up`: make forwards its SIGTERM, so devstack gets two.
    assert stack.stop(signal.SIGTERM, times=2) == 0
    said = stack.output()
    assert said.count("devstack | stopping (") == 1
    assert not re.search(r"^Traceback", said, re.M)  # devstack's own (a child's lines are prefixed)
    assert "is still running: killing it" not in said  # each child stopped within its grace period
    run.refresh_from_db()
    assert run.status == Status.QUEUED, run.error
    stopped_at = run.step
    assert Path(run.last_checkpoint).name == f"checkpoint-{stopped_at}" and stopped_at < 30

    stack.start()
    wait_for(
        lambda: run_status(run) == Status.SUCCEEDED, timeout=150, what="the resumed run to finish"
    )
    assert run.attempt == 2 and run.restarts == 0
    steps = [step for step, _ in losses(run)]
    assert steps == sorted(set(steps)) and steps[-1] == 30
    assert any(step > stopped_at for step in steps)
    notes = [
        e.data["message"] for e in run.events.filter(type="log") if "attempt 2" in e.data["message"]
    ]
    assert len(notes) == 1 and notes[0].endswith(f"resuming from checkpoint-{stopped_at}")
    assert stack.stop(signal.SIGINT) == 0
