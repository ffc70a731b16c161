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

    def __enter__(self) -> BenchLab:
        redis_url = os.environ.get("REDIS_URL")
        if redis_url:
            check_redis_url(redis_url)
        else:
            redis_url = start_redis(self.stack, port=free_port(6391))
        os.environ.update({
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{self.tmp / 'lab.sqlite3'}",
            "LAB_DATA_DIR": str(self.tmp / "data"),
            "LAB_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            "DJANGO_SETTINGS_MODULE": "lab.settings",
            "PYTHONUNBUFFERED": "1",
        })
        self.stack.env = dict(os.environ)
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
