"""The classify stage: a base model gets a classification head and learns a classification dataset.

Shape (as every stage's: training/stages.py): `setup` reads the data, splits it, loads the model
(full or LoRA) and hands it to transformers' `Trainer`, which `fit` runs. `ReporterCallback`
(training/trainer_events.py, as for sft) turns the Trainer's logs, evaluations and saves into the
lab's events and turns a stop request into a clean stop with a checkpoint. The final evaluation
(accuracy, macro-F1, per-class scores, confusion matrix, majority baseline) is computed with
training.metrics and travels in the `artifact` event and the `succeeded` summary.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, TaskType, get_peft_model
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback
from transformers.utils import logging as hf_logging

from training.base_model import load_base_model, load_base_tokenizer
from training.checkpoint_layout import TRAINER_STATE, checkpoint_name, resolve_checkpoint
from training.classify_config import ClassifyConfig
from training.config import ConfigError
from training.dataset_files import read_records
from training.events import Reporter
from training.metrics import classification_report, majority_baseline
from training.runtime import pick_device, resolve_precision, seed_everything
from training.stage_shape import setup_then_fit
from training.trainer_events import ReporterCallback

MERGED_DIR = "merged"


@dataclass
class Examples:
    """The dataset as label ids, split into train and validation indices."""

    texts: list[str]
    label_ids: np.ndarray
    labels: list[str]
    train: np.ndarray
    val: np.ndarray


@dataclass
class EvalRecord:
    """The latest full evaluation, kept by `compute_metrics` so the end of training need not
    evaluate twice."""

    step: int = -1
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClassifyRun:
    """Everything `setup` made for training and the final report."""

    cfg: ClassifyConfig
    reporter: Reporter
    trainer: Trainer
    callback: ReporterCallback
    examples: Examples
    evaluation: EvalRecord
    tokenizer: PreTrainedTokenizerBase
    n_params: int
    resume_dir: Path | None


def run_classify(cfg: ClassifyConfig, reporter: Reporter) -> Path | None:
    """Train to `cfg.max_steps`; return the folder of the final model, or None when stopped early."""
    return setup_then_fit(setup, fit, cfg, reporter)


def setup(cfg: ClassifyConfig, reporter: Reporter) -> ClassifyRun:
    """Read and split the data, load the model with its new head and build the Trainer."""
    hf_logging.disable_progress_bar()
    device = pick_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    resume_dir = resolve_checkpoint(cfg.resume_from) if cfg.resume_from else None

    examples = load_examples(cfg)
    tokenizer = load_base_tokenizer(cfg.base_model)
    # Saved with every checkpoint, so prediction cuts texts where training did.
    tokenizer.model_max_length = cfg.max_length
    seed_everything(cfg.seed)  # before the model: the new head's initial weights come from this seed
    model = load_classifier(cfg, examples.labels, tokenizer)
    evaluation = EvalRecord()
    n_params = sum(p.numel() for p in model.parameters())
    callback = ReporterCallback(
        reporter,
        summary={
            "task": "classification",
            "method": cfg.method,
            "params": n_params,
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "labels": examples.labels,
            "train_examples": len(examples.train),
            "val_examples": len(examples.val),
            "device": device.type,
            "precision": precision,
        },
        on_cuda=device.type == "cuda",
        eval_values=classification_eval,
    )
    trainer = Trainer(
        model=model,
        args=training_arguments(cfg, device, precision),
        data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=encode(tokenizer, examples, examples.train, cfg.max_length),
        eval_dataset=encode(tokenizer, examples, examples.val, cfg.max_length),
        processing_class=tokenizer,
        compute_metrics=metrics_computer(examples.labels, evaluation, lambda: trainer.state.global_step),
        preprocess_logits_for_metrics=lambda logits, labels: logits.argmax(dim=-1),
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log dict; the events carry them
    return ClassifyRun(cfg, reporter, trainer, callback, examples, evaluation, tokenizer, n_params, resume_dir)


def fit(run: ClassifyRun) -> Path | None:
    """Train, evaluate once more if the last step was not, and report the final model."""
    reporter, trainer = run.reporter, run.trainer
    start_step = _saved_step(run.resume_dir) if run.resume_dir else 0
    if run.resume_dir:
        reporter.log(f"resuming from {run.resume_dir} at step {start_step}")
    if reporter.should_stop():
        reporter.status("cancelled", step=start_step, summary={})
        return None

    trainer.train(resume_from_checkpoint=str(run.resume_dir) if run.resume_dir else None)
    step = trainer.state.global_step
    if run.callback.stopped:
        reporter.log(f"stop requested: stopped at step {step}")
        reporter.status("cancelled", step=step, summary=dict(run.callback.last))
        return None

    if run.evaluation.step != step:
        trainer.evaluate()
    final = final_model_folder(run.cfg, trainer, run.tokenizer, step)
    results = final_results(run)
    reporter.artifact("checkpoint", str(final), {**results, **artifact_facts(run, step)})
    reporter.status("succeeded", step=step, summary={**run.callback.last, **results})
    return final


def final_results(run: ClassifyRun) -> dict[str, Any]:
    """The last evaluation's report and the majority baseline, for the artifact and the summary."""
    examples, report = run.examples, run.evaluation.report
    baseline = majority_baseline(
        examples.label_ids[examples.train], examples.label_ids[examples.val], examples.labels
    )
    return {
        "task": "classification",
        "labels": examples.labels,
        "metrics": {k: report[k] for k in ("accuracy", "macro_f1", "per_class")},
        "confusion_matrix": report["confusion_matrix"],
        "baseline": baseline,
    }


def artifact_facts(run: ClassifyRun, step: int) -> dict[str, Any]:
    cfg = run.cfg
    return {
        "step": step,
        "method": cfg.method,
        "params": run.n_params,
        "base_model": cfg.base_model,
        "train_examples": len(run.examples.train),
        "val_examples": len(run.examples.val),
    }


def load_examples(cfg: ClassifyConfig) -> Examples:
    texts, names = [], []
    for record in read_records(cfg.dataset_path, cfg.dataset_format, "classification"):
        texts.append(record["text"])
        names.append(record["label"])
    labels = sorted(set(names))
    if len(labels) < 2:
        raise ConfigError("dataset", f"needs at least two labels to classify, found only {labels[0]!r}")
    index = {label: i for i, label in enumerate(labels)}
    label_ids = np.array([index[name] for name in names], dtype=np.int64)
    train, val = stratified_split(label_ids, cfg.val_fraction, cfg.seed)
    if len(val) == 0:
        raise ConfigError(
            "val_fraction",
            f"leaves no validation example out of {len(names)}: raise it or add examples",
        )
    return Examples(texts=texts, label_ids=label_ids, labels=labels, train=train, val=val)


def stratified_split(label_ids: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices, sorted. Each label with two or more examples gives round(n × fraction)
    of them to validation, at least one and never all; a label seen once stays in training."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(label_ids):
        members = rng.permutation(np.flatnonzero(label_ids == label))
        n_val = min(max(round(len(members) * fraction), 1), len(members) - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def load_classifier(
    cfg: ClassifyConfig, labels: list[str], tokenizer: PreTrainedTokenizerBase
) -> PreTrainedModel:
    """The base model with a fresh `score` head of one output per label; wrapped in LoRA adapters
    (head fully trainable) for method `lora`. Master weights are fp32."""
    model, _ = load_base_model(
        cfg.base_model,
        AutoModelForSequenceClassification,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        dtype=torch.float32,
    )
    # The head reads the hidden state of each row's last non-pad token, found through this id.
    model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.method == "lora":
        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules="all-linear",
            modules_to_save=["score"],
        )
        model = get_peft_model(model, lora)
    return model


def encode(
    tokenizer: PreTrainedTokenizerBase, examples: Examples, indices: np.ndarray, max_length: int
) -> list[dict[str, Any]]:
    """Tokenized examples, unpadded (the collator pads each batch to its longest)."""
    texts = [examples.texts[i] for i in indices]
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    return [
        {"input_ids": ids, "attention_mask": mask, "labels": int(examples.label_ids[i])}
        for ids, mask, i in zip(encoded["input_ids"], encoded["attention_mask"], indices, strict=True)
    ]


def training_arguments(cfg: ClassifyConfig, device: torch.device, precision: str) -> TrainingArguments:
    # Eval and save are step-based; 0 means "at the end only", which the Trainer's flow does for
    # an interval of max_steps (it always evaluates and saves at the last step).
    return TrainingArguments(
        output_dir=cfg.output_dir,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": cfg.min_lr_ratio},
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.beta1,
        adam_beta2=cfg.beta2,
        max_grad_norm=cfg.grad_clip,
        optim="adamw_torch",
        bf16=precision == "bf16",
        use_cpu=device.type == "cpu",
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_strategy="steps",
        logging_steps=cfg.log_every,
        eval_strategy="steps",
        eval_steps=cfg.eval_every or cfg.max_steps,
        save_strategy="steps",
        save_steps=cfg.checkpoint_every_steps or cfg.max_steps,
        include_num_input_tokens_seen="non_padding",
        label_names=["labels"],  # a PeftModel's forward hides `labels` from the Trainer's lookup
        remove_unused_columns=False,
        dataloader_pin_memory=device.type == "cuda",
        report_to="none",
        disable_tqdm=True,
    )


def metrics_computer(labels: list[str], record: EvalRecord, current_step: Any) -> Any:
    """`compute_metrics` for the Trainer: accuracy and macro-F1 for the eval log; the full report is
    kept in `record` with the step it belongs to."""

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        predicted = np.asarray(prediction.predictions).reshape(-1)
        truth = np.asarray(prediction.label_ids).reshape(-1)
        report = classification_report(truth, predicted, labels)
        record.step, record.report = current_step(), report
        return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}

    return compute


def classification_eval(metrics: dict[str, float]) -> dict[str, float]:
    return {"val_loss": metrics["eval_loss"], "accuracy": metrics["eval_accuracy"], "macro_f1": metrics["eval_macro_f1"]}


def final_model_folder(cfg: ClassifyConfig, trainer: Trainer, tokenizer: PreTrainedTokenizerBase, step: int) -> Path:
    """A folder `AutoModelForSequenceClassification.from_pretrained` loads: the last checkpoint for
    full fine-tuning; for LoRA the adapters merged into the base weights, in `merged/`."""
    if cfg.method == "full":
        return (Path(cfg.output_dir) / checkpoint_name(step)).resolve()
    merged = trainer.model.merge_and_unload()
    out = Path(cfg.output_dir)
    final = out / MERGED_DIR
    tmp = out / f".{MERGED_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final.resolve()


def _saved_step(checkpoint: Path) -> int:
    return int(json.loads((checkpoint / TRAINER_STATE).read_text())["global_step"])
