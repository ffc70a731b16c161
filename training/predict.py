"""Classify texts with a sequence-classification checkpoint (what the classify stage writes).

A worker answers many requests with the same model, so loaded models are kept per folder
(`MODEL_CACHE_SIZE` of them, least recently used dropped). Inference runs on the CPU: the Celery
worker that calls this must never initialise CUDA (training runs in child processes that do).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from training.base_model import load_base_model, load_base_tokenizer

MODEL_CACHE_SIZE = 2
BATCH_SIZE = 32


def classify_texts(model_dir: str, texts: list[str]) -> list[dict[str, Any]]:
    """Per text, `{"label": most probable label, "probabilities": {label: p}}` (a softmax over
    the model's labels). Texts are cut to the length the model was trained on."""
    model, tokenizer, max_length = _load(str(Path(model_dir).resolve()))
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    results = []
    for start in range(0, len(texts), BATCH_SIZE):
        batch = tokenizer(
            texts[start : start + BATCH_SIZE], padding=True, truncation=True,
            max_length=max_length, return_tensors="pt",
        )
        with torch.inference_mode():
            probabilities = torch.softmax(model(**batch).logits.float(), dim=-1)
        for row in probabilities.tolist():
            best = max(range(len(labels)), key=row.__getitem__)
            results.append({"label": labels[best], "probabilities": dict(zip(labels, row, strict=True))})
    return results


@lru_cache(maxsize=MODEL_CACHE_SIZE)
def _load(model_dir: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, int]:
    tokenizer = load_base_tokenizer(model_dir, field="model")
    model, info = load_base_model(
        model_dir, AutoModelForSequenceClassification, field="model", dtype=torch.float32
    )
    if model.config.pad_token_id is None:  # the head finds each row's last token through it
        model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    # The classify stage saves its max_length as the tokenizer's model_max_length.
    return model, tokenizer, min(info.context_length or tokenizer.model_max_length, tokenizer.model_max_length)
