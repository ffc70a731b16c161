"""A cell's form reads as words in headless Chromium: the kind's basic fields first, the rest under a
collapsed "Advanced" that counts and marks the values changed from their defaults (as they are typed), labels in words,
and help text without raw backticks."""

import pytest

from lab.notebooks.models import Cell
from tests.browser.pages import open_page
from tests.builders import shakespeare_notebook
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_basic_fields_first_the_rest_under_a_collapsed_advanced_with_changes_marked(
        cast, sample_data, processes, browser, tmp_path):
    cells = shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])
    sft = Cell.objects.create(notebook=cells["notebook"], position=3, kind=Cell.Kind.SFT, title="Chat tune",
                              config={"model_cell": cells["pretrain"].pk, "method": "lora", "lora_r": 16, "beta2": 0.98})
    base_url = processes.web()
    page, errors = open_page(browser, base_url, f"/notebooks/{cells['notebook'].pk}/", "carol", PASSWORD, height=2400)
    page.screenshot(path=str(tmp_path / "notebook.png"), full_page=True)
    print(f"screenshot: {tmp_path / 'notebook.png'}")

    assert "{#" not in page.inner_text("body") and "{%" not in page.inner_text("body")
    cell = page.locator(f"#cell-{sft.pk}")
    advanced = cell.locator("[data-role=advanced]")
    for basic in ("model_cell", "dataset", "method", "max_steps", "lr", "lora_r"):
        assert cell.locator(f"[data-field={basic}]").is_visible(), basic
    assert advanced.get_attribute("open") is None
    assert not cell.locator("[data-field=beta2]").is_visible() and not cell.locator("[data-field=chat_template]").is_visible()
    assert cell.locator("label[for=id_lr]").inner_text() == "Learning rate"
    assert cell.locator("label[for=id_lora_r]").inner_text() == "LoRA rank"  # a basic field: no mark, changed or not
    # beta2 differs from its default: marked, and counted on the closed summary; beta1 is the default.
    assert advanced.locator("[data-role=changed-count]").inner_text() == "1 changed"
    advanced.locator("summary").click()
    assert cell.locator("[data-field=beta2]").is_visible()
    assert cell.locator("label[for=id_beta2]").inner_text().startswith("Adam β2")
    assert cell.locator("[data-field=beta2] [data-role=changed]").is_visible()
    beta1_mark = cell.locator("[data-field=beta1] [data-role=changed]")
    assert not beta1_mark.is_visible()
    # The marks follow what is typed, before anything is saved.
    cell.locator("input[name=beta1]").fill("0.85")
    assert beta1_mark.is_visible() and advanced.locator("[data-role=changed-count]").inner_text() == "2 changed"
    cell.locator("input[name=beta1]").fill("0.90")  # the default, written another way
    assert not beta1_mark.is_visible() and advanced.locator("[data-role=changed-count]").inner_text() == "1 changed"
    assert cell.locator("label[for=id_beta1]").inner_text() == "Adam β1"
    # Help text is text: a docstring's `code` is <code>, never a backtick.
    help_texts = cell.locator(".field small").all_inner_texts()
    assert help_texts and not any("`" in text for text in help_texts)
    assert cell.locator("[data-field=lora_alpha] small code").first.inner_text() == "lora_alpha / lora_r"
    labels = cell.locator(".field > label").all_inner_texts()
    assert not any("_" in label for label in labels), labels

    pretrain = page.locator(f"#cell-{cells['pretrain'].pk}")
    assert pretrain.locator("input[name=context_length]").is_visible()  # the estimate's fields stay at hand
    assert pretrain.locator("[data-role=advanced]").get_attribute("open") is None
    page.screenshot(path=str(tmp_path / "advanced-open.png"), full_page=True)
    assert errors == []
