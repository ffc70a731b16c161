"""How a cell's form reads to a person: a label in words for every config field, help text as text
(a docstring's `code` as <code>), and the kind's basic fields first with the rest under "Advanced",
where a value that differs from its default is marked."""

from dataclasses import dataclass

from django import forms
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

from lab.notebooks.cell_kinds import CellKind

# The label of each config field the forms show, by its name in the config dataclasses (training/).
LABELS = {
    # tokenizer
    "algorithm": "Algorithm",
    "vocab_size": "Vocabulary size",
    "min_frequency": "Minimum pair frequency",
    "special_tokens": "Special tokens",
    "chat_template": "Chat template",
    # clean
    "normalize": "Normalise Unicode",
    "scrub_emails": "Scrub e-mail addresses",
    "scrub_phones": "Scrub phone numbers",
    "min_chars": "Minimum characters",
    "max_chars": "Maximum characters",
    "min_alpha_ratio": "Minimum share of letters",
    "max_repeated_line_ratio": "Maximum share of repeated lines",
    "exact_dedup": "Drop exact duplicates",
    "near_dedup": "Drop near-duplicates",
    "near_dup_threshold": "Near-duplicate similarity",
    "near_dup_ngram": "Near-duplicate n-gram size",
    "val_fraction": "Validation share",
    "seed": "Random seed",
    # the training loop
    "preset": "Model size",
    "context_length": "Context length (tokens)",
    "batch_size": "Batch size",
    "grad_accum": "Gradient accumulation steps",
    "max_steps": "Training steps",
    "epochs": "Epochs",
    "lr": "Learning rate",
    "schedule": "Learning-rate schedule",
    "min_lr_ratio": "Final learning rate (share of peak)",
    "warmup_steps": "Warm-up steps",
    "weight_decay": "Weight decay",
    "beta1": "Adam β1",
    "beta2": "Adam β2",
    "grad_clip": "Gradient clipping (max norm)",
    "precision": "Precision",
    "compile": "Compile the model",
    "gradient_checkpointing": "Gradient checkpointing",
    "device": "Device",
    "devices": "Devices",
    "sharding": "Sharding over devices",
    "eval_every": "Evaluate every (steps)",
    "eval_batches": "Evaluation batches",
    "log_every": "Log every (steps)",
    "checkpoint_every_steps": "Checkpoint every (steps)",
    "checkpoint_every_minutes": "Checkpoint every (minutes)",
    "sample_every": "Sample every (steps)",
    "sample_prompt": "Sample prompt",
    "sample_prompts": "Sample prompts",
    "sample_tokens": "Tokens per sample",
    # fine-tuning
    "method": "Method",
    "lora_r": "LoRA rank",
    "lora_alpha": "LoRA alpha",
    "lora_dropout": "LoRA dropout",
    "lora_target_modules": "LoRA target layers",
    "merge_lora": "Merge LoRA into the model",
    "loss_on": "Loss on",
    "packing": "Pack conversations",
    "max_length": "Maximum length (tokens)",
    # reward
    "center_rewards": "Centre the rewards (coefficient)",
    # dpo
    "loss_type": "Loss",
    "beta": "Beta (β)",
    "label_smoothing": "Label smoothing",
    "simpo_gamma": "SimPO target margin (γ)",
    # rl
    "rewards": "Rewards",
    "num_generations": "Answers per prompt (group)",
    "max_completion_length": "Maximum answer length (tokens)",
    # generate
    "prompts": "Prompts",
    "max_prompts": "Maximum prompts",
    "samples_per_prompt": "Responses per prompt",
    "temperature": "Temperature",
    "top_p": "Top-p",
    "top_k": "Top-k",
    "max_new_tokens": "Maximum new tokens",
    "use_chat_template": "Use the chat template",
    # evaluate
    "task": "Task",
    "max_examples": "Maximum examples",
    "num_fewshot": "Few-shot examples",
    "mc_style": "Multiple-choice prompt",
    "stride": "Window stride (tokens)",
    "answer_extraction": "Answer extraction",
    "samples": "Responses per question (k)",
    "bootstrap_samples": "Bootstrap resamples",
    "baseline": "Baseline model (win rate)",
}


def help_html(text: str) -> SafeString:
    """A field's docstring as HTML: `code` becomes <code>code</code>, everything else is escaped."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: the last one is text, not the start of code
        parts[-2:] = [parts[-2] + parts[-1]]
    return mark_safe("".join(format_html("<code>{}</code>", part) if i % 2 else conditional_escape(part)
                             for i, part in enumerate(parts)))


@dataclass
class Row:
    field: forms.BoundField
    changed: bool = False
    """The value differs from the config's default (marked in "Advanced")."""

    @property
    def default(self) -> str:
        """The config's default as the field's widget writes a value (JSON for a list), for the page's
        script that marks a field changed while it is typed in."""
        value = self.field.field.prepare_value(self.field.field.initial)
        return "" if value is None else str(value)


@dataclass
class Sections:
    basic: list[Row]
    advanced: list[Row]

    @property
    def changed(self) -> int:
        return sum(row.changed for row in self.advanced)

    @property
    def open(self) -> bool:
        """Open "Advanced" when something in it needs fixing; else it stays collapsed."""
        return any(row.field.errors for row in self.advanced)


def sections(form: forms.Form, kind: CellKind) -> Sections:
    """The form's inputs and the kind's basic fields, in that order; then the rest, each marked when changed.
    A form not generated from a stage's config (a note, a corpus) shows every field as basic."""
    if not kind.runnable:
        return Sections([Row(form[name]) for name in form.fields], [])
    first = [spec.key for spec in kind.inputs] + list(kind.basic)
    basic = [Row(form[name]) for name in first if name in form.fields]
    advanced = [Row(form[name], _changed(form[name])) for name in form.fields if name not in first]
    return Sections(basic, advanced)


def _changed(bound: forms.BoundField) -> bool:
    return bound.field.has_changed(bound.field.initial, bound.value())
