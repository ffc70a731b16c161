"""Pretrain's checkpoints: `output_dir/checkpoint-200/` (training/checkpoint_layout.py), a Hugging Face model
folder that can also resume a run.

    model.safetensors, config.json, generation_config.json   the model (from_pretrained works)
    tokenizer.json, tokenizer_config.json                     the tokenizer (AutoTokenizer works)
    optimizer.pt              optimizer, scheduler, torch RNG (tensors only: weights_only loads it)
    trainer_state.json        step, sampler position, tokens seen, python/numpy RNG, the config

A folder is written under a temporary name and renamed when complete, so a `checkpoint-*` folder is
always whole: a crash mid-save leaves only a `.checkpoint-*.tmp-*` folder that nothing reads.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from training.checkpoint_layout import TRAINER_STATE, checkpoint_name
from training.tokenizer import load_tokenizer, saved_tokenizer_settings
from training.tokenizer_files import declared_special_tokens, read_tokenizer_config

OPTIMIZER_STATE = "optimizer.pt"


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    model: PreTrainedModel,
    tokenizer_path: str | Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    trainer_state: dict[str, Any],
) -> Path:
    """Write `out_dir/checkpoint-{step}/` atomically and return its absolute path.

    `model` must be the plain model, not a `torch.compile` wrapper. An existing folder of the same
    step (a run resumed at its last step) is replaced.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = out / checkpoint_name(step)
    tmp = out / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)

    # transformers 5 writes safetensors only: model.safetensors, config.json, generation_config.json
    model.save_pretrained(tmp)
    hf_tokenizer(tokenizer_path, model.config.max_position_embeddings).save_pretrained(tmp)
    extra = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": _torch_rng_state(),
    }
    torch.save(extra, tmp / OPTIMIZER_STATE)
    state = {**trainer_state, "step": step, "rng": _python_rng_state()}
    (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=2))

    if final.exists():
        old = out / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    return final.resolve()


def hf_tokenizer(tokenizer_path: str | Path, model_max_length: int) -> PreTrainedTokenizerFast:
    """The trained `tokenizer.json` wrapped for transformers, eos/bos/pad set for generation, with
    the chat template and unk token the tokenizer stage saved beside it."""
    _, eos, pad = load_tokenizer(tokenizer_path)
    declared = declared_special_tokens(read_tokenizer_config(Path(tokenizer_path).parent))
    return PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_path),
        # The lab's documents are separated by eos alone, GPT-2 style, so eos also starts one; a
        # brought tokenizer keeps the bos it declares.
        bos_token=declared.get("bos_token", eos),
        eos_token=eos,
        pad_token=pad,
        model_max_length=model_max_length,
        **saved_tokenizer_settings(tokenizer_path),
    )


def load_for_resume(
    folder: str | Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """Restore optimizer, scheduler and every RNG from `folder`; return its trainer state.

    The weights are not touched: load them first with `from_pretrained(folder)`. Call this last
    before the loop, so nothing draws from the restored RNGs before training does.
    """
    folder = Path(folder)
    # weights_only: an optimizer.pt from elsewhere cannot run code when loaded.
    extra = torch.load(folder / OPTIMIZER_STATE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    state = json.loads((folder / TRAINER_STATE).read_text())
    _set_torch_rng_state(extra["rng"])
    _set_python_rng_state(state["rng"])
    return state


def _torch_rng_state() -> dict[str, Any]:
    return {
        "cpu": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_torch_rng_state(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["cpu"])
    # A run resumed on a machine with another number of GPUs keeps its fresh CUDA RNG.
    if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])


def _python_rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def _set_python_rng_state(rng: dict[str, Any]) -> None:
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
