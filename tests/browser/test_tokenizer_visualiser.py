"""A person in headless Chromium types into a tokenizer cell's "try it" box, compares it with a
second tokenizer of the team, and sees both colourings redrawn from exactly the typed characters."""

import os
import shutil

import pytest

from lab.notebooks.models import Notebook
from tests.browser.pages import open_page
from tests.conftest import PASSWORD
from tests.lab.test_tokenizer_visualiser import add_tokenizer, trained  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser]

TYPED = "But, soft!  東京\nwhat light"


def test_it_colours_the_typed_text_under_two_tokenizers_as_the_user_types(
    cast, trained, processes, browser, tmp_path  # noqa: F811 (the imported fixture)
):
    notebook = Notebook.objects.create(team=cast.team, title="Splits", created_by=cast.alice)
    bpe = add_tokenizer(cast.team, cast.alice, trained, "bpe", notebook)
    wordpiece = add_tokenizer(cast.team, cast.alice, trained, "wordpiece", notebook)
    base_url = processes.web()
    page, errors = open_page(browser, base_url, f"/notebooks/{notebook.pk}/", "carol", PASSWORD)

    box = page.locator(f"#cell-{bpe.run.cell_id} .tokenizer-box")
    mine, other = box.locator("[data-role=this-tokenizer]"), box.locator("[data-role=other-tokenizer]")
    mine.locator(".token").first.wait_for()
    assert "tokens per word" in box.locator("[data-role=corpus-stats]").inner_text()

    box.locator(".try-text").fill(TYPED)
    mine.locator("[data-role=tokens]").filter(has_text="東京").wait_for()
    assert mine.locator("[data-role=tokens]").text_content() == TYPED
    assert mine.locator("[data-role=token-stats]").get_attribute("data-unknown") == "0"
    assert mine.locator(".token.shared").count() >= 2  # the bytes of 東 and of 京 share their character
    assert mine.locator(".token").first.get_attribute("title").startswith("id ")

    options = box.locator("[data-role=compare-with] option")
    options.nth(1).wait_for(state="attached")
    assert options.all_text_contents() == ["nothing", f"{wordpiece.name} · wordpiece · 512 tokens"]
    box.locator("[data-role=compare-with]").select_option(str(wordpiece.pk))
    other.wait_for(state="visible")
    assert other.locator("[data-role=tokens]").text_content() == TYPED
    assert int(other.locator("[data-role=token-stats]").get_attribute("data-unknown")) > 0
    assert other.locator(".token.unk").count() > 0
    assert other.locator("[data-role=name]").inner_text().startswith(wordpiece.name)

    box.locator(".try-text").fill("what light")  # both redraw as the text changes
    other.locator("[data-role=token-stats][data-unknown='0']").wait_for()
    assert mine.locator("[data-role=tokens]").text_content() == "what light"
    assert other.locator("[data-role=tokens]").text_content() == "what light"

    page.screenshot(path=str(tmp_path / "tokenizer-compare.png"), full_page=True)
    if os.environ.get("LAB_SCREENSHOT_DIR"):
        os.makedirs(os.environ["LAB_SCREENSHOT_DIR"], exist_ok=True)
        shutil.copy(tmp_path / "tokenizer-compare.png", os.environ["LAB_SCREENSHOT_DIR"])
    assert not errors, errors
