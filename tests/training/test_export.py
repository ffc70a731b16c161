"""The export stage: an int8 model that is smaller, scores close to the full-precision one, reloads from
safetensors alone, and is not mistaken for a float checkpoint by a plain from_pretrained."""

from __future__ import annotations

import pytest

from tests.training.helpers import FakeReporter
from training.config import ConfigError
from training.export import INT8_WEIGHTS, load_int8
from training.export_config import ExportConfig
from training.stages import STAGES


@pytest.fixture(scope="module")
def exported(base_model, corpus, tmp_path_factory):
    cfg = ExportConfig.from_dict({"base_model": str(base_model), "output_dir": str(tmp_path_factory.mktemp("export")),
                                  "eval_path": str(corpus), "eval_tokens": 1024, "context_length": 128})
    reporter = FakeReporter()
    return STAGES["export"].run(cfg, reporter), reporter


def test_it_writes_a_smaller_int8_model_whose_perplexity_is_close(exported, base_model):
    folder, reporter = exported
    artifact = [e for e in reporter.events if e["type"] == "artifact"]
    assert [(a["kind"], a["path"]) for a in artifact] == [("export", str(folder))]
    meta = artifact[0]["metadata"]
    sizes, ppl = meta["weights_bytes"], meta["perplexity"]
    assert sizes["full"] == (base_model / "model.safetensors").stat().st_size
    assert sizes["quantized"] == (folder / INT8_WEIGHTS).stat().st_size
    assert sizes["quantized"] < 0.6 * sizes["full"], sizes  # the tied embeddings stay fp32: not all of it is int8
    assert ppl["tokens"] == 1024
    assert ppl["full"] < 0.5 * 512, ppl  # a trained model: better than uniform over its 512 tokens
    assert abs(ppl["quantized"] - ppl["full"]) < 0.02 * ppl["full"], ppl
    assert meta["quantized_layers"] == 3 * 7  # q, k, v, o, gate, up, down of each of the 3 layers


def test_the_folder_reloads_from_safetensors_alone_and_a_plain_load_fails_loudly(exported):
    import torch
    from transformers import AutoModelForCausalLM

    folder, _ = exported
    assert sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl")) == []
    model = load_int8(folder)
    layer = model.model.layers[0].mlp.up_proj
    assert layer.weight.dtype == torch.int8 and layer.weight_scale.shape == (layer.out_features, 1)
    with pytest.raises(OSError, match="model.safetensors"):
        AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True, local_files_only=True)


def test_nf4_is_refused_on_a_machine_without_a_gpu_saying_why(base_model, tmp_path):
    cfg = ExportConfig.from_dict({"base_model": str(base_model), "output_dir": str(tmp_path), "quantization": "nf4"})
    with pytest.raises(ConfigError) as refused:
        STAGES["export"].run(cfg, FakeReporter())
    assert refused.value.field == "quantization"
    assert "bitsandbytes on a CUDA GPU" in refused.value.message and "choose int8" in refused.value.message


@pytest.mark.parametrize(("change", "field"), [
    ({"quantization": "int3"}, "quantization"), ({"eval_tokens": 10**9}, "eval_tokens"),
    ({"context_length": 1}, "context_length"), ({"eval_format": "exe"}, "eval_format"),
    ({"base_model": "/nowhere"}, "base_model"),
])
def test_it_refuses_a_bad_config_naming_the_field(base_model, tmp_path, change, field):
    with pytest.raises(ConfigError) as refused:
        ExportConfig.from_dict({"base_model": str(base_model), "output_dir": str(tmp_path)} | change)
    assert refused.value.field == field
