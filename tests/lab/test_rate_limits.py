"""Brute force on the login page and on POST /api/token/: after LAB_LOGIN_FAILURES failed tries (10, the README
says) within LAB_LOGIN_WINDOW_SECONDS from one client address or for one username, the next try answers 429
with Retry-After, even with the right password, until the window ends. Successful logins never count."""

import re
import time
from pathlib import Path

import pytest
from django.core.cache import caches
from django.test import Client

from lab import settings as lab_settings
from lab.accounts.actions import create_user
from tests.conftest import PASSWORD, _free_port

pytestmark = pytest.mark.django_db
README = Path(__file__).resolve().parents[2] / "README.md"


def log_in(client, username, password=PASSWORD):
    return client.post("/accounts/login/", {"username": username, "password": password})


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def fail_until_throttled(settings, attempt) -> None:
    """Fails `attempt(n)` exactly LAB_LOGIN_FAILURES times, each answered as a plain failure."""
    for n in range(settings.LAB_LOGIN_FAILURES):
        response = attempt(n)
        assert response.status_code in (200, 400), f"try {n + 1} answered {response.status_code}"


def test_the_readme_states_the_limits_the_settings_apply(settings):
    readme = README.read_text()

    assert (settings.LAB_LOGIN_FAILURES, settings.LAB_LOGIN_WINDOW_SECONDS) == (10, 60)
    assert re.search(r"10 failed\s+(logins|tries)", readme) and "LAB_LOGIN_FAILURES" in readme


def test_the_login_page_answers_429_at_the_try_after_the_limit_and_says_when_to_come_back(cast, settings):
    client = Client()
    for n in range(settings.LAB_LOGIN_FAILURES):
        response = log_in(client, "alice", f"guess-{n}")
        assert response.status_code == 200, f"try {n + 1}"
        assert "didn't match" in response.content.decode()

    throttled = log_in(client, "alice", "guess-again")
    right_password = log_in(client, "alice")

    assert throttled.status_code == 429
    assert 1 <= int(throttled["Retry-After"]) <= settings.LAB_LOGIN_WINDOW_SECONDS
    page = throttled.content.decode()
    assert "Too many failed logins" in page and f"Try again in {throttled['Retry-After']} second" in page
    assert 'name="username"' in page and 'value="alice"' in page, "the form is shown again, username kept"
    assert right_password.status_code == 429 and not logged_in(client)


def test_a_correct_login_from_the_same_client_works_once_the_window_is_over(cast, settings):
    settings.LAB_LOGIN_WINDOW_SECONDS = 1
    client = Client()
    fail_until_throttled(settings, lambda n: log_in(client, "alice", f"guess-{n}"))
    throttled = log_in(client, "alice")
    assert throttled.status_code == 429 and not logged_in(client)

    time.sleep(int(throttled["Retry-After"]) + 0.1)
    response = log_in(client, "alice")

    assert response.status_code == 302 and response["Location"] == "/notebooks/"
    assert logged_in(client)


def test_successful_logins_are_never_counted(cast, settings):
    for _ in range(3 * settings.LAB_LOGIN_FAILURES):
        client = Client()
        assert log_in(client, "carol").status_code == 302
        assert logged_in(client)


def test_a_username_is_throttled_whatever_the_address_and_others_are_not(cast, settings):
    fail_until_throttled(settings, lambda n: log_in(Client(REMOTE_ADDR=f"10.0.0.{n}"), "alice", "guess"))
    elsewhere = Client(REMOTE_ADDR="10.0.1.1")

    assert log_in(elsewhere, "alice").status_code == 429
    assert log_in(elsewhere, "carol").status_code == 302, "the address itself made no failed try"


def test_an_address_is_throttled_whatever_the_username(cast, settings):
    client = Client(REMOTE_ADDR="10.0.2.1")
    fail_until_throttled(settings, lambda n: log_in(client, f"nobody-{n}", "guess"))

    assert log_in(client, "carol").status_code == 429
    assert log_in(Client(REMOTE_ADDR="10.0.2.2"), "carol").status_code == 302


def test_a_made_up_forwarded_for_header_does_not_dodge_the_address_limit(cast, settings):
    client = Client(REMOTE_ADDR="10.0.3.1")
    fail_until_throttled(settings, lambda n: client.post(
        "/accounts/login/", {"username": f"nobody-{n}", "password": "guess"}, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}"))

    assert log_in(client, "carol").status_code == 429


def test_behind_a_proxy_each_forwarded_client_counts_alone(cast, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = "10.0.4.1"
    attacker = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="192.0.2.66")
    fail_until_throttled(settings, lambda n: log_in(attacker, f"nobody-{n}", "guess"))

    assert log_in(attacker, "carol").status_code == 429
    assert log_in(Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="192.0.2.7"), "carol").status_code == 302


def test_the_token_endpoint_answers_429_after_the_limit_then_a_token_after_the_window(cast, settings):
    settings.LAB_LOGIN_WINDOW_SECONDS = 1
    client = Client()

    def token(password):
        return client.post("/api/token/", {"username": "alice", "password": password}, content_type="application/json")

    for n in range(settings.LAB_LOGIN_FAILURES):
        assert token(f"guess-{n}").status_code == 400, f"try {n + 1}"
    throttled = token(PASSWORD)

    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) >= 1
    assert "throttled" in throttled.json()["detail"]

    time.sleep(int(throttled["Retry-After"]) + 0.1)
    response = token(PASSWORD)
    assert response.status_code == 200 and len(response.json()["token"]) == 40


def test_failed_logins_on_the_page_and_the_token_endpoint_add_up(cast, settings):
    client = Client()
    for n in range(settings.LAB_LOGIN_FAILURES):
        if n % 2:
            log_in(client, "alice", "guess")
        else:
            client.post("/api/token/", {"username": "alice", "password": "guess"})

    assert client.post("/api/token/", {"username": "alice", "password": PASSWORD}).status_code == 429


def test_the_admin_login_lets_no_one_in_while_throttled(cast, settings):
    create_user("root", PASSWORD, is_staff=True, is_superuser=True)
    client = Client()
    fail_until_throttled(settings, lambda n: log_in(client, "root", f"guess-{n}"))

    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})

    assert response.status_code == 200 and not logged_in(client)


def test_failures_are_counted_in_the_configured_redis_cache(cast, settings):
    """The in-memory cache tests use elsewhere stands in for this one: the settings' Redis cache, which every
    web process shares, counts the same way (a fresh address and username: the session's Redis is shared)."""
    settings.CACHES = lab_settings.CACHES
    assert caches["default"].__class__.__name__ == "RedisCache"
    create_user("redis-user", PASSWORD)
    client = Client(REMOTE_ADDR="10.0.5.1")
    fail_until_throttled(settings, lambda n: log_in(client, "redis-user", f"guess-{n}"))

    assert log_in(client, "redis-user").status_code == 429


def test_logins_go_on_without_their_limit_while_redis_is_away(cast, settings, caplog):
    settings.CACHES = {"default": {**lab_settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{_free_port()}/0"}}
    client = Client()

    assert log_in(client, "alice", "guess").status_code == 200
    assert log_in(client, "alice").status_code == 302 and logged_in(client)
    assert "failed logins are not limited" in caplog.text


def test_a_username_utf8_cannot_encode_is_a_400_before_and_a_429_after_the_limit(cast, settings):
    client = Client()
    body = '{"username": "\\ud800", "password": "guess"}'  # a lone surrogate: valid JSON, not valid UTF-8

    before = client.post("/api/token/", body, content_type="application/json")
    fail_until_throttled(settings, lambda n: log_in(client, f"nobody-{n}", "guess"))
    after = client.post("/api/token/", body, content_type="application/json")

    assert before.status_code == 400 and "surrogate" in str(before.json()).lower()
    assert after.status_code == 429
