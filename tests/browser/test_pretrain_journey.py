"""A person in headless Chromium: log in, run the tokenizer and pretrain cells, watch the loss
chart receive points live, cancel, resume, and see the run finish — against the real web server
(Daphne), a real Celery worker and real Redis."""

import os
import shutil

import pytest

from tests.builders import shakespeare_notebook
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still
    # plain synchronous ones (Django's docs give the same advice for Playwright).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does so as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()
        # ORM calls made while Playwright's loop runs get their own connection (asgiref keys it
        # to the loop's context); close it here, or it keeps the test database from being dropped.
        from django.db import connections

        connections.close_all()


def _log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/notebooks/")


def _points(page, run_id: int) -> int:
    return page.evaluate(f"window.__labRuns && window.__labRuns[{run_id}] ? window.__labRuns[{run_id}].points : 0")


def test_it_trains_live_in_the_browser_with_cancel_and_resume(cast, sample_data, processes, browser, tmp_path):
    cells = shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"],
                                 max_steps=150, checkpoint_every_steps=10, eval_every=50, sample_every=50, log_every=2)
    base_url = processes.web()
    processes.worker("w1")
    page = browser.new_page(viewport={"width": 1280, "height": 1800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _log_in(page, base_url, "carol")
    page.click("text=Shakespeare")

    tokenizer = page.locator(f"#cell-{cells['tokenizer'].pk}")
    tokenizer.locator("[data-action=run]").first.click()
    tokenizer.locator("[data-role=status]", has_text="succeeded").wait_for(timeout=60_000)
    page.reload()
    assert tokenizer.locator(".tokens .token").count() > 3  # the "try it" box splits the sample sentence

    pretrain = page.locator(f"#cell-{cells['pretrain'].pk}")
    pretrain.locator("[data-action=run]").first.click()
    view = pretrain.locator("[data-run-view]")
    run_id = int(view.get_attribute("data-run-id"))
    page.wait_for_function(f"window.__labRuns[{run_id}] && window.__labRuns[{run_id}].points >= 4", timeout=120_000)
    seen = _points(page, run_id)
    page.wait_for_function(f"window.__labRuns[{run_id}].points > {seen}", timeout=60_000)  # points arrive live
    assert view.locator(".chart .scatterlayer .trace").count() >= 1
    page.screenshot(path=str(tmp_path / "running.png"), full_page=True)

    view.locator("[data-action=cancel]").click()
    pretrain.locator("[data-role=status]", has_text="cancelled").wait_for(timeout=60_000)
    cancelled_points = _points(page, run_id)
    pretrain.locator("[data-action=resume]").click()
    pretrain.locator("[data-role=status]", has_text="succeeded").wait_for(timeout=180_000)
    page.reload()
    page.wait_for_function(f"window.__labRuns[{run_id}] && window.__labRuns[{run_id}].points > 0", timeout=10_000)
    page.screenshot(path=str(tmp_path / "finished.png"), full_page=True)
    if os.environ.get("LAB_SCREENSHOT_DIR"):
        os.makedirs(os.environ["LAB_SCREENSHOT_DIR"], exist_ok=True)
        for name in ("running.png", "finished.png"):
            shutil.copy(tmp_path / name, os.environ["LAB_SCREENSHOT_DIR"])

    # After the reload the chart is rebuilt from stored events: the whole curve, no gaps.
    state = page.evaluate(f"({{lastSeq: window.__labRuns[{run_id}].lastSeq, points: window.__labRuns[{run_id}].points}})")
    from lab.runs.models import Run

    run = Run.objects.get(pk=run_id)
    assert state["lastSeq"] == run.last_seq
    assert state["points"] >= cancelled_points
    assert run.status == "succeeded" and run.attempt == 2
    assert not errors, errors
