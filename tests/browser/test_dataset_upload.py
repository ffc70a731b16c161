"""A person uploads a classification dataset in headless Chromium and sees what is in it."""

import os
import re
import shutil

import pytest

from tests.browser.pages import log_in
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser]


def test_it_uploads_with_progress_and_shows_the_label_balance(cast, sample_data, processes, browser, tmp_path):
    base_url = processes.web()
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, base_url, "alice", PASSWORD)

    page.click("text=Datasets")
    page.set_input_files("#id_file", str(sample_data["classification/sms-spam-5k.tsv"]))
    page.click("button.primary")
    page.wait_for_url(re.compile(rf"{base_url}/datasets/\d+/"))

    assert "Classification" in page.locator(".facts").inner_text()
    assert "5000" in page.locator(".facts").inner_text()
    charts = page.locator("[data-role=dataset-charts] .chart")
    charts.first.locator(".main-svg").first.wait_for()
    titles = page.locator("[data-role=dataset-charts] .gtitle").all_text_contents()
    assert "label balance" in titles and "characters a record" in titles
    assert page.locator(".records pre").count() == 20
    page.screenshot(path=str(tmp_path / "dataset.png"), full_page=True)
    if os.environ.get("LAB_SCREENSHOT_DIR"):
        os.makedirs(os.environ["LAB_SCREENSHOT_DIR"], exist_ok=True)
        shutil.copy(tmp_path / "dataset.png", os.environ["LAB_SCREENSHOT_DIR"])
    assert not errors, errors
