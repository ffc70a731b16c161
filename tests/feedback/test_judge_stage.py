"""The judge stage (training/judge.py) on the tiny lab checkpoint: both orders are asked and kept, the
canonical label does not depend on which response the file lists first, and bad pairs files and
models of the wrong kind are refused with the field and line."""

import json
from pathlib import Path

import pytest

from tests.training.helpers import FakeReporter
from training.config import ConfigError
from training.judge import read_pairs, rubric_judgement
from training.judge_config import JUDGEMENTS_FILE, JudgeConfig
from training.stages import STAGES

QUESTIONS = [("What is 2 + 2?", "2 + 2 is 4.", "2 + 2 is 5, I believe."),
             ("Name a colour.", "Blue.", "A colour is a kind of fish."),
             ("Say hello.", "Hello!", "")]


def write_pairs(path: Path, pairs: list[tuple[int, str, str, str]]) -> Path:
    path.write_text("".join(json.dumps({"item": i, "prompt": p, "response_a": a, "response_b": b}) + "\n"
                            for i, p, a, b in pairs), encoding="utf-8")
    return path


def test_the_label_is_the_response_preferred_in_both_orders_and_a_swap_changes_nothing():
    assert rubric_judgement(1, 0.8, 0.3, (0.5, 0.5))["label"] == "a"  # a first: a; b first: a
    assert rubric_judgement(1, 0.3, 0.8, (0.5, 0.5))["label"] == "b"
    assert rubric_judgement(1, 0.8, 0.7, (0.5, 0.5))["label"] == "tie"  # the first shown won both times
    for p_ab, p_ba in ((0.8, 0.3), (0.3, 0.8), (0.8, 0.7), (0.2, 0.45), (0.5, 0.1)):
        # The same pair listed the other way round: its a is our b, and each order's question is the other's.
        listed, swapped = rubric_judgement(1, p_ab, p_ba, (1, 1)), rubric_judgement(2, p_ba, p_ab, (1, 1))
        flip = {"a": "b", "b": "a", "tie": "tie"}
        assert swapped["label"] == flip[listed["label"]]
        assert swapped["answers"]["p_a"] == pytest.approx(1 - listed["answers"]["p_a"])


def test_a_checkpoint_judges_each_pair_in_both_orders(base_model, tmp_path):
    listed = [(k, *q) for k, q in enumerate(QUESTIONS, start=1)]
    swapped = [(100 + k, p, b, a) for k, p, a, b in listed]
    cfg = JudgeConfig(model_path=str(base_model), output_dir=str(tmp_path / "run"), guidelines="Prefer the correct answer.",
                      pairs_path=str(write_pairs(tmp_path / "pairs.jsonl", listed + swapped)), batch_size=4)
    reporter = FakeReporter()
    path = STAGES["judge"].run(cfg, reporter)

    assert path == tmp_path / "run" / JUDGEMENTS_FILE
    judged = {j["item"]: j for j in map(json.loads, path.read_text().splitlines())}
    assert sorted(judged) == [1, 2, 3, 101, 102, 103]
    for k, _, a, b in listed:
        orders = judged[k]["answers"]["orders"]
        assert [o["first"] for o in orders] == ["a", "b"]
        assert all(0 < o["p_first"] < 1 and 0 < o["letters"] <= 1 for o in orders)
        # Swapped in the file, the judge still picks the same response text (or ties on both).
        text = {"a": a, "b": b, "tie": None}
        text_swapped = {"a": b, "b": a, "tie": None}
        assert text[judged[k]["label"]] == text_swapped[judged[100 + k]["label"]]
        # Each order of the swapped pair is the same question as the other order of the listed one.
        other = judged[100 + k]["answers"]["orders"]
        assert orders[0]["p_first"] == pytest.approx(other[1]["p_first"], abs=1e-4)
    (artifact,) = reporter.of_type("artifact")
    assert artifact["kind"] == "judgements" and artifact["metadata"]["pairs"] == 6
    decisive = [o for j in judged.values() for o in j["answers"]["orders"] if o["choice"] != "tie"]
    assert artifact["metadata"]["first_preferred"] == pytest.approx(
        sum(o["choice"] == o["first"] for o in decisive) / len(decisive))
    assert reporter.of_type("status")[-1]["status"] == "succeeded"


def tiny_reward_model(folder: Path, chat_tokenizer_path: Path) -> Path:
    """A reward model as interface 1 has it: a sequence classifier with one score, its tokenizer (with
    the chat template) beside it; random weights, so its preferences are arbitrary but fixed."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from training.checkpoint import hf_tokenizer

    tokenizer = hf_tokenizer(chat_tokenizer_path, 128)
    torch.manual_seed(0)
    LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=128, num_labels=1, pad_token_id=tokenizer.pad_token_id)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_reward_model_judges_by_the_higher_score(chat_tokenizer_path, tmp_path):
    from training.reward import load_reward_scorer

    model = tiny_reward_model(tmp_path / "reward", chat_tokenizer_path)
    listed = [(k, *q) for k, q in enumerate(QUESTIONS, start=1)]
    swapped = [(100 + k, p, b, a) for k, p, a, b in listed]
    cfg = JudgeConfig(model_path=str(model), output_dir=str(tmp_path / "run"), method="reward", batch_size=4,
                      pairs_path=str(write_pairs(tmp_path / "pairs.jsonl", listed + swapped)))
    reporter = FakeReporter()
    judged = {j["item"]: j for j in map(json.loads, STAGES["judge"].run(cfg, reporter).read_text().splitlines())}

    scores = load_reward_scorer(model).score([p for _, p, _, _ in listed], [a for _, _, a, _ in listed], batch_size=2)
    for (k, *_), score_a in zip(listed, scores, strict=True):
        answers = judged[k]["answers"]
        assert answers["score_a"] == pytest.approx(score_a, abs=1e-4)  # the scorer's own reward, batch aside
        assert judged[k]["label"] == ("a" if answers["score_a"] > answers["score_b"] else "b")
        assert judged[100 + k]["answers"]["score_b"] == pytest.approx(answers["score_a"], abs=1e-4)
        assert {"a": "b", "b": "a"}[judged[k]["label"]] == judged[100 + k]["label"]  # the same response wins
    metadata = reporter.of_type("artifact")[0]["metadata"]
    assert metadata["method"] == "reward" and "first_preferred" not in metadata


def test_a_stop_keeps_nothing(base_model, tmp_path):
    cfg = JudgeConfig(model_path=str(base_model), output_dir=str(tmp_path / "run"), batch_size=2,
                      pairs_path=str(write_pairs(tmp_path / "pairs.jsonl", [(k, *q) for k, q in enumerate(QUESTIONS)])))
    reporter = FakeReporter(stop_at_step=1)
    assert STAGES["judge"].run(cfg, reporter) is None
    assert reporter.of_type("status")[-1]["status"] == "cancelled" and not (tmp_path / "run" / JUDGEMENTS_FILE).exists()


@pytest.mark.parametrize("line, says", [
    ("not json", "line 2: not valid JSON"),
    ("[1, 2]", "line 2: must be a JSON object"),
    ('{"item": 1, "prompt": "p", "response_a": "a"}', "line 2: has no response_b"),
    ('{"item": "1", "prompt": "p", "response_a": "a", "response_b": "b"}', "line 2: item must be a whole number"),
    ('{"item": 1, "prompt": "p", "response_a": "a", "response_b": ' + "[" * 100 + "]" * 100 + "}", "line 2: not valid JSON"),
])
def test_a_bad_pairs_line_is_named(tmp_path, line, says):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"item": 1, "prompt": "p", "response_a": "a", "response_b": "b"}) + "\n" + line + "\n")
    with pytest.raises(ConfigError) as e:
        read_pairs(path)
    assert e.value.field == "pairs_path" and says in e.value.message


def test_a_model_of_the_wrong_kind_is_refused(base_model, tmp_path):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    with pytest.raises(ConfigError, match="is not a reward model") as e:
        JudgeConfig(model_path=str(base_model), output_dir=str(tmp_path), method="reward")
    assert e.value.field == "model_path"
    classifier = tmp_path / "classifier"
    LlamaForSequenceClassification(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                               num_attention_heads=2, num_labels=3, pad_token_id=0)).save_pretrained(classifier)
    with pytest.raises(ConfigError, match="is a classifier") as e:
        JudgeConfig(model_path=str(classifier), output_dir=str(tmp_path), method="rubric")
    with pytest.raises(ConfigError, match="3 outputs"):
        JudgeConfig(model_path=str(classifier), output_dir=str(tmp_path), method="reward")
    with pytest.raises(ConfigError) as e:
        JudgeConfig(model_path=str(base_model), output_dir=str(tmp_path), method="vibes")
    assert e.value.field == "method"
