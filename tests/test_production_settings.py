"""The web in production shape never shows Django's debug page; `make up` is where it does.

Production shape: the image's ENV under the environment docker-compose.yml gives the web service, with
its ${...} filled in as a deployer's .env would. The settings are loaded in a fresh Python with exactly
that environment, and requests go through the real URLs and middleware, plus one view that raises.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lab import devstack
from tests.test_compose import SERVICES

ROOT = Path(__file__).resolve().parent.parent
# What a deployer puts in .env (see the top of docker-compose.yml); the rest keeps compose's defaults.
DOT_ENV = {"DJANGO_SECRET_KEY": "a-long-random-production-secret-" + "x" * 30, "LAB_ALLOWED_HOSTS": "lab.example.org"}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}")

# Runs in the fresh Python: prints what the settings are and how three kinds of request are answered.
PROBE = """
import json
import django
from django.conf import settings
from django.test import Client
from django.urls import path
django.setup()
import lab.urls

def boom(request):
    raise RuntimeError("secret-in-the-traceback")

lab.urls.urlpatterns.append(path("boom/", boom))
host = settings.ALLOWED_HOSTS[-1]
answers = {}
for name, client_host, url in [("error", host, "/boom/"), ("missing", host, "/no-such-page/"),
                               ("unknown host", "evil.example", "/accounts/login/"),
                               ("bad host", "lab.example.org:99999:1", "/accounts/login/"),
                               ("login page", host, "/accounts/login/")]:
    response = Client(raise_request_exception=False, HTTP_HOST=client_host).get(url)
    answers[name] = [response.status_code, response.content.decode(errors="replace")]
print(json.dumps({"debug": settings.DEBUG, "secret_key": settings.SECRET_KEY, "answers": answers}))
"""
DEBUG_PAGE_SIGNS = ["Traceback", "secret-in-the-traceback", "RuntimeError", "Request Method", "Using the URLconf",
                    "DisallowedHost", "SECRET_KEY", "settings.py"]


def interpolate(value: str, dot_env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} and ${VAR?error}."""
    def one(match):
        name, colon, op, arg = match.groups()
        value = dot_env.get(name)
        missing = value is None or (colon == ":" and value == "")
        if op == "?" and missing:
            raise AssertionError(f"compose refuses to start without {name}: {arg}")
        return arg if op == "-" and missing else (value or "")
    return INTERPOLATION.sub(one, value)


def image_env() -> dict[str, str]:
    """The Dockerfile's ENV lines, joined over their continuations."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return {k: v for line in re.findall(r"^ENV\s+(.+)$", text, re.M) for k, v in re.findall(r"(\w+)=(\S+)", line)}


def production_env() -> dict[str, str]:
    compose = {name: interpolate(str(value), DOT_ENV) for name, value in SERVICES["web"]["environment"].items()}
    return {"PATH": os.environ["PATH"], **image_env(), **compose}


def probe(env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def production():
    return probe(production_env())


def test_compose_and_the_image_turn_debug_off(production):
    assert image_env()["DJANGO_DEBUG"] == "0", "the image alone (docker run) must not show debug pages either"
    assert production["debug"] is False
    assert production["secret_key"] == DOT_ENV["DJANGO_SECRET_KEY"]


@pytest.mark.parametrize("name, status", [("error", 500), ("missing", 404), ("unknown host", 400), ("bad host", 400)])
def test_errors_answer_a_plain_page_without_a_traceback(production, name, status):
    answered, page = production["answers"][name]

    assert answered == status
    assert len(page) < 2000, "Django's debug pages run to tens of kilobytes"
    for sign in DEBUG_PAGE_SIGNS:
        assert sign not in page, f"{name}: the page shows {sign!r}"


def test_the_login_page_works_in_production_shape(production):
    status, page = production["answers"]["login page"]

    assert status == 200 and 'name="password"' in page


def test_the_settings_refuse_to_start_without_a_secret_key_when_debug_is_off():
    env = production_env()
    del env["DJANGO_SECRET_KEY"]
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)

    assert done.returncode != 0 and "DJANGO_SECRET_KEY must be set" in done.stderr


def test_make_up_is_where_the_debug_page_shows(monkeypatch):
    """The dev stack sets no DJANGO_DEBUG, so the settings' default (on) holds; it serves 127.0.0.1 only."""
    monkeypatch.delenv("DJANGO_DEBUG", raising=False)
    dev = probe(devstack.child_env("redis://127.0.0.1:1/0"))

    assert dev["debug"] is True
    status, page = dev["answers"]["error"]
    assert status == 500 and "secret-in-the-traceback" in page and "Traceback" in page
    assert '"-b", "127.0.0.1"' in Path(devstack.__file__).read_text()
