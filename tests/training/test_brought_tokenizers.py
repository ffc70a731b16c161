"""A brought model's end of text is the one its tokenizer declares, not a guess from the order of its
special tokens (Llama-2's first is `<unk>`, Llama-3's `<|begin_of_text|>`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from training.checkpoint import hf_tokenizer
from training.tokenizer import load_tokenizer

LLAMA_2 = (["<unk>", "<s>", "</s>"], {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None})
LLAMA_3 = (["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|eot_id|>"],
           {"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|end_of_text|>", "special": True}})


def _tokenizer_folder(folder: Path, specials: list[str], config: dict | None) -> Path:
    vocab = {token: i for i, token in enumerate([*specials, "a", "b", "c", "ab"])}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[("a", "b")]))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(specials)
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    if config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder / "tokenizer.json"


@pytest.mark.parametrize("family, expected_eos", [(LLAMA_2, "</s>"), (LLAMA_3, "<|end_of_text|>")])
def test_the_declared_eos_separates_documents_and_ends_generation(tmp_path, family, expected_eos):
    specials, config = family
    path = _tokenizer_folder(tmp_path / "brought", specials, config)

    tokenizer, eos, pad = load_tokenizer(path)
    assert (eos, pad) == (expected_eos, expected_eos)  # neither declares a pad: eos pads
    wrapped = hf_tokenizer(path, 64)
    assert wrapped.eos_token == expected_eos and wrapped.eos_token_id == tokenizer.token_to_id(expected_eos)
    assert wrapped.bos_token == specials[1 if family is LLAMA_2 else 0]


def test_without_a_declaration_the_lab_conventions_hold(tmp_path):
    path = _tokenizer_folder(tmp_path / "lab", ["<|endoftext|>", "<|pad|>", "<|im_start|>"], None)
    assert load_tokenizer(path)[1:] == ("<|endoftext|>", "<|pad|>")
    # A declared eos the tokenizer does not have as a special token is not taken.
    other = _tokenizer_folder(tmp_path / "odd", ["<bos>", "<end>"], {"eos_token": "</nope>"})
    assert load_tokenizer(other)[1:] == ("<bos>", "<bos>")
