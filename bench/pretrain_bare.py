"""The baseline the lab is measured against: a bare PyTorch loop on the same model, data and batch.

    python bench/pretrain_bare.py RUN_CONFIG.json --from-step 20

Reads a pretrain config the lab wrote (`attempt-1.json` of a finished run), reuses that run's
`tokens.bin`, builds the same model, optimizer and schedule with the training library's own
factories, and trains for `max_steps` with no events, evaluation, samples or checkpoints. Prints one
JSON line: tokens/s between the end of step `--from-step` and the end of the last step, measured as
the lab measures it (a host sync at each end of the window).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training import presets  # noqa: E402
from training.data import BatchSampler, TokenBlocks, prepare_tokens, split_blocks  # noqa: E402
from training.events import EventReporter, EventWriter  # noqa: E402
from training.pretrain import build_model, make_optimizer, make_scheduler  # noqa: E402
from training.pretrain_config import PretrainConfig  # noqa: E402
from training.runtime import autocast_for, pick_device, seed_everything  # noqa: E402
from training.tokenizer import load_tokenizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("--from-step", type=int, required=True)
    args = parser.parse_args()
    cfg = PretrainConfig.from_dict(json.loads(args.config.read_text()))
    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    tokenizer, eos, pad = load_tokenizer(cfg.tokenizer_path)
    model = build_model(cfg, tokenizer.get_vocab_size(), tokenizer.token_to_id(eos), tokenizer.token_to_id(pad), None)
    model = model.to(device)
    optimizer = make_optimizer(model, cfg, device)
    scheduler = make_scheduler(optimizer, cfg)
    with open(os.devnull, "w") as sink:  # the lab run already wrote tokens.bin: this only reads it
        tokens = prepare_tokens(cfg.corpus_path, cfg.corpus_format, cfg.tokenizer_path, cfg.output_dir,
                                EventReporter(EventWriter(sink)))
    split = split_blocks(tokens.count, cfg.context_length, cfg.val_fraction, cfg.seed)
    blocks, sampler = TokenBlocks(tokens, split.block_len), BatchSampler(split.train, cfg.batch_size, cfg.seed)
    train_model = torch.compile(model) if cfg.compile else model
    autocast = autocast_for(cfg.precision, device)
    model.train()

    started = None
    for step in range(1, cfg.max_steps + 1):
        for _ in range(cfg.grad_accum):
            batch = torch.from_numpy(blocks.read(sampler.next_indices())).to(device)
            with autocast:
                logits = train_model(input_ids=batch[:, :-1], use_cache=False).logits
            loss = F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())
            (loss / cfg.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step == args.from_step:
            loss.item()  # sync, as the lab's metric event does
            started = time.time()
    final_loss = loss.item()
    seconds = time.time() - started
    tokens_per_s = (cfg.max_steps - args.from_step) * presets.tokens_per_step(cfg) / seconds
    print(json.dumps({"tokens_per_s": tokens_per_s, "seconds": seconds, "final_loss": final_loss}))


if __name__ == "__main__":
    main()
