"""The dataset page shows what a model trains on: a record rendered with a tokenizer's chat template,
its prompt tokens apart from the assistant tokens that carry the loss; and token counts."""

import hashlib
import html
import json
import re

import pytest
from django.test import Client

from lab.datasets.actions import create_dataset_from_path
from lab.datasets.chat_preview import chat_previews
from lab.runs.models import Artifact, Run
from tests.training.helpers import FakeReporter
from training.config import CHATML_SPECIAL_TOKENS, CHATML_TEMPLATE
from training.tokenizer import train_tokenizer
from training.tokenizer_config import TokenizerConfig

pytestmark = pytest.mark.django_db


@pytest.fixture
def tokenizer_artifact(cast, sample_data, settings, tmp_path):
    out = settings.LAB_DATA_DIR / "runs" / "tok"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(sample_data["corpora/tinyshakespeare.txt"].read_text()[:300_000])
    cfg = TokenizerConfig(corpus_path=str(corpus), output_dir=str(out), vocab_size=600,
                          special_tokens=["<|endoftext|>", "<|pad|>", *CHATML_SPECIAL_TOKENS], chat_template=CHATML_TEMPLATE)
    reporter = FakeReporter()
    path = train_tokenizer(cfg, reporter)
    run = Run.objects.create(team=cast.team, stage="tokenizer", config={}, status="succeeded")
    return Artifact.objects.create(team=cast.team, run=run, kind="tokenizer", name="chatml 600",
                                   path=str(path.relative_to(settings.LAB_DATA_DIR)),
                                   sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                                   metadata=reporter.of_type("artifact")[0]["metadata"])


def test_only_the_assistant_turns_are_trained(tokenizer_artifact):
    record = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who is there?"},
                           {"role": "assistant", "content": "Nay, answer me."}, {"role": "user", "content": "Long live the king!"},
                           {"role": "assistant", "content": "Bernardo?"}]}

    [preview] = chat_previews(record, "sft", tokenizer_artifact.absolute_path)

    rendered = "".join(t.text for t in preview.tokens)
    trained = "".join(t.text for t in preview.tokens if t.trained)
    assert rendered.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    assert trained == "Nay, answer me.<|im_end|>\nBernardo?<|im_end|>\n"
    assert "<|im_start|>assistant\n" in rendered and "Who is there?" not in trained


def test_a_preference_record_shows_the_chosen_and_the_rejected_reply(tokenizer_artifact):
    record = {"prompt": "Is it the king?", "chosen": "It is.", "rejected": "No idea."}

    chosen, rejected = chat_previews(record, "preference", tokenizer_artifact.absolute_path)

    assert (chosen.title, rejected.title) == ("chosen", "rejected")
    assert "".join(t.text for t in chosen.tokens if t.trained) == "It is.<|im_end|>\n"
    assert "".join(t.text for t in rejected.tokens if t.trained) == "No idea.<|im_end|>\n"


def test_the_page_counts_tokens_and_colours_the_first_record(cast, sample_data, tokenizer_artifact):
    dataset = create_dataset_from_path(cast.team, cast.alice, sample_data["sft/dolly-2k.messages.jsonl"])
    page = Client()
    page.force_login(cast.alice)

    body = html.unescape(page.get(f"/datasets/{dataset.pk}/?tokenizer={tokenizer_artifact.pk}").content.decode())

    assert "What the model trains on" in body
    assert len(re.findall(r'class="tok trained"', body)) > 5 and len(re.findall(r'class="tok prompt"', body)) > 5
    dataset.refresh_from_db()
    counted = dataset.stats["tokens_by_tokenizer"][tokenizer_artifact.sha256]
    assert counted["count"] == 2000 and counted["total"] > dataset.stats["chars"]["total"] / 6
    assert f'{counted["total"]} tokens in all' in body


def test_another_teams_tokenizer_is_not_offered_nor_used(cast, sample_data, tokenizer_artifact):
    dataset = create_dataset_from_path(cast.other_team, cast.mallory, sample_data["sft/dolly-2k.messages.jsonl"])
    page = Client()
    page.force_login(cast.mallory)

    body = page.get(f"/datasets/{dataset.pk}/?tokenizer={tokenizer_artifact.pk}").content.decode()

    assert "What the model trains on" not in body and "chatml 600" not in body


def test_the_page_colours_the_record_chosen_and_keeps_the_tokenizer_across_pages(cast, sample_data, tokenizer_artifact):
    dataset = create_dataset_from_path(cast.team, cast.alice, sample_data["sft/dolly-2k.messages.jsonl"])
    page = Client()
    page.force_login(cast.alice)
    url = f"/datasets/{dataset.pk}/?tokenizer={tokenizer_artifact.pk}"
    first = html.unescape(page.get(url).content.decode())
    size = len(re.findall('data-role="see-as-trained"', first))
    assert size > 2

    third = html.unescape(page.get(f"{url}&page=2&record=2").content.decode())

    assert f"record {size + 3}, chatml 600" in third  # page 2's third record
    [(href, label)] = re.findall(r'<a class="record-pick shown" href="([^"]+)"[^>]*>([^<]+)</a>', third)
    assert label == f"record {size + 3}: see it as trained" and "record=2" in href
    shown_record = json.loads(re.findall(r'<pre class="preview">(.*?)</pre>', third, re.S)[2])
    trained = "".join(re.findall(r'class="tok trained"[^>]*>([^<]*)<', third))
    assert shown_record["messages"][-1]["content"][:40] in trained  # its answer is what is coloured trained
    assert f'href="?tokenizer={tokenizer_artifact.pk}&page=3"' in third  # next page keeps the tokenizer
    assert f"record {size}, chatml 600" in html.unescape(page.get(f"{url}&record=999").content.decode())  # the last
    assert "record 1, chatml 600" in html.unescape(page.get(f"{url}&record=x").content.decode())
