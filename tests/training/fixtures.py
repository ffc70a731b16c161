"""Fixtures of models and data, built once per session: the sample corpus, a small tokenizer and
its encoded corpus, tiny pretrained base models, an SMS spam subset and a spam classifier.

A pytest plugin (tests/conftest.py lists it), so every test directory has these fixtures and a
session fixture is built once per session. The base model is what the lab makes: a byte-level BPE tokenizer with the ChatML
template and tokens, and a Llama decoder (~380k parameters, 256 positions) that the pretrain stage
trained for a few seconds on tinyshakespeare, continuing from random weights of that shape
(`init_from`). So it is a real lab checkpoint, not random, and small enough for two busy cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.helpers import CORPUS, SAMPLE_DATA, FakeReporter
from training.tokenizer_config import TokenizerConfig

SFT_MESSAGES = SAMPLE_DATA / "sft" / "dolly-2k.messages.jsonl"
SFT_ALPACA = SAMPLE_DATA / "sft" / "dolly-2k.jsonl"
PREFERENCE = SAMPLE_DATA / "preference" / "hh-harmless-test-1811.jsonl"
BASE_CONTEXT = 256
BASE_SHAPE = {
    "hidden_size": 96, "intermediate_size": 256, "num_hidden_layers": 3,
    "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": BASE_CONTEXT,
}


@pytest.fixture(scope="session")
def corpus() -> Path:
    assert CORPUS.is_file(), f"sample corpus missing: {CORPUS} (run `make sample-data` or set LAB_SAMPLE_DATA)"
    return CORPUS


@pytest.fixture(scope="session")
def tokenizer_path(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512-token byte-level BPE tokenizer trained once on tinyshakespeare."""
    from training.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    cfg = TokenizerConfig(corpus_path=str(corpus), output_dir=str(out), vocab_size=512)
    path = train_tokenizer(cfg, FakeReporter())
    assert path is not None
    return path


@pytest.fixture(scope="session")
def tokens_cache(corpus: Path, tokenizer_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tinyshakespeare encoded once; `run_dir` copies it so each run skips the encoding (the sidecar's
    hashes still vouch for it, which exercises the reuse path)."""
    from training.data import prepare_tokens

    out = tmp_path_factory.mktemp("tokens")
    assert prepare_tokens(str(corpus), "txt", str(tokenizer_path), out, FakeReporter()) is not None
    return out


@pytest.fixture(scope="session")
def chat_tokenizer_path(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512-token byte-level BPE tokenizer with the ChatML template and its two tokens."""
    return _train_chat_tokenizer(corpus, tmp_path_factory)


@pytest.fixture(scope="session")
def base_model(corpus: Path, chat_tokenizer_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a lab pretrain checkpoint (`checkpoint-40`) that chats in ChatML."""
    return _pretrain_chat_base(corpus, chat_tokenizer_path, tmp_path_factory)


def _train_chat_tokenizer(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.config import CHATML_SPECIAL_TOKENS, CHATML_TEMPLATE
    from training.tokenizer import train_tokenizer
    from training.tokenizer_config import TokenizerConfig

    cfg = TokenizerConfig(
        corpus_path=str(corpus), output_dir=str(tmp_path_factory.mktemp("chat-tokenizer")),
        vocab_size=512, special_tokens=["<|endoftext|>", "<|pad|>", *CHATML_SPECIAL_TOKENS],
        chat_template=CHATML_TEMPLATE,
    )
    path = train_tokenizer(cfg, FakeReporter())
    assert path is not None
    return path


def _pretrain_chat_base(corpus: Path, chat_tokenizer_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from training import presets
    from training.checkpoint import hf_tokenizer
    from training.pretrain import pretrain
    from training.pretrain_config import PretrainConfig

    tmp = tmp_path_factory.mktemp("base-model")
    tokenizer = hf_tokenizer(chat_tokenizer_path, BASE_CONTEXT)
    config = LlamaConfig(
        **(presets.get_preset("tiny") | BASE_SHAPE), vocab_size=len(tokenizer),
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp / "random")
    cfg = PretrainConfig.from_dict({
        "corpus_path": str(corpus), "tokenizer_path": str(chat_tokenizer_path), "output_dir": str(tmp / "run"),
        "init_from": str(tmp / "random"), "context_length": 128, "batch_size": 8, "max_steps": 40,
        "warmup_steps": 4, "lr": 1e-2, "log_every": 10, "eval_every": 0, "sample_every": 0,
        "checkpoint_every_steps": 0,
    })
    reporter = FakeReporter()
    folder = pretrain(cfg, reporter)
    assert folder is not None
    losses = reporter.losses()
    assert losses[-1] < losses[0] - 0.25, losses  # it learned something: not a random model
    return folder


# Fixtures of the classify, predict and generate tests. Each is built once per session: a session
# fixture imported into several test modules would otherwise run once per module.
SMS_SPAM = SAMPLE_DATA / "classification" / "sms-spam-5k.tsv"
SMALL_BASE_CONTEXT = 128
SMALL_BASE_SHAPE = {
    "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": SMALL_BASE_CONTEXT,
}


@pytest.fixture(scope="session")
def small_base_run(corpus: Path, tokenizer_path: Path, tokens_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretrain run folder holding `checkpoint-30` and `checkpoint-60`: a Llama decoder of ~130k
    parameters and 128 positions on the conftest's 512-token tokenizer (no chat template), trained
    by the pretrain stage for a few seconds from random weights of that shape."""
    return _pretrain_small_base(corpus, tokenizer_path, tokens_cache, tmp_path_factory)


@pytest.fixture(scope="session")
def small_base_model(small_base_run: Path) -> Path:
    return small_base_run / "checkpoint-60"


@pytest.fixture(scope="session")
def sms_spam_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1000 lines of the SMS spam set, drawn with random.Random(0), stratified: 134 spam, 866 ham
    (the whole file's 13% spam)."""
    import random

    lines = SMS_SPAM.read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    rng = random.Random(0)
    chosen = rng.sample([r for r in rows if r.startswith("spam\t")], 134)
    chosen += rng.sample([r for r in rows if r.startswith("ham\t")], 866)
    rng.shuffle(chosen)
    path = tmp_path_factory.mktemp("sms") / "sms-spam-1k.tsv"
    path.write_text("\n".join([header, *chosen]) + "\n", encoding="utf-8")
    return path


def _pretrain_small_base(corpus: Path, tokenizer_path: Path, tokens_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from training import presets
    from training.checkpoint import hf_tokenizer
    from training.pretrain import pretrain
    from training.pretrain_config import PretrainConfig

    tmp = tmp_path_factory.mktemp("small-base")
    tokenizer = hf_tokenizer(tokenizer_path, SMALL_BASE_CONTEXT)
    config = LlamaConfig(
        **(presets.get_preset("tiny") | SMALL_BASE_SHAPE), vocab_size=len(tokenizer),
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp / "random")
    run = tmp / "run"
    run.mkdir()
    for name in ("tokens.bin", "tokens.json"):
        shutil.copy(tokens_cache / name, run / name)
    cfg = PretrainConfig.from_dict({
        "corpus_path": str(corpus), "tokenizer_path": str(tokenizer_path), "output_dir": str(run),
        "init_from": str(tmp / "random"), "context_length": 64, "batch_size": 16, "max_steps": 60,
        "warmup_steps": 5, "lr": 5e-3, "log_every": 10, "eval_every": 0, "sample_every": 0,
        "checkpoint_every_steps": 30,
    })
    reporter = FakeReporter()
    assert pretrain(cfg, reporter) is not None
    losses = reporter.losses()
    assert losses[-1] < losses[0] - 0.25, losses  # it learned something: not a random model
    return run


def classify_config(base_model: Path, dataset: Path, output_dir: Path, **overrides) -> dict:
    """A classify config for the small base on the SMS subset: a few seconds on one CPU thread."""
    cfg = {
        "base_model": str(base_model), "dataset_path": str(dataset), "dataset_format": "tsv",
        "output_dir": str(output_dir), "max_length": 64, "batch_size": 16, "max_steps": 100,
        "lr": 3e-3, "warmup_steps": 5, "log_every": 10, "eval_every": 50, "checkpoint_every_steps": 50,
        "val_fraction": 0.2, "device": "cpu",
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="session")
def spam_classifier(small_base_model: Path, sms_spam_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> FakeReporter:
    """The events of a full fine-tune of the small base into a spam classifier (100 steps)."""
    from training.classify import run_classify
    from training.classify_config import ClassifyConfig

    out = tmp_path_factory.mktemp("spam-classifier")
    reporter = FakeReporter()
    assert run_classify(ClassifyConfig.from_dict(classify_config(small_base_model, sms_spam_subset, out)), reporter)
    return reporter
