"""Loaded with `-p tests.environment` before Django reads its settings: gives the whole test session
its own Redis key prefix and data folder, short leases, and a Redis when REDIS_URL is unset."""

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_private_redis() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("REDIS_URL is unset and no redis-server is on PATH: the tests need a real Redis")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    atexit.register(proc.terminate)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0"


if not os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = _start_private_redis()
os.environ["LAB_REDIS_PREFIX"] = f"test-{uuid.uuid4().hex[:8]}"
_data_dir = tempfile.mkdtemp(prefix="lab-test-data-")
atexit.register(shutil.rmtree, _data_dir, ignore_errors=True)
os.environ["LAB_DATA_DIR"] = _data_dir
os.environ.setdefault("LAB_LEASE_SECONDS", "6")
os.environ.setdefault("LAB_HEARTBEAT_SECONDS", "1")
os.environ.setdefault("LAB_REAP_SECONDS", "2")
os.environ.setdefault("LAB_CANCEL_GRACE_SECONDS", "30")
os.environ.setdefault("DJANGO_DEBUG", "1")
# WhiteNoise warns at every request when STATIC_ROOT is missing; tests serve static files through
# the finders (WHITENOISE_USE_FINDERS), so an empty folder is all it needs.
os.makedirs(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "var", "staticfiles"), exist_ok=True)
