"""training/stages.py: every stage declared once, and the command line and output registration read it."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest

from tests.training.fixtures import SFT_MESSAGES, SMS_SPAM
from tests.training.helpers import CORPUS, REPO, SAMPLE_DATA, FakeReporter, run_cli
from training.__main__ import main
from training.stages import OUTPUTS, STAGES, Gpu

# The smallest config each stage accepts, with one value away from its default; MODEL: a model folder.
MINIMAL = {
    "tokenizer": {"corpus_path": "c.txt", "output_dir": "out", "vocab_size": 300},
    "clean": {"input_path": "c.txt", "output_dir": "out", "min_chars": 5},
    "pretrain": {"corpus_path": "c.txt", "tokenizer_path": "t.json", "output_dir": "out", "max_steps": 70},
    "sft": {"base_model": "MODEL", "dataset_path": str(SFT_MESSAGES), "output_dir": "out", "lr": 1e-4},
    "reward": {"base_model": "MODEL", "dataset_path": str(SAMPLE_DATA / "preference" / "hh-harmless-test-1811.jsonl"),
               "output_dir": "out", "center_rewards": 0.01},
    "classify": {"base_model": "MODEL", "dataset_path": str(SMS_SPAM), "dataset_format": "tsv", "output_dir": "out",
                 "max_steps": 90},
    "dpo": {"base_model": "MODEL", "dataset_path": str(SAMPLE_DATA / "preference" / "hh-harmless-test-1811.jsonl"),
            "output_dir": "out", "beta": 0.2},
    "rl": {"base_model": "MODEL", "dataset_path": str(SAMPLE_DATA / "eval" / "gsm8k-test-300.jsonl"), "output_dir": "out",
           "num_generations": 8},
    "generate": {"models": [{"path": "MODEL", "label": "a", "artifact": None}], "output_dir": "out", "prompts": ["Hi"]},
    "judge": {"model_path": "MODEL", "output_dir": "out", "batch_size": 4},
    "export": {"base_model": "MODEL", "output_dir": "out", "eval_tokens": 512},
    "evaluate": {"models": [{"path": "MODEL", "label": "a", "artifact": None}], "output_dir": "out",
                 "dataset_path": str(SAMPLE_DATA / "eval" / "mmlu-test-500.jsonl"), "max_examples": 50},
}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> str:
    """A Llama of a few thousand random weights: what the sft, classify and generate configs inspect."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("model")
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096)
    LlamaForCausalLM(config).save_pretrained(folder)
    template = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    return str(folder)


def test_it_declares_every_stage_the_command_line_runs(capsys):
    assert set(MINIMAL) == set(STAGES)
    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out
    assert "{" + ",".join(sorted(STAGES)) + "}" in usage
    for stage in STAGES.values():
        assert f"  {stage.name}" in usage and stage.summary in usage
    assert "generate   sample K responses per prompt from one or more checkpoints -> generations (can use a GPU)" in usage


def test_the_command_line_refuses_a_stage_it_does_not_declare(tmp_path):
    config = tmp_path / "run.json"
    config.write_text("{}")
    result = run_cli("ppo", "--config", str(config))
    assert result.returncode == 2 and "invalid choice: 'ppo'" in result.stderr


@pytest.mark.parametrize("name", sorted(MINIMAL))
def test_each_config_round_trips(name, model_folder):
    stage = STAGES[name]
    given = json.loads(json.dumps(MINIMAL[name]).replace('"MODEL"', json.dumps(model_folder)))
    cfg = stage.config.from_dict(given)
    saved = json.loads(json.dumps(cfg.to_dict()))
    assert saved.items() >= given.items()
    assert stage.config.from_dict(saved) == cfg


def test_each_stage_outputs_a_known_kind_and_says_what_it_does_with_a_gpu():
    assert {s.output.kind for s in STAGES.values()} == set(OUTPUTS)
    assert [n for n, s in STAGES.items() if s.output.dataset] == ["clean"]
    assert {n for n, s in STAGES.items() if s.gpu is Gpu.NONE} == {"tokenizer", "clean"}


def test_a_stage_run_through_its_declaration_reports_the_declared_output(tmp_path):
    reporter = FakeReporter()
    cfg = STAGES["tokenizer"].config.from_dict(
        {"corpus_path": str(CORPUS), "output_dir": str(tmp_path / "tok"), "vocab_size": 300}
    )
    path = STAGES["tokenizer"].run(cfg, reporter)
    assert path == tmp_path / "tok" / "tokenizer.json" and path.is_file()
    [artifact] = reporter.of_type("artifact")
    assert artifact["kind"] == STAGES["tokenizer"].output.kind == "tokenizer"

    reporter = FakeReporter()
    cfg = STAGES["clean"].config.from_dict({"input_path": str(CORPUS), "output_dir": str(tmp_path / "clean")})
    assert STAGES["clean"].run(cfg, reporter) == tmp_path / "clean" / "report.json"
    [artifact] = reporter.of_type("artifact")
    assert artifact["kind"] == STAGES["clean"].output.kind == "corpus"
    assert Path(artifact["path"]).name == "train.jsonl"


@pytest.mark.parametrize("name", sorted(MINIMAL))
def test_each_stage_module_has_the_one_shape(name):
    module = importlib.import_module(STAGES[name].module)
    assert list(inspect.signature(module.setup).parameters) == ["cfg", "reporter"]
    assert len(inspect.signature(module.fit).parameters) == 1  # the state setup returned


def test_the_architecture_doc_lists_the_stages_as_declared():
    doc = (REPO / "docs" / "architecture.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    assert rows == [f"| `{s.name}` | {s.output.kind} | {s.gpu.value} | {s.summary} |" for s in STAGES.values()]
