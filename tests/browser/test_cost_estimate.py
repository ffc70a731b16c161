"""The pretrain cell's live cost estimate in headless Chromium: a value it refuses says which field and
why, and the numbers come back once the value is good."""

import pytest

from tests.browser.pages import open_page
from tests.builders import shakespeare_notebook
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_a_refused_value_greys_the_estimate_and_names_the_field(cast, sample_data, processes, browser, tmp_path):
    cells = shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])
    base_url = processes.web()
    page, errors = open_page(browser, base_url, f"/notebooks/{cells['notebook'].pk}/", "carol", PASSWORD)
    cell = page.locator(f"#cell-{cells['pretrain'].pk}")
    estimate, problem = cell.locator("[data-role=estimate]"), cell.locator("[data-role=estimate-error]")
    tokens_per_step = estimate.locator("[data-est=tokens_per_step]")
    assert problem.text_content() == "" and not problem.is_visible()

    cell.locator("input[name=context_length]").fill("-5")
    problem.filter(has_text="context_length").wait_for(timeout=10_000)
    assert "stale" in estimate.get_attribute("class")
    page.screenshot(path=str(tmp_path / "refused.png"), full_page=True)

    before = tokens_per_step.text_content()
    cell.locator("input[name=context_length]").fill("512")
    page.wait_for_function("(el) => el.textContent === ''", arg=problem.element_handle(), timeout=10_000)
    assert "stale" not in estimate.get_attribute("class") and tokens_per_step.text_content() != before
    assert errors == []
