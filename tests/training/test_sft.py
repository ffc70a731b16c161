"""The sft stage on a tiny lab base model and real Dolly records: learning, loss masks, LoRA, export."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.training.fixtures import SFT_ALPACA, SFT_MESSAGES
from tests.training.helpers import FakeReporter
from training.sft import generate_samples, run_sft, setup
from training.sft_config import SftConfig

PLAIN_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)
"""A template with no `{% generation %}` marks that neither the lab nor trl has a marked twin of."""


def subset(source: Path, n: int, folder: Path) -> Path:
    """The first `n` records of a sample file (the whole set would only make the tests slower)."""
    path = folder / source.name
    with source.open(encoding="utf-8") as f:
        path.write_text("".join(itertools.islice(f, n)), encoding="utf-8")
    return path


def sft_config(base: Path, dataset: Path, output_dir: Path, **overrides: Any) -> SftConfig:
    cfg = {
        "base_model": str(base), "dataset_path": str(dataset), "output_dir": str(output_dir), "device": "cpu",
        "max_length": 128, "batch_size": 8, "max_steps": 30, "warmup_steps": 3, "lr": 2e-3, "log_every": 5,
        "eval_every": 15, "val_fraction": 0.1, "checkpoint_every_steps": 15, "sample_tokens": 12,
    }
    return SftConfig.from_dict(cfg | overrides)


def eval_losses(reporter: FakeReporter) -> list[tuple[int, float]]:
    return [(e["step"], e["values"]["val_loss"]) for e in reporter.of_type("metric") if "val_loss" in e["values"]]


@pytest.fixture(scope="module")
def full_run(base_model: Path, tmp_path_factory) -> dict[str, Any]:  # noqa: F811
    tmp = tmp_path_factory.mktemp("sft-full")
    cfg = sft_config(base_model, subset(SFT_MESSAGES, 240, tmp), tmp / "run", eval_every=5)
    reporter = FakeReporter()
    artifact = run_sft(cfg, reporter)
    return {"cfg": cfg, "reporter": reporter, "artifact": artifact}


def test_it_learns_from_dolly_conversations(full_run):
    reporter = full_run["reporter"]
    assert [e["status"] for e in reporter.of_type("status")] == ["running", "succeeded"]
    running = reporter.of_type("status")[0]
    assert running["total_steps"] == 30 and running["summary"]["loss_on"] == "assistant"
    assert running["summary"]["train_conversations"] == 216 and running["summary"]["eval_conversations"] == 24
    train = [e for e in reporter.of_type("metric") if "loss" in e["values"]]
    assert [e["step"] for e in train] == [5, 10, 15, 20, 25, 30]
    assert {"loss", "lr", "grad_norm", "tokens", "tokens_per_s", "progress", "token_accuracy"} <= set(train[-1]["values"])
    assert train[-1]["values"]["progress"] == 1.0 and train[-1]["values"]["tokens_per_s"] > 0
    evals = eval_losses(reporter)
    assert [step for step, _ in evals] == [5, 10, 15, 20, 25, 30]
    assert evals[-1][1] < evals[0][1] - 0.1, evals
    samples = reporter.of_type("sample")
    assert [s["step"] for s in samples] == [5, 5, 10, 10, 15, 15, 20, 20, 25, 25, 30, 30]
    assert all(s["prompt"] for s in samples)


def test_it_writes_checkpoints_and_a_model_that_transformers_loads_and_generates(full_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reporter, out = full_run["reporter"], Path(full_run["cfg"].output_dir)
    assert [(c["step"], c["path"]) for c in reporter.of_type("checkpoint")] == [
        (15, str((out / "checkpoint-15").resolve())), (30, str((out / "checkpoint-30").resolve())),
    ]
    (artifact,) = reporter.of_type("artifact")
    assert artifact["kind"] == "checkpoint" and artifact["path"] == str(full_run["artifact"])
    assert artifact["path"] == reporter.of_type("checkpoint")[-1]["path"]
    metadata = artifact["metadata"]
    assert metadata["method"] == "full" and metadata["merged"] is False
    assert metadata["trainable_params"] == metadata["params"] == metadata["base_model"]["params"]
    assert metadata["val_loss"] == eval_losses(reporter)[-1][1]

    model = AutoModelForCausalLM.from_pretrained(artifact["path"])
    tokenizer = AutoTokenizer.from_pretrained(artifact["path"])
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Who wrote Hamlet?"}], tokenize=False,
                                         add_generation_prompt=True)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]
    # The checkpoint stops at the end of its turn by itself.
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in model.generation_config.eos_token_id


def test_it_puts_loss_on_the_assistant_tokens_only(base_model: Path, tmp_path: Path):  # noqa: F811
    run = setup(sft_config(base_model, subset(SFT_MESSAGES, 40, tmp_path), tmp_path / "run"), FakeReporter())
    assert run.loss_mode == "assistant"
    assert_labels_cover_exactly_the_answers(run, answer_end="<|im_end|>")


def test_it_masks_the_last_answer_when_the_template_has_no_generation_marks(base_model: Path, tmp_path: Path):  # noqa: F811
    cfg = sft_config(base_model, subset(SFT_MESSAGES, 40, tmp_path), tmp_path / "run", chat_template=PLAIN_TEMPLATE)
    run = setup(cfg, FakeReporter())
    assert run.loss_mode == "completion"
    assert_labels_cover_exactly_the_answers(run, answer_end="\n")


def assert_labels_cover_exactly_the_answers(run, answer_end: str) -> None:
    """On a real collated batch: labels equal the input ids on the assistant's answer (and the
    token that ends it), and are -100 everywhere else: the prompt, the template's glue, padding."""
    trainer, tokenizer = run.trainer, run.tokenizer
    examples = [trainer.train_dataset[i] for i in range(6)]
    batch = trainer.data_collator(examples)
    for row, example in enumerate(examples):
        ids = batch["input_ids"][row].tolist()
        messages = example.get("messages") or example["prompt"] + example["completion"]
        prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(prompt + messages[-1]["content"] + answer_end, add_special_tokens=False)["input_ids"]
        # The answer starts where the prompt's tokens stop matching (a byte-level BPE may join the
        # prompt's last space to the answer's first word).
        n_prompt = next(i for i, (a, b) in enumerate(zip(prompt_ids, full_ids, strict=False)) if a != b) \
            if full_ids[: len(prompt_ids)] != prompt_ids else len(prompt_ids)
        expected = [-100] * len(ids)
        for i in range(n_prompt, min(len(full_ids), run.cfg.max_length)):
            expected[i] = ids[i]
        assert batch["labels"][row].tolist() == expected
        assert any(label != -100 for label in expected)


@pytest.fixture(scope="module")
def lora_run(base_model: Path, tmp_path_factory) -> dict[str, Any]:  # noqa: F811
    """LoRA on the alpaca-style file, trained in process so the weights can be compared."""
    from transformers import AutoModelForCausalLM

    tmp = tmp_path_factory.mktemp("sft-lora")
    cfg = sft_config(base_model, subset(SFT_ALPACA, 240, tmp), tmp / "run", method="lora", lr=1e-2, lora_r=8, eval_every=5,
                     lora_target_modules=["q_proj", "v_proj", "down_proj"])
    reporter = FakeReporter()
    run = setup(cfg, reporter)
    before = {n: p.detach().clone() for n, p in run.trainer.model.named_parameters()}
    run.trainer.train()
    after = {n: p.detach().clone() for n, p in run.trainer.model.named_parameters()}
    from training.sft import export

    artifact, metadata = export(run)
    base = AutoModelForCausalLM.from_pretrained(base_model)
    return {"cfg": cfg, "reporter": reporter, "before": before, "after": after, "artifact": artifact,
            "metadata": metadata, "base": base}


def test_it_learns_from_alpaca_records_with_lora(lora_run):
    evals = eval_losses(lora_run["reporter"])
    assert len(evals) == 6 and evals[-1][1] < evals[0][1] - 0.05, evals


def test_lora_changes_only_the_adapters(lora_run):
    before, after = lora_run["before"], lora_run["after"]
    adapters = [n for n in before if "lora_" in n]
    assert len(adapters) == 3 * 3 * 2  # 3 layers × q_proj, v_proj, down_proj × A and B
    assert all(not torch.equal(before[n], after[n]) for n in adapters)
    assert all(torch.equal(before[n], after[n]) for n in before if n not in adapters)
    base = dict(lora_run["base"].named_parameters())
    for name, tensor in after.items():
        if "lora_" not in name:  # `base_model.model.<path>.base_layer.weight` holds `<path>.weight`
            plain = name.removeprefix("base_model.model.").replace(".base_layer", "")
            assert torch.equal(tensor, base[plain]), name


def test_the_merged_export_equals_base_plus_adapter(lora_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    metadata = lora_run["metadata"]
    assert metadata["merged"] is True and metadata["trainable_params"] < metadata["params"] / 4
    adapter = Path(metadata["adapter_path"])
    assert {"adapter_model.safetensors", "adapter_config.json"} <= {p.name for p in adapter.iterdir()}
    merged = AutoModelForCausalLM.from_pretrained(lora_run["artifact"])
    base = AutoModelForCausalLM.from_pretrained(lora_run["cfg"].base_model)
    inputs = torch.randint(0, merged.config.vocab_size, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base_logits = base(input_ids=inputs).logits
        expected = PeftModel.from_pretrained(base, adapter)(input_ids=inputs).logits  # wraps `base` in place
        got = merged(input_ids=inputs).logits
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, base_logits, atol=1e-3)  # the adapter mattered


def test_it_samples_answers_to_the_given_prompts(full_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = full_run["artifact"]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    conversations = [[{"role": "user", "content": "Name a river."}]]
    first = generate_samples(model, tokenizer, conversations, 10, [tokenizer.eos_token_id], 128)
    again = generate_samples(model, tokenizer, conversations, 10, [tokenizer.eos_token_id], 128)
    assert first == again and first[0][0] == "Name a river." and first[0][1]  # greedy: the same answer


def test_packed_conversations_attend_only_to_themselves(base_model: Path, tmp_path: Path):  # noqa: F811
    """Packing is padding-free: one row holds several conversations, told apart by positions that
    restart at 0. The loss sees each conversation exactly as it would alone (trl runs the forward
    with use_cache off, which lets transformers build the block-diagonal mask on any attention)."""
    cfg = sft_config(base_model, subset(SFT_MESSAGES, 40, tmp_path), tmp_path / "run", packing=True, batch_size=1)
    run = setup(cfg, FakeReporter())
    row = next(row for row in run.trainer.train_dataset if len(row["seq_lengths"]) >= 2)
    batch = run.trainer.data_collator([row])
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert len(starts) >= 2 and "attention_mask" not in batch
    second = slice(starts[1], starts[2] if len(starts) > 2 else None)
    model = run.trainer.model.eval()
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        alone = model(input_ids=batch["input_ids"][:, second], use_cache=False).logits
    assert torch.allclose(packed[:, second], alone, atol=1e-4)


def test_packed_rows_go_through_the_model_one_at_a_time(base_model: Path, tmp_path: Path):  # noqa: F811
    """trl's padding-free collator would join a batch's packed rows into one sequence, whose attention
    (sdpa, no varlen kernel) costs (rows * max_length)^2: each row is a pass of its own instead, and
    the optimizer step still sees batch_size * grad_accum rows. Eval batches stay batch_size wide."""
    data = subset(SFT_MESSAGES, 40, tmp_path)
    cfg = sft_config(base_model, data, tmp_path / "run", packing=True, batch_size=4, grad_accum=2)
    args = setup(cfg, FakeReporter()).trainer.args
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (1, 8)
    assert args.per_device_eval_batch_size == 4
    padded = setup(sft_config(base_model, data, tmp_path / "padded", batch_size=4, grad_accum=2),
                     FakeReporter()).trainer.args
    assert (padded.per_device_train_batch_size, padded.gradient_accumulation_steps) == (4, 2)
