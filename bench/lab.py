"""A throwaway lab for benchmarks: its own SQLite database and data folder in a temporary directory,
Redis (REDIS_URL, or a private redis-server), one Celery run worker and the ASGI web server — the
same processes `make up` starts, so that what is measured is what a user runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

from lab.devstack import (
    REPO_ROOT,
    Stack,
    check_redis_url,
    free_port,
    start_redis,
    wait_until_answers,
)


class BenchLab:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="lab-bench-"))
        self.stack = Stack(env=dict(os.environ))
        self.base_url = ""
        self.server_url, self.database_url = _bench_database(os.environ.get("DATABASE_URL", ""), self.tmp)

    def __enter__(self) -> BenchLab:
        redis_url = os.environ.get("REDIS_URL")
        if redis_url:
            check_redis_url(redis_url)
        else:
            redis_url = start_redis(self.stack, port=free_port(6391))
        os.environ.update({
            "REDIS_URL": redis_url,
            "DATABASE_URL": self.database_url,
            "LAB_DATA_DIR": str(self.tmp / "data"),
            "LAB_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            "DJANGO_SETTINGS_MODULE": "lab.settings",
            "PYTHONUNBUFFERED": "1",
        })
        self.stack.env = dict(os.environ)
        if self.server_url:
            _run_sql(self.server_url, f'CREATE DATABASE "{_name(self.database_url)}"')
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO_ROOT, check=True)
        import django

        django.setup()
        py = sys.executable
        self.stack.start("worker", [py, "-m", "celery", "-A", "workers", "worker", "-Q", "cpu,gpu", "-c", "1",
                                    "-n", "bench@%h", "--loglevel", "WARNING"], log=self.tmp / "worker.log")
        port = free_port(8765)
        self.stack.start("web", [py, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "lab.asgi:application"],
                         log=self.tmp / "web.log")
        self.base_url = f"http://127.0.0.1:{port}"
        wait_until_answers(f"{self.base_url}/healthz", self.stack)
        return self

    def __exit__(self, *exc) -> None:
        self.stack.stop(grace=10)
        if self.server_url:
            from django.db import connections

            connections.close_all()
            _run_sql(self.server_url, f'DROP DATABASE IF EXISTS "{_name(self.database_url)}" WITH (FORCE)')
        shutil.rmtree(self.tmp, ignore_errors=True)

    def wait(self, run, timeout: float = 900):
        """Block until `run` is finished; fail with the worker's log tail when it did not succeed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if not run.is_active:
                break
            if self.stack.first_dead():
                break
            time.sleep(1)  # the benchmark's own polling must not steal the CPU it measures
        if run.status != "succeeded":
            log = (self.tmp / "worker.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"run {run.pk} ended {run.status}; worker log tail:\n{log}")
        return run


def _bench_database(url: str, tmp: Path) -> tuple[str, str]:
    """(server URL, database URL): a throwaway database on the PostgreSQL server `DATABASE_URL`
    names (the production shape), or a SQLite file when it names none."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        return "", f"sqlite:///{tmp / 'lab.sqlite3'}"
    bench_db = f"lab_bench_{uuid.uuid4().hex[:8]}"
    return url, urllib.parse.urlunsplit(parts._replace(path=f"/{bench_db}"))


def _name(database_url: str) -> str:
    return urllib.parse.urlsplit(database_url).path.lstrip("/")


def _run_sql(server_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql)
