"""training/sampling.py: where a reply stops, for the sft samples and the generate stage alike."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from training.sampling import SeededSampler, stop_token_ids

LLAMA_3 = ("<|end_of_text|>", "<|eot_id|>",
           "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}<|eot_id|>{% endfor %}")
CHATML = ("<|endoftext|>", "<|im_end|>",
          "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")
PHI_3 = ("<|endoftext|>", "<|end|>", "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}")


def _tokenizer(eos: str, end_of_turn: str, template: str | None) -> PreTrainedTokenizerFast:
    specials = [eos, end_of_turn, "<|im_start|>", "<|start_header_id|>", "<|end_header_id|>"]
    vocab = {token: i for i, token in enumerate([*specials, "a", "b", "c"])}
    inner = Tokenizer(models.WordLevel(vocab=vocab, unk_token="a"))
    inner.pre_tokenizer = pre_tokenizers.Whitespace()
    inner.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=inner, eos_token=eos)
    tokenizer.chat_template = template
    return tokenizer


@pytest.mark.parametrize("family", [LLAMA_3, CHATML, PHI_3], ids=["eot_id", "im_end", "end"])
def test_a_chat_reply_stops_at_eos_and_at_the_end_of_turn_its_template_writes(family):
    eos, end_of_turn, template = family
    tokenizer = _tokenizer(eos, end_of_turn, template)
    ids = tokenizer.convert_tokens_to_ids([eos, end_of_turn])
    assert stop_token_ids(tokenizer, generation_eos=None) == sorted(ids)
    assert stop_token_ids(tokenizer, generation_eos=[7, ids[0]]) == sorted({7, *ids})


def test_raw_text_and_a_template_without_the_token_stop_at_eos_alone():
    eos, end_of_turn, template = CHATML
    assert stop_token_ids(_tokenizer(eos, end_of_turn, template), generation_eos=6, chat=False) == [0, 6]
    # The tokenizer knows <|im_end|>, but its template (Llama 3's) never writes it.
    assert stop_token_ids(_tokenizer(eos, end_of_turn, LLAMA_3[2]), generation_eos=None) == [0]


def test_each_row_samples_by_its_own_seed_whatever_its_batch():
    scores = torch.zeros(3, 50)
    alone = SeededSampler(1.0, 0, 1.0, [11])(torch.zeros(1, 1, dtype=torch.long), scores[:1].clone())
    batched = SeededSampler(1.0, 0, 1.0, [5, 11, 6])(torch.zeros(3, 1, dtype=torch.long), scores.clone())
    assert torch.equal(alone[0], batched[1]) and not torch.equal(batched[0], batched[1])
    greedy = SeededSampler(0.0, 0, 1.0, [11])(torch.zeros(1, 1, dtype=torch.long), scores[:1].clone())
    assert torch.equal(greedy, scores[:1])
