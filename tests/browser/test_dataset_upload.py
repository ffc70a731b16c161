"""A person uploads datasets in headless Chromium: chunked with a progress bar, resumed after the
connection drops, refused with the line when a record is bad, and shown with its charts."""

import os
import re
import shutil

import pytest

from lab.datasets.models import Dataset, Upload
from tests.browser.pages import log_in
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser]


@pytest.fixture
def datasets_page(processes, browser, cast):
    base_url = processes.web()
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    log_in(page, base_url, "alice", PASSWORD)
    page.click("text=Datasets")
    page.base_url = base_url
    return page


def test_it_uploads_in_chunks_through_a_dropped_connection_and_shows_the_label_balance(datasets_page, sample_data, tmp_path):
    page = datasets_page
    # Chunks are 8 MB; this file is one chunk, so drop the first PATCH to make the browser resume.
    dropped = []

    def drop_first_chunk(route):
        if route.request.method == "PATCH" and not dropped:
            dropped.append(route.request.url)
            return route.abort("connectionreset")
        return route.continue_()

    page.route(re.compile(r".*/api/uploads/.*"), drop_first_chunk)
    page.set_input_files("#id_file", str(sample_data["classification/sms-spam-5k.tsv"]))
    page.click("button.primary")
    page.wait_for_url(re.compile(rf"{page.base_url}/datasets/\d+/"), timeout=30_000)

    assert dropped, "the first chunk was not sent"
    assert "Classification" in page.locator(".facts").inner_text() and "5000" in page.locator(".facts").inner_text()
    page.locator("[data-role=dataset-charts] .chart .main-svg").first.wait_for()
    titles = page.locator("[data-role=dataset-charts] .gtitle").all_text_contents()
    assert "label balance" in titles and "characters a record" in titles
    assert page.locator(".records pre").count() == 20
    assert Dataset.objects.get().n_records == 5000 and not Upload.objects.exists()
    page.screenshot(path=str(tmp_path / "dataset.png"), full_page=True)
    if os.environ.get("LAB_SCREENSHOT_DIR"):
        os.makedirs(os.environ["LAB_SCREENSHOT_DIR"], exist_ok=True)
        shutil.copy(tmp_path / "dataset.png", os.environ["LAB_SCREENSHOT_DIR"])
    assert not page.errors, page.errors


def test_it_says_which_line_is_wrong_and_keeps_nothing(datasets_page, tmp_path):
    page = datasets_page
    bad = tmp_path / "chat.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
                   '{"messages": [{"role": "robot", "content": "beep"}]}\n')

    page.set_input_files("#id_file", str(bad))
    page.click("button.primary")
    error = page.locator("[data-role=upload-error]")
    error.wait_for(state="visible")

    assert "chat.jsonl, line 2" in error.inner_text() and "role" in error.inner_text()
    assert not Dataset.objects.exists() and not Upload.objects.exists()
    assert not page.errors, page.errors
