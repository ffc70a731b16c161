"""Base model folders: facts read without torch match the loaded model; unsafe weights are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, LlamaConfig, LlamaForCausalLM

from training.base_model import load_base_model, load_base_tokenizer
from training.checkpoint import hf_tokenizer
from training.config import ConfigError
from training.model_info import inspect_model


@pytest.fixture
def model_folder(tmp_path: Path, tokenizer_path: Path) -> Path:
    config = LlamaConfig(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128)
    model = LlamaForCausalLM(config)
    folder = tmp_path / "base"
    model.save_pretrained(folder)
    hf_tokenizer(tokenizer_path, 128).save_pretrained(folder)
    return folder


def test_facts_read_from_headers_match_the_loaded_model(model_folder: Path):
    info = inspect_model(model_folder)
    model, loaded_info = load_base_model(model_folder)
    assert info == loaded_info
    assert info.parameters == model.num_parameters()
    assert (info.architecture, info.context_length, info.vocab_size, info.layers) == ("LlamaForCausalLM", 128, 512, 2)
    assert info.has_tokenizer and info.weight_files == ("model.safetensors",)
    tokenizer = load_base_tokenizer(model_folder)
    ids = tokenizer("To be, or not to be", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=3, do_sample=False).shape[1] == ids.shape[1] + 3


def test_a_classification_head_loads_from_a_causal_checkpoint(model_folder: Path):
    model, _ = load_base_model(model_folder, AutoModelForSequenceClassification, num_labels=3)
    assert model.score.out_features == 3


def test_pickled_weights_are_refused_with_the_reason(model_folder: Path):
    state = {k: v.clone() for k, v in LlamaForCausalLM.from_pretrained(model_folder).state_dict().items()}
    (model_folder / "model.safetensors").unlink()
    torch.save(state, model_folder / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="pytorch_model.bin, not safetensors") as e:
        inspect_model(model_folder)
    assert e.value.field == "base_model"


def test_broken_folders_name_what_is_wrong(tmp_path: Path, model_folder: Path):
    with pytest.raises(ConfigError, match="no model folder"):
        inspect_model(tmp_path / "absent")
    (model_folder / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json is not valid JSON"):
        inspect_model(model_folder)
    (model_folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model_folder / "model.safetensors").write_bytes(b"\xff" * 8 + b"garbage")
    with pytest.raises(ConfigError, match="not a safetensors file"):
        inspect_model(model_folder)
