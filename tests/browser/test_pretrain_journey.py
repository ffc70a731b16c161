"""A person in headless Chromium: log in, run the tokenizer and pretrain cells, watch the loss
chart receive points live, cancel, resume, and see the run finish — against the real web server
(Daphne), a real Celery worker and real Redis."""

import os
import shutil

import pytest

from tests.browser.pages import log_in
from tests.builders import shakespeare_notebook
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


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
    log_in(page, base_url, "carol", PASSWORD)
    page.click("text=Shakespeare")

    tokenizer = page.locator(f"#cell-{cells['tokenizer'].pk}")
    tokenizer.locator("[data-action=run]").first.click()
    tokenizer.locator("[data-role=status]", has_text="succeeded").wait_for(timeout=60_000)
    page.reload()
    tokenizer.locator(".tokens .token").nth(3).wait_for(timeout=10_000)  # the "try it" box splits the sample sentence

    pretrain = page.locator(f"#cell-{cells['pretrain'].pk}")
    pretrain.locator("[data-action=run]").first.click()
    view = pretrain.locator("[data-run-view]")
    run_id = int(view.get_attribute("data-run-id"))
    page.wait_for_function(f"window.__labRuns && window.__labRuns[{run_id}] && window.__labRuns[{run_id}].points >= 4", timeout=120_000)
    seen = _points(page, run_id)
    # points arrive live
    page.wait_for_function(f"window.__labRuns && window.__labRuns[{run_id}] && window.__labRuns[{run_id}].points > {seen}", timeout=60_000)
    assert view.locator(".chart .scatterlayer .trace").count() >= 1
    page.screenshot(path=str(tmp_path / "running.png"), full_page=True)

    view.locator("[data-action=cancel]").click()
    pretrain.locator("[data-role=status]", has_text="cancelled").wait_for(timeout=60_000)
    cancelled_points = _points(page, run_id)
    pretrain.locator("[data-action=resume]").click()
    pretrain.locator("[data-role=status]", has_text="succeeded").wait_for(timeout=180_000)
    page.reload()
    page.wait_for_function(f"window.__labRuns && window.__labRuns[{run_id}] && window.__labRuns[{run_id}].points > 0", timeout=10_000)
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
    loss_steps = view.locator(".chart").first.evaluate("div => div.data[0].x")
    assert loss_steps == sorted(set(loss_steps)) and loss_steps[-1] == 150, loss_steps

    # An attempt resumed after a lost worker starts again from its checkpoint: the chart drops what the
    # lost attempt drew past it, instead of drawing the curve back over itself.
    page.evaluate(f"""window.__labRuns[{run_id}].apply([{{type: "status", status: "running", step: 100, seq: 0,
                      t: 0, summary: {{resumed_from_step: 100}}}}])""")
    rewound = view.locator(".chart").first.evaluate("div => div.data.map((trace) => trace.x)")
    assert rewound[0] == [step for step in loss_steps if step <= 100], rewound
    assert all(max(trace, default=0) <= 100 for trace in rewound), rewound
    assert not errors, errors
