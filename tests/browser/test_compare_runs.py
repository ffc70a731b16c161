"""A person ticks two runs of a cell in the notebook's run history, compares them, and reads the
overlaid curves by step and then by tokens seen, then a run's page with its checkpoints' scores, in
headless Chromium."""

import pytest

from tests.browser.pages import open_page
from tests.conftest import PASSWORD
from tests.lab.test_compare_runs import two_runs  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_it_compares_the_ticked_runs_by_step_and_by_tokens(cast, two_runs, processes, browser, tmp_path):  # noqa: F811
    fast, slow = two_runs["fast"], two_runs["slow"]
    base_url = processes.web()
    page, errors = open_page(browser, base_url, f"/notebooks/{two_runs['notebook'].pk}/", "carol", PASSWORD)
    cell = page.locator(f"#cell-{two_runs['cell'].pk}")
    cell.locator(".history summary").click()
    for run in (fast, slow):
        cell.locator(f"input[form=compare-runs][value='{run.pk}']").check()
    cell.locator("[data-action=compare]").click()
    page.wait_for_url(f"{base_url}/runs/compare/?run={slow.pk}&run={fast.pk}")  # the history lists the newest first

    loss = page.locator(".chart[data-chart=loss]")
    loss.locator(".scatterlayer .trace").nth(1).wait_for()
    assert loss.locator(".scatterlayer .trace").count() == 2  # one line per run
    assert loss.locator(".xtitle").text_content() == "step"
    page.screenshot(path=str(tmp_path / "compare-by-step.png"), full_page=True)
    page.check("[data-role=x-axis] input[value=tokens]")
    page.wait_for_function("document.querySelector('[data-role=compare-charts]').dataset.axis === 'tokens'")
    assert loss.locator(".xtitle").text_content() == "tokens seen"
    # The slow run saw half the tokens per step: its last point lies at half the fast run's last.
    last_x = page.evaluate("document.querySelector('.chart[data-chart=loss]').data.map(t => [t.name, t.x[t.x.length - 1]])")
    assert last_x == [[f"run {slow.pk} · Tiny", 10240], [f"run {fast.pk} · Tiny", 20480]]
    page.screenshot(path=str(tmp_path / "compare-by-tokens.png"), full_page=True)

    # The run page draws the checkpoints' scores beside the loss, a chart of their own.
    page.goto(f"{base_url}/runs/{fast.pk}/")
    scores = page.locator('.chart[data-chart="eval/held/perplexity"]')
    scores.locator(".scatterlayer .trace").first.wait_for()
    assert page.evaluate("document.querySelector('.chart[data-chart=\"eval/held/perplexity\"]').data[0].y") == [61.0, 44.5]
    page.screenshot(path=str(tmp_path / "run-page.png"), full_page=True)
    print(f"screenshots: {tmp_path}")
    assert errors == []
