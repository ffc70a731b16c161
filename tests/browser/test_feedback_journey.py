"""Two annotators judge with the keyboard in two browser contexts while the owner's dashboard
updates live over its websocket, without a reload, and an item added while an annotator waits comes
to their page — against the real web server (Daphne) and Redis."""

import os
import shutil

import pytest

from lab.feedback.actions import add_items
from lab.feedback.models import Vote
from tests.browser.pages import log_in
from tests.conftest import PASSWORD
from tests.feedback.builders import campaign_with_items, pair

pytestmark = [pytest.mark.browser]


def _judge_with_keys(page, keys: list[str]) -> None:
    for key in keys:
        page.locator("[data-role=item]:not([hidden])").wait_for(timeout=10_000)
        shown = page.evaluate("window.__labAnnotate.current && window.__labAnnotate.current.item")
        page.keyboard.press(key)
        if key != "s":
            page.keyboard.press("Enter")
        page.wait_for_function(f"!window.__labAnnotate.current || window.__labAnnotate.current.item !== {shown}", timeout=10_000)


def test_it_takes_keyboard_judgements_and_updates_the_dashboard_live(cast, processes, browser, tmp_path):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob, cast.carol], n_items=3, overlap=2)
    base_url = processes.web()
    errors: list[str] = []
    pages = {}
    for name, size in (("alice", {"width": 1280, "height": 1500}), ("bob", {"width": 390, "height": 844}),
                       ("carol", {"width": 1280, "height": 900})):
        page = browser.new_context(viewport=size).new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        log_in(page, base_url, name, PASSWORD, lands_on="/campaigns/" if name == "bob" else "/notebooks/")
        pages[name] = page

    dashboard = pages["alice"]
    dashboard.goto(f"{base_url}/campaigns/{campaign.pk}/")
    dashboard.wait_for_function("window.__labCampaign && document.querySelector('[data-role=live]').classList.contains('on')")
    assert dashboard.locator("[data-role=votes]").inner_text() == "0"
    for name in ("bob", "carol"):
        pages[name].goto(f"{base_url}/campaigns/")
        pages[name].click(f"text={campaign.name}")
        pages[name].wait_for_url(f"**/campaigns/{campaign.pk}/annotate/")

    _judge_with_keys(pages["bob"], ["1", "2"])
    dashboard.wait_for_function("window.__labCampaign.votes === 2", timeout=15_000)  # live, no reload
    pages["bob"].screenshot(path=str(tmp_path / "annotator.png"), full_page=True)
    _judge_with_keys(pages["carol"], ["1", "3", "4"])
    _judge_with_keys(pages["bob"], ["s"])
    dashboard.wait_for_function("window.__labCampaign.votes === 5", timeout=15_000)
    pages["bob"].locator("[data-role=empty]:not([hidden])").wait_for(timeout=10_000)

    add_items(campaign, [pair(7)])  # bob ran dry: the new item comes to his open page, no reload
    pages["bob"].locator("[data-role=item]:not([hidden])").wait_for(timeout=10_000)
    assert pages["bob"].locator("[data-role=prompt]").inner_text() == pair(7)["prompt"]
    assert Vote.objects.filter(item__campaign=campaign).count() == 5
    assert dashboard.locator("[data-role=votes]").inner_text() == "5"
    assert dashboard.locator("[data-role=annotators] tr").count() == 2
    assert dashboard.locator("[data-role=leaderboard] tr").count() == 2  # small and large
    dashboard.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    if os.environ.get("LAB_SCREENSHOT_DIR"):
        os.makedirs(os.environ["LAB_SCREENSHOT_DIR"], exist_ok=True)
        for name in ("annotator.png", "dashboard.png"):
            shutil.copy(tmp_path / name, os.path.join(os.environ["LAB_SCREENSHOT_DIR"], f"feedback-{name}"))
    assert not errors, errors


def test_it_keeps_judgements_made_while_the_server_is_down(cast, processes, browser):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob], n_items=3, overlap=1)
    base_url = processes.web()
    page = browser.new_context().new_page()
    log_in(page, base_url, "bob", PASSWORD, lands_on="/campaigns/")
    page.goto(f"{base_url}/campaigns/{campaign.pk}/annotate/")
    page.wait_for_function("window.__labAnnotate.connected && window.__labAnnotate.current")
    web = next(p for p in processes.procs if p.args[2] == "daphne")

    processes.kill(web)
    page.locator("[data-role=connection]:not([hidden])").wait_for(timeout=10_000)
    _judge_with_keys(page, ["1", "2"])  # the two items the page holds: shown at once, votes kept
    assert Vote.objects.count() == 0
    processes.web(port=int(base_url.rsplit(":", 1)[1]))

    page.wait_for_function("window.__labAnnotate.votes === 2", timeout=20_000)
    assert page.locator("[data-role=connection]").is_hidden()
    assert Vote.objects.filter(annotator=cast.bob).count() == 2
    assert page.locator("[data-role=prompt]").inner_text() == campaign.items.last().prompt
