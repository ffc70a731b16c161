"""Export round trip: the campaign's votes become a lab preference dataset that training.datasets
validates and trl's DPOTrainer trains on unchanged; ties, both-bad and disagreements follow the
documented policy."""

import copy
import json

import pytest

from lab.datasets.models import Dataset
from lab.feedback.assignment import record_vote, take_items
from lab.feedback.export import NothingToExport, export_campaign
from lab.feedback.models import Assignment
from tests.feedback.builders import campaign_with_items
from tests.training.helpers import CORPUS
from training.datasets import describe, iter_records

pytestmark = pytest.mark.django_db

# Canonical labels each annotator gives items 1..6 (None: does not judge it).
JUDGEMENTS = {
    "alice": ["a", "b", "tie", "both_bad", "a", "a"],
    "carol": ["a", "b", "tie", "both_bad", "b", "a"],
}


def _judge(campaign, user, labels, strength="clearly"):
    items = list(campaign.items.order_by("pk"))
    for item, label in zip(items, labels, strict=True):
        queue = take_items(campaign, user, depth=len(items))
        assignment = next(a for a in queue if a.item_id == item.pk)
        Assignment.objects.filter(pk=assignment.pk).update(shown_order="ab")
        choice = {"a": "left", "b": "right"}.get(label, label)
        record_vote(campaign, user, item.pk, choice, strength=strength if label in "ab" else "", seconds=5)


def _judged_campaign(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.alice, cast.carol], n_items=6, overlap=2)
    _judge(campaign, cast.alice, JUDGEMENTS["alice"], strength="much")
    _judge(campaign, cast.carol, JUDGEMENTS["carol"], strength="slightly")
    return campaign


def test_it_exports_a_valid_preference_dataset_with_provenance(cast):
    campaign = _judged_campaign(cast)

    export = export_campaign(campaign, cast.alice, both_bad="unpaired")

    dataset = export.dataset
    assert (dataset.kind, dataset.n_records, dataset.team) == (Dataset.Kind.PREFERENCE, 3, cast.team)
    assert export.dropped == {"tie": 1, "both_bad": 1, "disagreement": 1}
    description = describe(dataset.absolute_path, "preference")
    assert description.ok and description.rows == 3
    records = [json.loads(line) for line in dataset.absolute_path.read_text().splitlines()]
    first = records[0]
    assert (first["prompt"], first["chosen"], first["rejected"]) == ("Question 1: what is 1 + 1?", "It is 2.", "I think 3.")
    assert first["margin"] == pytest.approx(2.0)  # much (3) and slightly (1)
    assert (first["annotators"], first["votes"], first["agreement"]) == (["alice", "carol"], 2, 1.0)
    assert (first["model_chosen"], first["model_rejected"]) == ("small", "large")
    assert records[1]["chosen"] == "I think 5." and records[1]["model_chosen"] == "large"
    bad = [json.loads(line) for line in export.bad_file.read_text().splitlines()]
    assert [(b["completion"], b["label"]) for b in bad] == [("It is 8.", False), ("I think 9.", False)]

    again = export_campaign(campaign, cast.alice)
    assert again.dataset == dataset and not again.created  # same votes, same bytes: one dataset


def test_it_refuses_to_export_a_campaign_without_a_winner(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.alice], n_items=1)

    with pytest.raises(NothingToExport):
        export_campaign(campaign, cast.alice)
    assert not Dataset.objects.exists()


def test_dpo_trainer_takes_the_export_unchanged(cast, tmp_path):
    torch = pytest.importorskip("torch")
    from datasets import load_dataset
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import DPOConfig, DPOTrainer

    from tests.training.helpers import FakeReporter
    from training.tokenizer import train_tokenizer
    from training.tokenizer_config import TokenizerConfig

    torch.manual_seed(0)
    torch.set_num_threads(1)
    export = export_campaign(_judged_campaign(cast), cast.alice)
    assert len(list(iter_records(export.dataset.absolute_path, "preference"))) == 3
    tokenizer_file = train_tokenizer(TokenizerConfig(corpus_path=str(CORPUS), output_dir=str(tmp_path / "tok"),
                                                     vocab_size=300), FakeReporter())
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file), eos_token="<|endoftext|>",
                                        pad_token="<|endoftext|>")
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=128, eos_token_id=tokenizer.eos_token_id,
                                         pad_token_id=tokenizer.pad_token_id))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    train = load_dataset("json", data_files=str(export.dataset.absolute_path), split="train")
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=4, per_device_train_batch_size=3, learning_rate=1e-2,
                     max_length=64, logging_steps=1, report_to=[], save_strategy="no", use_cpu=True,
                     dataloader_num_workers=0)

    reference = copy.deepcopy(model)  # a model built here has no hub id to load the reference from
    trainer = DPOTrainer(model=model, ref_model=reference, args=args, train_dataset=train, processing_class=tokenizer)
    trainer.train()

    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 4 and all(l == l for l in losses)  # noqa: E741 - finite, not NaN
    assert losses[-1] < losses[0]  # the policy moves towards the chosen answers
    changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert len(changed) == len(before)
