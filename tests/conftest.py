"""Shared fixtures: the cast (alice owns, bob annotates, carol is a member, mallory is an outsider),
sample data, and real processes: Celery workers and the ASGI web server against the test database."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.cache import caches
from django.db import connection

from lab.accounts.actions import add_member, create_team, create_user
from lab.accounts.models import Role
from lab.sample_data import ensure_sample_data

REPO = Path(__file__).resolve().parent.parent
# Models and data several test directories use, each built once per session.
pytest_plugins = ["tests.training.fixtures"]
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session")
def sample_data() -> dict[str, Path]:
    return ensure_sample_data(log=lambda msg: None)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Every test creates users; a million PBKDF2 iterations each would cost seconds per test."""
    settings.PASSWORD_HASHERS = ["tests.hashers.FastPBKDF2PasswordHasher"]


@pytest.fixture(autouse=True)
def private_cache(settings):
    """Each test an empty cache of its own, in memory: failed logins counted by one never throttle another."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    caches["default"].clear()


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path) -> Path:
    """Each test gets its own LAB_DATA_DIR (run folders are named by ids, which tests reuse)."""
    settings.LAB_DATA_DIR = tmp_path / "data"
    settings.LAB_DATA_DIR.mkdir()
    return settings.LAB_DATA_DIR


@pytest.fixture
def cast(db):
    """alice owns team Alpha, carol is a member, bob annotates; mallory owns team Mallory."""
    alice, bob, carol, mallory = (create_user(name, PASSWORD) for name in ("alice", "bob", "carol", "mallory"))
    team = create_team("Alpha", alice)
    add_member(team, carol, Role.MEMBER)
    add_member(team, bob, Role.ANNOTATOR)
    other = create_team("Mallory's team", mallory)
    return type("Cast", (), {"alice": alice, "bob": bob, "carol": carol, "mallory": mallory, "team": team, "other_team": other})


def _database_url() -> str:
    """The test database as a URL, for processes we start (settings_dict names it after setup)."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def process_env(transactional_db, data_dir) -> dict[str, str]:
    # One OpenMP thread per training process, as tests/training does: the tests' tiny models gain nothing
    # from a second one, and OpenMP threads waiting for each other on a busy machine slow a step tenfold.
    return {**os.environ, "DATABASE_URL": _database_url(), "LAB_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1"}


class Processes:
    """Starts lab processes in their own process groups and stops them all at teardown."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], ready=None, timeout: float = 60) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = self.log_dir / f"{name}.log"
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        while ready is not None and not ready(proc):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{proc.log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        return proc

    def worker(self, name: str, queues: str = "cpu,gpu", beat: bool = False, pool: str = "prefork") -> subprocess.Popen:
        args = [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", queues, "-c", "1",
                "--pool", pool, "-n", f"{name}@%h", "--loglevel", "INFO", "--without-mingle", "--without-gossip"]
        if beat:
            args += ["-B", "--schedule", str(self.log_dir / f"{name}-beat-schedule")]
        return self.start(name, args, ready=lambda p: b" ready." in p.log_path.read_bytes())

    def web(self, port: int | None = None) -> str:
        """Daphne on a free port, or on `port` (to start it again where pages know it)."""
        port = port or _free_port()
        self.start("web", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "lab.asgi:application"],
                   ready=lambda p: _port_open(port))
        return f"http://127.0.0.1:{port}"

    @staticmethod
    def kill(proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        # Signal all first, then wait: a worker whose Redis is gone can take longer than any wait to
        # stop, and one stuck process must not leave the others running.
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            # The leader may exit before its pool children, which still hold database connections
            # and would keep the test database from being dropped: take the whole group.
            _kill_group_and_wait(proc.pid)


def _kill_group_and_wait(pgid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def processes(process_env, tmp_path):
    procs = Processes(process_env, tmp_path)
    yield procs
    procs.stop_all()
    for proc in procs.procs:  # on failure, show what the processes said
        sys.stdout.write(f"--- {proc.log_path.name} (tail)\n{proc.log_path.read_text(errors='replace')[-2000:]}\n")


def wait_for(predicate, timeout: float = 120, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
