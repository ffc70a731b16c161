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


def _index(folder: Path, weight_map) -> None:
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def _refusal(folder: Path, load=inspect_model) -> str:
    with pytest.raises(ConfigError) as e:
        load(folder)
    assert e.value.field == "base_model"
    return e.value.message


@pytest.mark.parametrize("shard", ["/etc/passwd", "../other/model.safetensors", "sub/../../x", "C:/x", "~/x"])
def test_an_index_naming_a_file_outside_the_folder_is_refused_by_the_loaders_too(model_folder: Path, tmp_path: Path, shard):
    """What the folder names is checked where workers load it, not only on upload."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes((model_folder / "model.safetensors").read_bytes())
    (model_folder / "model.safetensors").rename(model_folder / "model-00001-of-00001.safetensors")
    _index(model_folder, {"lm_head.weight": shard, "model.norm.weight": "model-00001-of-00001.safetensors"})

    for load in (inspect_model, load_base_model):
        message = _refusal(model_folder, load)
        assert "not inside the model's folder" in message and repr(shard) in message


def test_whether_an_outside_path_exists_is_never_told(model_folder: Path, tmp_path: Path):
    (tmp_path / "exists.safetensors").write_bytes((model_folder / "model.safetensors").read_bytes())
    answers = []
    for shard in ("../exists.safetensors", "../absent.safetensors"):
        _index(model_folder, {"lm_head.weight": shard})
        answers.append(_refusal(model_folder).replace(shard, "<name>"))
    assert answers[0] == answers[1]


def test_links_in_a_model_folder_are_refused_wherever_they_point(model_folder: Path, tmp_path: Path):
    outside = tmp_path / "outside.safetensors"
    (model_folder / "model.safetensors").rename(outside)
    (model_folder / "model.safetensors").symlink_to(outside)
    assert "is a link" in _refusal(model_folder)
    (model_folder / "model.safetensors").unlink()
    outside.rename(model_folder / "model.safetensors")
    (model_folder / "notes").symlink_to("/etc")
    assert "notes in base is a link" in _refusal(model_folder)


def test_a_tokenizer_config_naming_a_file_outside_is_refused(model_folder: Path):
    config = json.loads((model_folder / "tokenizer_config.json").read_text())
    (model_folder / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_file": "/etc/passwd"}))
    for load in (inspect_model, load_base_tokenizer):
        assert "tokenizer_config.json (tokenizer_file) names '/etc/passwd'" in _refusal(model_folder, load)


@pytest.mark.parametrize("change, message", [
    ({"model_type": "my_secret_arch", "auto_map": {"AutoModelForCausalLM": "modeling.MyModel"}}, "has an auto_map"),
    ({"model_type": "my_secret_arch"}, "model_type 'my_secret_arch' is not a model transformers knows"),
    ({"max_position_embeddings": "lots"}, 'max_position_embeddings must be a whole number from 1 to 2,147,483,647, not "lots"'),
    ({"vocab_size": -3}, "vocab_size must be a whole number"),
    ({"num_hidden_layers": 10**30}, "num_hidden_layers must be a whole number"),
    ({"architectures": "LlamaForCausalLM"}, "architectures must be a list"),
    ({"text_config": [1]}, "text_config must be an object"),
])
def test_configs_that_can_never_load_or_make_no_sense_are_refused_with_why(model_folder: Path, change, message):
    config = json.loads((model_folder / "config.json").read_text())
    (model_folder / "config.json").write_text(json.dumps({**config, **change}))
    assert message in _refusal(model_folder)


def test_deeply_nested_config_files_are_bad_json_not_a_recursion_error(model_folder: Path):
    (model_folder / "config.json").write_text("[" * 50_000 + "]" * 50_000)
    assert "config.json is not valid JSON: nested deeper than 64 levels" in _refusal(model_folder)


def _safetensors(header, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data


@pytest.mark.parametrize("content", [
    _safetensors([1, 2]),
    _safetensors({"w": {"dtype": "F32", "data_offsets": [0, 4]}}, b"\0" * 4),  # no shape
    _safetensors({"w": {"dtype": "F32", "shape": 7, "data_offsets": [0, 4]}}, b"\0" * 4),
    _safetensors({"w": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}}, b"\0" * 4),
    _safetensors({"w": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
    _safetensors({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 400]}}, b"\0" * 4),  # past the end
    _safetensors({"w": "tensor"}),
    _safetensors({"w": {"dtype": "F32", "shape": [[[[1]]]] * 1 + [1], "data_offsets": [0, 4]}}, b"\0" * 4),
])
def test_malformed_safetensors_headers_are_refused_not_crashed_on(model_folder: Path, content: bytes):
    (model_folder / "model.safetensors").write_bytes(content)
    assert "is not a safetensors file" in _refusal(model_folder)


def test_a_header_length_is_judged_never_echoed(model_folder: Path):
    """The first 8 bytes of a file are its header length: an answer quoting it would read any file."""
    (model_folder / "model.safetensors").write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    message = _refusal(model_folder)
    assert "header length does not fit the file" in message
    assert str(int.from_bytes(b"root:x:0", "little")) not in message


def test_an_index_whose_weight_map_is_not_an_object_is_refused(model_folder: Path):
    _index(model_folder, ["model.safetensors"])
    assert "weight_map must be an object" in _refusal(model_folder)


def test_pretraining_on_a_folder_whose_index_names_another_file_is_refused(model_folder: Path, tokenizer_path: Path,
                                                                            corpus: Path, tmp_path: Path):
    """The reported theft: continued pretraining loaded what the index named, then saved it as the team's own."""
    from tests.training.helpers import FakeReporter
    from training.pretrain import pretrain
    from training.pretrain_config import PretrainConfig

    (model_folder / "model.safetensors").rename(tmp_path / "elsewhere.safetensors")
    _index(model_folder, {"lm_head.weight": str(tmp_path / "elsewhere.safetensors")})
    cfg = PretrainConfig(corpus_path=str(corpus), tokenizer_path=str(tokenizer_path), output_dir=str(tmp_path / "run"),
                         init_from=str(model_folder), context_length=32, batch_size=2, max_steps=1, warmup_steps=0,
                         eval_every=0, sample_every=0, checkpoint_every_steps=0)
    with pytest.raises(ConfigError) as e:
        pretrain(cfg, FakeReporter())
    assert e.value.field == "init_from" and "not inside the model's folder" in e.value.message
    assert not list((tmp_path / "run").rglob("*.safetensors"))
