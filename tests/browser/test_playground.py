"""A person talks to the team's model in the playground: a typed prompt streams an answer from an inference
worker (Daphne, Redis and a Celery worker), time to first token and tokens/s show under it, the inspector
opens on a token with the alternatives the model weighed there, and picking one continues the answer from it."""

import os
import shutil

import pytest

from lab.hub.base_models import register_model_folder
from lab.queues import INFERENCE_QUEUE
from tests.browser.pages import open_page
from tests.builders import brought_model
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser]
SHOTS = "/tmp/shots/playground"


def test_a_prompt_streams_an_answer_and_the_inspector_branches_from_a_token(cast, processes, browser, data_dir, base_model, tmp_path):
    model = register_model_folder(cast.team, brought_model(base_model, data_dir, "chat"), "chat base", cast.alice)
    base_url = processes.web()
    processes.worker("inference", queues=INFERENCE_QUEUE, pool="solo")
    page, errors = open_page(browser, base_url, f"/models/{model.pk}/playground/", "carol", PASSWORD, height=1000)
    page.wait_for_function("document.getElementById('playground').dataset.connected === '1'")
    page.fill("[name=max_new_tokens]", "16")
    page.fill("[name=seed]", "4")
    page.fill("[name=prompt]", "Speak, my lord: what news from the court?")
    page.click("[data-role=send]")

    stats = page.locator("[data-role=answer-stats]").first
    stats.wait_for(timeout=90_000)  # the worker loads the model first
    assert "first token" in stats.inner_text() and "tokens/s" in stats.inner_text()
    tokens = page.locator("[data-role=answer] .tok-out")
    assert tokens.count() >= 4
    answer = page.locator("[data-role=answer] .tokens-out").first.inner_text()

    tokens.nth(2).click()
    inspector = page.locator("[data-role=inspector]")
    inspector.wait_for(state="visible")
    rows = inspector.locator("[data-role=alternatives] li")
    assert rows.count() == 5 and inspector.locator("li.chosen").count() == 1
    page.screenshot(path=str(tmp_path / "inspector.png"), full_page=True)

    pick = inspector.locator("li.alt:not(.chosen)").first
    picked = pick.get_attribute("data-token-id")
    pick.click()
    page.wait_for_function("!document.querySelector('[data-role=answer][data-streaming]') && "
                           "document.querySelector('[data-role=answer-stats]')")
    branched = page.locator("[data-role=answer] .tok-out")
    assert branched.nth(2).get_attribute("class").endswith("picked")
    assert branched.nth(2).get_attribute("data-token-id") == picked
    assert page.locator("[data-role=answer] .tokens-out").first.inner_text() != answer
    page.screenshot(path=str(tmp_path / "branch.png"), full_page=True)

    shots = os.environ.get("LAB_SCREENSHOT_DIR", SHOTS)
    os.makedirs(shots, exist_ok=True)
    for name in ("inspector.png", "branch.png"):
        shutil.copy(tmp_path / name, os.path.join(shots, f"playground-{name}"))
    assert not errors, errors
