"""Answering people: one generation streamed token by token from a loaded causal LM, with what the
model weighed at each position.

`stream(cache, model_dir, request)` yields one item per answer token, as soon as it is sampled:
`{"type": "token", "index", "token_id", "text", "prob", "alternatives": [{"token_id", "text", "prob"}]}`
(`index` counts from the answer's start, `prefix_token_ids` included; `text` is what the token adds to
the answer; `prob` and the alternatives are the softmax of the model's logits after temperature, before
top-k and top-p: what the model weighed, not only what sampling kept; with `logprobs`, the token's own
text `token` and `logprob`s beside each `prob`, at least LOGPROB_FLOOR), then one `{"type": "done",
"finish_reason": "stop"|"length"|"cancelled", "usage": {"prompt_tokens", "completion_tokens"},
"ttft_ms", "tokens_per_s", "seed"}`. A bad request or model raises ConfigError naming the field.

Sampling is training/sampling.py's `SeededSampler` (the Gumbel-max trick with a generator of the
request's own seed), called at each step as `model.generate` calls it, so a streamed answer is the
answer `model.generate` gives with the same sampler, token for token; it stops at the same stop tokens
(`stop_token_ids`). Stop strings are held back: a token is sent once the text so far cannot be the
start of a stop string, and the answer ends before the stop string.

Models are loaded the safe way (training/base_model.py: safetensors only, no remote code) and kept in
a small least-recently-used `ModelCache`, one per process that serves (an inference worker).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from training.base_model import load_base_model, load_base_tokenizer
from training.config_checks import ConfigError
from training.generation_request import GenerationRequest
from training.runtime import pick_device, resolve_precision, weights_dtype
from training.sampling import SeededSampler, stop_token_ids

__all__ = ["GenerationRequest", "LoadedModel", "ModelCache", "stream"]

LOGPROB_FLOOR = -9999.0
"""The least log-probability reported (OpenAI's own floor): a token the model rules out has -inf, which
JSON cannot carry."""
DETOKENIZE_CONTEXT = 5
"""Tokens before a new one that are decoded with it, so that its text starts right (a space, a
character whose bytes span tokens)."""


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    context_length: int
    chat_stop_ids: frozenset[int]
    raw_stop_ids: frozenset[int]

    def encode(self, request: GenerationRequest) -> list[int]:
        """The prompt's token ids: the conversation through the chat template opening an assistant
        turn, or the raw prompt with the tokenizer's own special tokens."""
        if request.messages is None:
            return self.tokenizer(request.prompt)["input_ids"]
        if not self.tokenizer.chat_template:
            raise ConfigError("messages", "this model has no chat template: send a raw prompt instead")
        system = [{"role": "system", "content": request.system}] if request.system else []
        text = self.tokenizer.apply_chat_template(system + request.messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]


class ModelCache:
    """Loaded models by folder, at most `max_models`, the least recently used dropped first."""

    def __init__(self, max_models: int = 2, device: str = "auto") -> None:
        self.max_models = max_models
        self.device = device
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()

    def get(self, model_dir: str | Path) -> LoadedModel:
        key = str(Path(model_dir).resolve())
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        loaded = _load(key, self.device)  # a folder that fails to load drops no loaded model
        while len(self._models) >= self.max_models:
            self._models.popitem(last=False)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self._models[key] = loaded
        return loaded

    def __contains__(self, model_dir: str | Path) -> bool:
        return str(Path(model_dir).resolve()) in self._models


def _load(model_dir: str, device_name: str) -> LoadedModel:
    device = pick_device(device_name)
    tokenizer = load_base_tokenizer(model_dir, field="model")
    model, info = load_base_model(model_dir, AutoModelForCausalLM, field="model",
                                  dtype=weights_dtype(resolve_precision("auto", device)))
    model.to(device).eval()
    eos = model.generation_config.eos_token_id
    return LoadedModel(
        model, tokenizer, device, info.context_length or tokenizer.model_max_length,
        chat_stop_ids=frozenset(stop_token_ids(tokenizer, eos, chat=True)),
        raw_stop_ids=frozenset(stop_token_ids(tokenizer, eos, chat=False)),
    )


def stream(cache: ModelCache, model_dir: str | Path, request: GenerationRequest,
           should_stop: Callable[[], bool] = lambda: False) -> Iterator[dict[str, Any]]:
    """The answer's token items as they are sampled, then its `done` item (see the module docstring).
    `should_stop` is asked before each token: True ends the answer as `cancelled`."""
    started = time.perf_counter()
    loaded = cache.get(model_dir)
    prompt_ids = loaded.encode(request)
    prefix = request.prefix_token_ids
    vocab = loaded.model.get_input_embeddings().num_embeddings
    if any(t >= vocab for t in prefix):
        raise ConfigError("prefix_token_ids", f"this model's token ids are below {vocab}")
    if not prompt_ids:
        raise ConfigError("prompt", "is no token at all for this model's tokenizer")
    if len(prompt_ids) + len(prefix) >= loaded.context_length:
        raise ConfigError("messages" if request.messages is not None else "prompt",
                          f"{len(prompt_ids) + len(prefix)} tokens leave no room to answer: "
                          f"the model reads at most {loaded.context_length}")
    stop_ids = loaded.chat_stop_ids if request.messages is not None else loaded.raw_stop_ids
    length = min(request.max_new_tokens, loaded.context_length - len(prompt_ids))
    seed = request.seed if request.seed is not None else secrets.randbits(32)
    sampler = SeededSampler(request.temperature, request.top_k, request.top_p, [seed])
    tokenizer, device = loaded.tokenizer, loaded.device
    text = _Detokenizer(tokenizer, prompt_ids + prefix)
    held = _StopStrings(request.stop)
    ids = torch.tensor([prompt_ids + prefix], device=device)
    step_input, past = ids, None
    index, generated, finish = len(prefix), 0, "length"
    first_at = last_at = None
    with torch.inference_mode():
        while index < length:
            if should_stop():
                finish = "cancelled"
                break
            out = loaded.model(input_ids=step_input, past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[:, -1, :].float()
            scaled = logits[0] / (request.temperature or 1.0)
            probs = torch.softmax(scaled, dim=-1)
            logprobs = torch.log_softmax(scaled, dim=-1).clamp(min=LOGPROB_FLOOR) if request.logprobs else None
            token = int(sampler(ids, logits).argmax(dim=-1))
            generated += 1
            last_at = time.perf_counter()
            first_at = first_at or last_at
            if token in stop_ids:
                finish = "stop"
                break
            ids = torch.cat([ids, ids.new_tensor([[token]])], dim=1)
            step_input = ids[:, -1:]
            item = {"type": "token", "index": index, "token_id": token, "text": text.push(token),
                    "prob": float(probs[token]), "alternatives": _alternatives(tokenizer, probs, logprobs, request.alternatives)}
            if logprobs is not None:
                item |= {"token": tokenizer.decode([token]), "logprob": float(logprobs[token])}
            index += 1
            yield from held.push(item)
            if held.stopped:
                finish = "stop"
                break
    yield from held.flush()
    decode_s = (last_at - first_at) if first_at is not None else 0.0
    yield {
        "type": "done", "finish_reason": finish, "seed": seed,
        "usage": {"prompt_tokens": len(prompt_ids) + len(prefix), "completion_tokens": generated},
        "ttft_ms": round((first_at - started) * 1000, 3) if first_at is not None else None,
        "tokens_per_s": round((generated - 1) / decode_s, 3) if decode_s > 0 else None,
    }


def _alternatives(tokenizer: PreTrainedTokenizerBase, probs: torch.Tensor, logprobs: torch.Tensor | None,
                  k: int) -> list[dict[str, Any]]:
    if k == 0:
        return []
    top = torch.topk(probs, min(k, probs.shape[0]))
    alternatives = [{"token_id": int(i), "text": tokenizer.decode([int(i)]), "prob": float(p)}
                    for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]
    if logprobs is not None:
        for alternative, logprob in zip(alternatives, logprobs[top.indices].tolist(), strict=True):
            alternative["logprob"] = logprob
    return alternatives


class _Detokenizer:
    """The text each new token adds to the answer. A token whose bytes end inside a character adds
    nothing yet; the token that completes the character adds all of it."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, context: list[int]) -> None:
        self.tokenizer = tokenizer
        self.ids = list(context)
        self.start = max(len(self.ids) - DETOKENIZE_CONTEXT, 0)  # decode from here...
        self.read = len(self.ids)  # ...and what is before this has been given out

    def push(self, token: int) -> str:
        self.ids.append(token)
        before = self._decode(self.ids[self.start : self.read])
        after = self._decode(self.ids[self.start :])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self.start, self.read = max(len(self.ids) - DETOKENIZE_CONTEXT, 0), len(self.ids)
        return after[len(before) :]

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


class _StopStrings:
    """Token items held back while the answer's text might go on into a stop string; `stopped` once
    it has, the text of the token it began in cut where it begins."""

    def __init__(self, stop: list[str]) -> None:
        self.stop = stop
        self.pending: list[dict[str, Any]] = []
        self.text = ""  # the text of the pending items
        self.stopped = False

    def push(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        if not self.stop:
            return [item]
        self.pending.append(item)
        self.text += item["text"]
        found = [i for i in (self.text.find(s) for s in self.stop) if i >= 0]
        if found:
            self.stopped = True
            return self._release(min(found), cut=True)
        hold = max((n for s in self.stop for n in range(1, len(s)) if self.text.endswith(s[:n])), default=0)
        return self._release(len(self.text) - hold, cut=False)

    def flush(self) -> list[dict[str, Any]]:
        return [] if self.stopped else self._release(len(self.text), cut=False)

    def _release(self, upto: int, cut: bool) -> list[dict[str, Any]]:
        """The pending items whose text ends by `upto`; with `cut`, also the item `upto` falls in,
        its text cut there (when any is left), and nothing stays pending."""
        out, end = [], 0
        while self.pending and end + len(self.pending[0]["text"]) <= upto:
            end += len(self.pending[0]["text"])
            out.append(self.pending.pop(0))
        if cut:
            if self.pending and upto > end:
                out.append({**self.pending[0], "text": self.text[end:upto]})
            self.pending = []
        self.text = self.text[end:]
        return out
