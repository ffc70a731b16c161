"""The streaming engine (training/serving.py): a streamed answer is `model.generate`'s answer with the same
seed and settings; stop strings, max tokens and a cancel end it where they should; the inspector's
probabilities are the softmax of the model's own logits after temperature; a branch continues from the
chosen token."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.config import ConfigError
from training.serving import GenerationRequest, ModelCache, stream

CHAT = [{"role": "user", "content": "Speak, my lord: what news from the court?"}]


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache(device="cpu")


def _answer(cache: ModelCache, model: Path, should_stop=lambda: False, **settings) -> tuple[list[dict], dict]:
    items = list(stream(cache, model, GenerationRequest.from_dict({"messages": CHAT, **settings}), should_stop))
    assert [i["type"] for i in items] == ["token"] * (len(items) - 1) + ["done"]
    return items[:-1], items[-1]


def _generate(cache: ModelCache, model: Path, prompt_ids: list[int], seed: int, temperature: float, top_k: int = 0,
              top_p: float = 1.0, max_new_tokens: int = 40) -> list[int]:
    """The same answer without streaming: `model.generate` with training/sampling.py's sampler."""
    from transformers import GenerationConfig, LogitsProcessorList

    from training.sampling import SeededSampler

    loaded = cache.get(model)
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              eos_token_id=sorted(loaded.chat_stop_ids), pad_token_id=loaded.tokenizer.pad_token_id)
    with torch.inference_mode():
        out = loaded.model.generate(torch.tensor([prompt_ids]), generation_config=config,
                                    logits_processor=LogitsProcessorList([SeededSampler(temperature, top_k, top_p, [seed])]))
    return out[0, len(prompt_ids):].tolist()


def test_a_streamed_answer_is_the_generated_answer_with_the_same_seed(cache, base_model):
    settings = {"temperature": 1.3, "top_k": 200, "top_p": 0.95, "seed": 7, "max_new_tokens": 40}
    tokens, done = _answer(cache, base_model, **settings)
    again, _ = _answer(cache, base_model, **settings)
    prompt_ids = cache.get(base_model).encode(GenerationRequest(messages=CHAT))
    expected = _generate(cache, base_model, prompt_ids, 7, 1.3, 200, 0.95)
    stop_ids = cache.get(base_model).chat_stop_ids
    assert [t["token_id"] for t in tokens] == [t for t in expected if t not in stop_ids]
    assert [t["index"] for t in tokens] == list(range(len(tokens)))
    text = "".join(t["text"] for t in tokens)
    assert text == cache.get(base_model).tokenizer.decode(expected, skip_special_tokens=True)
    assert again == tokens and len(set(text.split())) > 3
    assert done["usage"] == {"prompt_tokens": len(prompt_ids), "completion_tokens": len(expected)}
    assert done["finish_reason"] == ("stop" if expected[-1] in stop_ids else "length") and done["seed"] == 7
    other, _ = _answer(cache, base_model, **{**settings, "seed": 8})
    assert other != tokens


def test_stop_strings_and_max_tokens_end_the_answer_where_they_should(cache, base_model):
    settings = {"temperature": 1.0, "seed": 11, "max_new_tokens": 30}
    tokens, _ = _answer(cache, base_model, **settings)
    text = "".join(t["text"] for t in tokens)
    # A stop string that starts inside one token (the last character of token i) and ends in a later one.
    ends = [sum(len(t["text"]) for t in tokens[: i + 1]) for i in range(len(tokens))]
    i = next(i for i in range(2, len(tokens) - 3)
             if tokens[i]["text"] and text.find(text[ends[i] - 1 : ends[i + 2] + 1]) == ends[i] - 1)
    stop = text[ends[i] - 1 : ends[i + 2] + 1]
    cut, done = _answer(cache, base_model, **settings, stop=["never said", stop])
    assert "".join(t["text"] for t in cut) == text[: ends[i] - 1] and done["finish_reason"] == "stop"
    assert [t["token_id"] for t in cut] == [t["token_id"] for t in tokens[: i + 1]][: len(cut)]

    five, done = _answer(cache, base_model, **{**settings, "max_new_tokens": 5})
    assert five == tokens[:5] and done["finish_reason"] == "length" and done["usage"]["completion_tokens"] == 5

    asked = []
    stopped, done = _answer(cache, base_model, should_stop=lambda: asked.append(1) or len(asked) > 3, **settings)
    assert stopped == tokens[:3] and done["finish_reason"] == "cancelled"


def test_the_inspector_shows_the_models_own_probabilities_and_a_branch_continues_from_the_pick(cache, base_model):
    temperature = 0.7
    tokens, _ = _answer(cache, base_model, temperature=temperature, seed=3, alternatives=5, max_new_tokens=8, logprobs=True)
    loaded = cache.get(base_model)
    prompt_ids = loaded.encode(GenerationRequest(messages=CHAT))
    with torch.inference_mode():  # one full forward pass, no cache: computed apart from the engine
        logits = loaded.model(torch.tensor([prompt_ids + [t["token_id"] for t in tokens]])).logits[0].double()
    for t in tokens:
        probs = torch.softmax(logits[len(prompt_ids) + t["index"] - 1] / temperature, dim=-1)
        assert abs(t["prob"] - probs[t["token_id"]].item()) < 1e-5
        top = torch.topk(probs, 5)
        assert [a["token_id"] for a in t["alternatives"]] == top.indices.tolist()
        assert max(abs(a["prob"] - p) for a, p in zip(t["alternatives"], top.values.tolist(), strict=True)) < 1e-5
        assert [a["text"] for a in t["alternatives"]] == [loaded.tokenizer.decode([i]) for i in top.indices.tolist()]
        logprobs = torch.log_softmax(logits[len(prompt_ids) + t["index"] - 1] / temperature, dim=-1)
        assert abs(t["logprob"] - logprobs[t["token_id"]].item()) < 1e-5
        assert max(abs(a["logprob"] - logprobs[a["token_id"]].item()) for a in t["alternatives"]) < 1e-5
        assert t["token"] == loaded.tokenizer.decode([t["token_id"]])

    picked = next(a for a in tokens[2]["alternatives"] if a["token_id"] != tokens[2]["token_id"])
    prefix = [t["token_id"] for t in tokens[:2]] + [picked["token_id"]]
    branch, done = _answer(cache, base_model, temperature=0, prefix_token_ids=prefix, max_new_tokens=10)
    assert [t["index"] for t in branch] == list(range(3, 3 + len(branch)))
    expected = _generate(cache, base_model, prompt_ids + prefix, 0, 0, max_new_tokens=7)
    assert [t["token_id"] for t in branch] == [t for t in expected if t not in loaded.chat_stop_ids]
    assert done["usage"]["prompt_tokens"] == len(prompt_ids) + 3


@pytest.mark.parametrize(("request_", "field"), [
    ({"messages": CHAT, "prompt": "both"}, "messages"),
    ({}, "messages"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0]"),
    ({"messages": [{"role": "user", "content": {"deep": [[[]]]}}]}, "messages[0]"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "hi", "system": "be brief"}, "system"),
    ({"prompt": "hi", "temperature": -1}, "temperature"),
    ({"prompt": "hi", "temperature": "hot"}, "temperature"),
    ({"prompt": "hi", "top_p": 0}, "top_p"),
    ({"prompt": "hi", "max_new_tokens": 10**30}, "max_new_tokens"),
    ({"prompt": "hi", "max_new_tokens": 0}, "max_new_tokens"),
    ({"prompt": "hi", "stop": ["x"] * 9}, "stop"),
    ({"prompt": "hi", "stop": [""]}, "stop"),
    ({"prompt": "hi", "seed": -5}, "seed"),
    ({"prompt": "hi", "alternatives": 21}, "alternatives"),
    ({"prompt": "hi", "prefix_token_ids": [-1]}, "prefix_token_ids"),
    ({"prompt": "hi", "best_of": 3}, "best_of"),
])
def test_a_bad_request_names_its_field(request_, field):
    with pytest.raises(ConfigError) as error:
        GenerationRequest.from_dict(request_)
    assert error.value.field == field


def test_what_the_model_cannot_take_names_its_field(cache, base_model, small_base_model):
    def first_error(model, **request):
        with pytest.raises(ConfigError) as error:
            next(stream(cache, model, GenerationRequest.from_dict(request)))
        return error.value.field, error.value.message

    assert first_error(base_model, prompt="hi", prefix_token_ids=[10**6])[0] == "prefix_token_ids"
    field, message = first_error(base_model, prompt="word " * 400)
    assert field == "prompt" and "no room" in message
    assert first_error(small_base_model, messages=CHAT) == ("messages", "this model has no chat template: send a raw prompt instead")
    assert first_error(base_model / "nowhere", prompt="hi")[0] == "model"
    tokens = list(stream(cache, small_base_model, GenerationRequest.from_dict({"prompt": "ROMEO:", "max_new_tokens": 3})))
    assert len(tokens) == 4 and small_base_model in cache and base_model in cache
