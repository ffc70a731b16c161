"""The evaluate stage (training/evaluate.py): perplexity and multiple choice checked against plain
torch, generation, classification, a stop that keeps nothing, and the config's errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.training.helpers import CORPUS, SAMPLE_DATA, FakeReporter
from training.config_checks import ConfigError
from training.evaluate import evaluate_checkpoint, mc_picks, pass_at_k, run_evaluate, windows
from training.evaluate_config import EvaluateConfig

MMLU = SAMPLE_DATA / "eval" / "mmlu-test-500.jsonl"
GSM8K = SAMPLE_DATA / "eval" / "gsm8k-test-300.jsonl"


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def config(model: Path, dataset: Path, out: Path, **overrides) -> EvaluateConfig:
    return EvaluateConfig.from_dict({"models": [{"path": str(model), "label": "small", "artifact": 7}],
                                     "output_dir": str(out), "dataset_path": str(dataset), "device": "cpu",
                                     "batch_size": 3, **overrides})


def plain_logprob(model, ids: list[int], targets_from: int) -> float:
    """Σ log p(ids[j] | ids[:j]) for j ≥ targets_from: one unpadded forward, plain torch."""
    with torch.no_grad():
        logits = model(torch.tensor([ids[:-1]])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return sum(float(logprobs[j - 1, ids[j]]) for j in range(targets_from, len(ids)))


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> Path:
    """Seven Shakespeare documents, two longer than a 32-token context and one of a single word."""
    text = CORPUS.read_text(encoding="utf-8")
    docs = [text[0:400], text[400:460], text[460:1100], "Hark", text[1100:1180], text[1180:1240], text[1240:1300]]
    return write_jsonl(tmp_path_factory.mktemp("ppl") / "held-out.jsonl", [{"text": d} for d in docs])


@pytest.mark.parametrize("stride", [0, 9])
def test_it_gives_the_perplexity_plain_torch_gives(small_base_model, documents, tmp_path, stride):
    """Chunks (stride 0) and a sliding window, over batches of 3 padded windows, documents longer than
    the context: exp(mean token NLL), every token after each document's first scored once."""
    reporter = FakeReporter()
    cfg = config(small_base_model, documents, tmp_path, context_length=32, stride=stride)
    assert cfg.task == "perplexity"
    results = run_evaluate(cfg, reporter)

    tokenizer = AutoTokenizer.from_pretrained(small_base_model)
    model = AutoModelForCausalLM.from_pretrained(small_base_model, dtype=torch.float32).eval()
    total_nll, total_tokens = 0.0, 0
    for record in map(json.loads, documents.read_text().splitlines()):
        ids = tokenizer(record["text"])["input_ids"]
        step = stride or 32
        for start in range(1, len(ids), step):  # the window ending at `end` holds at most 32 positions
            end = min(start + step, len(ids))
            first = max(0, end - 33)
            total_nll -= plain_logprob(model, ids[first:end], start - first)
        total_tokens += len(ids) - 1
    expected = math.exp(total_nll / total_tokens)

    artifact = reporter.of_type("artifact")[0]
    metric = artifact["metadata"]["models"][0]["metrics"]["perplexity"]
    assert metric["value"] == pytest.approx(expected, rel=1e-4)
    assert metric["low"] < metric["value"] < metric["high"] and metric["interval"] == "bootstrap"
    assert artifact["metadata"]["models"][0]["tokens"] == total_tokens
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(7)) and rows[0]["model"] == "small" and rows[0]["artifact"] == 7
    assert sum(r["tokens"] for r in rows) == total_tokens
    assert evaluate_checkpoint(small_base_model, cfg)["perplexity"] == pytest.approx(metric["value"], rel=1e-6)


def test_windows_score_each_token_once_with_context_before_it():
    for n, context, stride in [(100, 32, 32), (100, 32, 9), (5, 32, 32), (33, 32, 32), (2, 4, 1)]:
        seen = []
        for a, s, e in windows(n, context, stride):
            assert a < s and e - a - 1 <= context
            seen += range(s, e)
        assert seen == list(range(1, n))


def test_acc_and_acc_norm_pick_by_sum_and_by_length():
    # "a" at -2 beats "bbbb" at -4 by sum; per character -4/4 = -1 beats -2/1.
    assert mc_picks(torch.tensor([-2.0, -4.0]).numpy(), ["a", "bbbb"]) == {"acc": 0, "acc_norm": 1, "acc_bytes": 1}
    # "éé" is two characters but four UTF-8 bytes: per character -3.5/2 loses to -2/2, per byte -3.5/4 wins.
    assert mc_picks(torch.tensor([-3.5, -2.0]).numpy(), ["éé", "bb"]) == {"acc": 1, "acc_norm": 1, "acc_bytes": 0}


QUESTIONS = [
    {"subject": "fruit", "question": "Which is yellow?", "choices": ["banana", "kiwi", "a plum"], "answer": 0},
    {"subject": "fruit", "question": "Which grows on vines?", "choices": ["grape", "melon", "fig"], "answer": 0},
    {"subject": "kings", "question": "Who was king of Rome?", "choices": ["Tarquin", "Lear", "Cymbeline"], "answer": 1},
    {"subject": "kings", "question": "Who lost his kingdom to his daughters?", "choices": ["Lear", "Duncan"], "answer": 0},
]


def test_multiple_choice_accuracy_is_what_the_log_likelihoods_say(small_base_model, tmp_path):
    dataset = write_jsonl(tmp_path / "mc.jsonl", QUESTIONS)
    reporter = FakeReporter()
    results = run_evaluate(config(small_base_model, dataset, tmp_path / "out"), reporter)
    rows = [json.loads(line) for line in results.read_text().splitlines()]

    tokenizer = AutoTokenizer.from_pretrained(small_base_model)
    model = AutoModelForCausalLM.from_pretrained(small_base_model, dtype=torch.float32).eval()
    right = right_norm = 0
    for q, row in zip(QUESTIONS, rows, strict=True):
        context = f"The following are multiple choice questions (with answers) about {q['subject']}.\n\n" \
                  f"Question: {q['question']}\nAnswer:"
        logliks = []
        for choice in q["choices"]:
            n_context = len(tokenizer(context)["input_ids"])
            whole = tokenizer(context + " " + choice)["input_ids"]
            logliks.append(plain_logprob(model, whole, n_context))
        assert row["logliks"] == pytest.approx(logliks, abs=1e-4)
        right += max(range(len(logliks)), key=logliks.__getitem__) == q["answer"]
        right_norm += max(range(len(logliks)), key=lambda i: logliks[i] / len(q["choices"][i])) == q["answer"]
        assert row["subject"] == q["subject"] and row["target"] == q["choices"][q["answer"]]

    model_result = reporter.of_type("artifact")[0]["metadata"]["models"][0]
    assert model_result["metrics"]["acc"]["value"] == right / 4
    assert model_result["metrics"]["acc_norm"]["value"] == right_norm / 4
    assert set(model_result["subjects"]) == {"fruit", "kings"}
    assert model_result["subjects"]["fruit"]["acc"]["n"] == 2


def test_a_model_trained_to_prefer_a_choice_scores_it(small_base_model, tmp_path):
    """A few steps of plain torch on "… Answer: Lear" move the model from wrong to right."""
    question = [{"question": "Who lost his kingdom to his daughters?", "choices": ["Duncan", "Lear", "Macbeth"], "answer": 1}]
    dataset = write_jsonl(tmp_path / "one.jsonl", question)
    cfg = config(small_base_model, dataset, tmp_path / "out")

    tokenizer = AutoTokenizer.from_pretrained(small_base_model)
    model = AutoModelForCausalLM.from_pretrained(small_base_model, dtype=torch.float32)
    ids = torch.tensor([tokenizer("Question: Who lost his kingdom to his daughters?\nAnswer: Lear")["input_ids"]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(15):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    trained = tmp_path / "trained"
    model.save_pretrained(trained)
    tokenizer.save_pretrained(trained)

    assert evaluate_checkpoint(trained, cfg)["acc"] == 1.0


def test_generation_reads_answers_and_counts_pass_at_k(small_base_model, tmp_path):
    reporter = FakeReporter()
    cfg = config(small_base_model, GSM8K, tmp_path, max_examples=3, num_fewshot=1, samples=2, temperature=1.0,
                 max_new_tokens=6, answer_extraction="last_number")
    assert cfg.task == "generation"
    results = run_evaluate(cfg, reporter)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["target"] for r in rows] == ["18", "3", "70000"]  # the references' `#### n`
    assert all(len(r["samples"]) == 2 and r["answer"] == r["samples"][0]["answer"] for r in rows)
    metrics = reporter.of_type("artifact")[0]["metadata"]["models"][0]["metrics"]
    assert set(metrics) == {"exact_match", "pass@2"}
    progress = [e["values"]["progress"] for e in reporter.of_type("metric")]
    assert progress == sorted(progress) and progress[-1] == 1.0
    # The unbiased estimator: 5 responses, 2 right.
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4) and pass_at_k(5, 2, 4) == 1.0
    assert pass_at_k(5, 0, 3) == 0.0 and pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)


def test_a_reward_model_scores_the_answers_and_gives_a_win_rate(small_base_model, small_base_run, tmp_path):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(small_base_model, num_labels=1).save_pretrained(tmp_path / "rm")
    AutoTokenizer.from_pretrained(small_base_model).save_pretrained(tmp_path / "rm")
    models = [{"path": str(small_base_run / "checkpoint-30"), "label": "early"}, {"path": str(small_base_model), "label": "late"}]
    reporter = FakeReporter()
    results = run_evaluate(config(small_base_model, GSM8K, tmp_path / "out", models=models, max_examples=4,
                                  max_new_tokens=5, reward_model=str(tmp_path / "rm")), reporter)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    reward = {m: [r["reward"] for r in rows if r["model"] == m] for m in ("early", "late")}
    assert all(r["reward"] == r["samples"][0]["reward"] for r in rows)
    early, late = reporter.of_type("artifact")[0]["metadata"]["models"]
    assert early["metrics"]["reward"]["value"] == pytest.approx(sum(reward["early"]) / 4)
    assert "win_rate" not in early["metrics"] and late["baseline"] == "early"
    wins = sum(1.0 if b > a else 0.5 if b == a else 0.0 for a, b in zip(reward["early"], reward["late"], strict=True))
    assert late["metrics"]["win_rate"]["value"] == pytest.approx(wins / 4)
    with pytest.raises(ConfigError) as e:
        config(small_base_model, MMLU, tmp_path, reward_model=str(tmp_path / "rm"))
    assert e.value.field == "reward_model" and "generates none" in e.value.message
    with pytest.raises(ConfigError) as e:
        config(small_base_model, GSM8K, tmp_path, reward_model=str(small_base_model))
    assert e.value.field == "reward_model" and "not a reward model" in e.value.message
    with pytest.raises(ConfigError) as e:
        config(small_base_model, GSM8K, tmp_path, baseline="nobody")
    assert e.value.field == "baseline"


def test_a_stop_mid_evaluation_keeps_nothing(small_base_model, tmp_path):
    reporter = FakeReporter(stop_at_step=1)
    cfg = config(small_base_model, MMLU, tmp_path / "out", max_examples=12, batch_size=4)
    assert run_evaluate(cfg, reporter) is None
    assert list((tmp_path / "out").iterdir()) == []
    assert reporter.of_type("status")[-1]["status"] == "cancelled" and not reporter.of_type("artifact")


def test_a_classifier_is_scored_on_a_classification_dataset(small_base_model, tmp_path):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    classifier = AutoModelForSequenceClassification.from_pretrained(
        small_base_model, num_labels=2, id2label={0: "ham", 1: "spam"}, label2id={"ham": 0, "spam": 1})
    classifier.save_pretrained(tmp_path / "clf")
    AutoTokenizer.from_pretrained(small_base_model).save_pretrained(tmp_path / "clf")
    sms = SAMPLE_DATA / "classification" / "sms-spam-5k.tsv"
    reporter = FakeReporter()
    results = run_evaluate(config(tmp_path / "clf", sms, tmp_path / "out", dataset_format="tsv", max_examples=20,
                                  batch_size=8), reporter)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    result = reporter.of_type("artifact")[0]["metadata"]["models"][0]
    assert result["metrics"]["accuracy"]["value"] == sum(r["correct"] for r in rows) / 20
    assert result["labels"] == ["ham", "spam"] and sum(map(sum, result["confusion_matrix"])) == 20


@pytest.mark.parametrize(("overrides", "field", "words"), [
    ({"task": "perplexity"}, "task", "is evaluated with multiple_choice"),
    ({"context_length": 16, "stride": 17}, "stride", "at most context_length"),
    ({"samples": 4}, "samples", "greedy decoding"),
    ({"answer_extraction": "(unclosed"}, "answer_extraction", "not a regular expression"),
    ({"num_fewshot": 10**6}, "num_fewshot", "at most 25"),
    ({"models": [{"path": "/nowhere", "label": "x"}]}, "models[0].path", ""),
    ({"models": [{"path": "/nowhere", "label": "x", "extra": 1}]}, "models[0].extra", "unknown key"),
])
def test_a_bad_config_names_its_field(small_base_model, tmp_path, overrides, field, words):
    with pytest.raises(ConfigError) as e:
        config(small_base_model, MMLU, tmp_path, **overrides)
    assert e.value.field == field and words in e.value.message


def test_a_dataset_of_another_kind_is_refused(small_base_model, tmp_path):
    with pytest.raises(ConfigError) as e:
        config(small_base_model, SAMPLE_DATA / "preference" / "hh-harmless-test-1811.jsonl", tmp_path)
    assert e.value.field == "dataset" and "preference dataset cannot be evaluated" in e.value.message
