"""Generation for every stage: where a reply stops, and sampling with a seed of its own per response.

Where it stops: eos, the model's own stop tokens, and with a chat template the end-of-turn token it
closes replies with (`END_OF_TURN_TOKENS`). sft stops its eval samples there and writes them into the
checkpoint's generation config; generate stops its responses there.

Pretrain's samples (`sample_continuation`): one sequence, token by token, with the model seeing at
most its training window, so a sample may run past the context the model was trained on.

Sampling (generate): batched with `model.generate`, yet every response has its own seed: generation
runs in greedy mode behind a logits processor that applies temperature, top-k and top-p and then
adds Gumbel noise drawn from the row's own generator. The argmax of logits plus Gumbel noise is a
sample from their softmax (the Gumbel-max trick), so each row is a proper sample whose randomness
depends only on its seed, not on which other rows share its batch.
"""

from __future__ import annotations

import hashlib
import math

import torch
from transformers import LogitsProcessor, PreTrainedTokenizerBase
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")
"""Tokens that close an assistant turn in common chat templates: ChatML, Llama 3, Phi-3, Gemma."""


def stop_token_ids(
    tokenizer: PreTrainedTokenizerBase, generation_eos: int | list[int] | None, chat: bool = True
) -> list[int]:
    """eos of the tokenizer and of the model's generation config (`generation_eos`), and with a chat
    template (`chat`) each end-of-turn token the tokenizer has and the template writes."""
    ids = set(generation_eos if isinstance(generation_eos, list) else [generation_eos])
    ids.add(tokenizer.eos_token_id)
    if chat:
        added = tokenizer.get_added_vocab()
        template = tokenizer.chat_template or ""
        ids |= {added[t] for t in END_OF_TURN_TOKENS if t in added and t in template}
    return sorted(i for i in ids if i is not None)


def response_seed(seed: int, label: str, prompt_index: int, sample: int) -> int:
    """A 63-bit seed of its own for each (model, prompt, sample)."""
    digest = hashlib.sha256(f"{seed}/{label}/{prompt_index}/{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class SeededSampler(LogitsProcessor):
    """Temperature, top-k and top-p, then Gumbel noise from each row's own generator; used with
    greedy decoding, the argmax it leads to is a sample (see the module docstring). Temperature 0
    adds no noise: plain greedy decoding."""

    def __init__(self, temperature: float, top_k: int, top_p: float, seeds: list[int]) -> None:
        self.warpers: list[LogitsProcessor] = []
        if temperature > 0:
            self.warpers.append(TemperatureLogitsWarper(temperature))
            if top_k > 0:
                self.warpers.append(TopKLogitsWarper(top_k))
            if top_p < 1:
                self.warpers.append(TopPLogitsWarper(top_p))
        self.greedy = temperature == 0
        self.seeds = seeds
        self.generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.greedy:
            return scores
        scores = scores.float()
        for warp in self.warpers:
            scores = warp(input_ids, scores)
        if self.generators is None:
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        noise = torch.stack([
            torch.empty(scores.shape[1], device=scores.device).exponential_(generator=g)
            for g in self.generators
        ])
        # -log(Exponential(1)) is Gumbel(0, 1). A draw of exactly 0 (about 1 in 2^24 per token)
        # would give +inf, which turns a filtered -inf score into NaN: keep it tiny but positive.
        return scores - noise.clamp_min(torch.finfo(noise.dtype).tiny).log()


@torch.no_grad()
def sample_continuation(model: torch.nn.Module, prompt_ids: list[int], *, max_new_tokens: int, window: int, top_k: int,
                        temperature: float, seed: int, stop_ids: list[int]) -> list[int]:
    """Top-k sampling of up to `max_new_tokens` after `prompt_ids`, the model reading the last `window`
    tokens, with a generator of its own (`seed`); stops before a token of `stop_ids`."""
    device = next(model.parameters()).device
    x = torch.tensor([prompt_ids], device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    new: list[int] = []
    for _ in range(max_new_tokens):
        logits = model(input_ids=x[:, -window:], use_cache=False).logits[:, -1, :].float()
        top, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        logits[logits < top[:, [-1]]] = -math.inf
        next_id = torch.multinomial(torch.softmax(logits / temperature, dim=-1), num_samples=1, generator=generator)
        token = int(next_id.item())  # a sync per token; samples are rare and short
        if token in stop_ids:
            break
        new.append(token)
        x = torch.cat([x, next_id], dim=1)
    return new
