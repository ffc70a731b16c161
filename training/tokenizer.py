"""The tokenizer stage: learn a byte-level BPE vocabulary from a corpus (GPT-2's scheme).

Byte-level means every string round-trips exactly: the 256 bytes are in the vocabulary, so nothing
is ever unknown, and merges are learned on top of them. Training streams the corpus in batches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from training.config import ConfigError, TokenizerConfig
from training.corpus import file_sha256, iter_batches, iter_documents
from training.events import Reporter

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def train_tokenizer(cfg: TokenizerConfig, reporter: Reporter) -> Path | None:
    """Train, save `output_dir/tokenizer.json`, report it as an artifact; None if stopped."""
    reporter.status("running")
    stats = {"n_documents": 0, "bytes": 0, "words": 0}
    failure: list[Exception] = []

    def batches() -> Iterator[list[str]]:
        # The Rust trainer pulls this iterator. An exception raised inside it would come back
        # wrapped or lost, so it is kept aside and raised again once the trainer has returned.
        try:
            for batch in iter_batches(iter_documents(cfg.corpus_path, cfg.corpus_format)):
                if reporter.should_stop():
                    return
                for doc in batch:
                    stats["bytes"] += len(doc.encode("utf-8"))
                    stats["words"] += len(doc.split())
                stats["n_documents"] += len(batch)
                yield batch
        except Exception as e:
            failure.append(e)

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=cfg.special_tokens,  # ids 0..k-1, in the order given
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    reporter.log(f"training a byte-level BPE (vocab {cfg.vocab_size}) on {cfg.corpus_path}")
    tokenizer.train_from_iterator(batches(), trainer=trainer)
    if failure:
        raise failure[0]
    if reporter.should_stop():
        reporter.status("cancelled")
        return None

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tokenizer.json"
    tmp = out / f".tokenizer.json.tmp-{os.getpid()}"
    tokenizer.save(str(tmp))
    os.replace(tmp, path)  # readers never see a half-written tokenizer

    tokens = count_tokens(tokenizer, cfg.corpus_path, cfg.corpus_format)
    metadata = {
        "algorithm": "byte-level-bpe",
        "vocab_size": tokenizer.get_vocab_size(),
        "special_tokens": list(cfg.special_tokens),
        "n_documents": stats["n_documents"],
        "bytes": stats["bytes"],
        "words": stats["words"],
        "tokens": tokens,
        "tokens_per_word": round(tokens / max(stats["words"], 1), 4),
        "bytes_per_token": round(stats["bytes"] / max(tokens, 1), 4),
        "sha256": file_sha256(path),
    }
    if metadata["vocab_size"] < cfg.vocab_size:
        reporter.log(
            f"the corpus gave only {metadata['vocab_size']} of the {cfg.vocab_size} tokens asked "
            f"for (no other pair occurs {cfg.min_frequency}+ times)",
            level="warning",
        )
    reporter.artifact("tokenizer", str(path.resolve()), metadata)
    reporter.status("succeeded", summary=metadata)
    return path


def count_tokens(tokenizer: Tokenizer, corpus_path: str, corpus_format: str) -> int:
    """Tokens of the whole corpus, streamed, without the end-of-text tokens between documents."""
    total = 0
    for batch in iter_batches(iter_documents(corpus_path, corpus_format)):
        total += sum(len(e.ids) for e in tokenizer.encode_batch(batch, add_special_tokens=False))
    return total


def load_tokenizer(path: str | Path) -> tuple[Tokenizer, str, str]:
    """(tokenizer, eos token, pad token) of a `tokenizer.json`.

    The eos token is `<|endoftext|>` if the tokenizer has it, else its first special token; the pad
    token is `<|pad|>` if present, else the eos token.
    """
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust side raises a bare Exception for unreadable files
        raise ConfigError("tokenizer_path", f"cannot load {path}: {e}") from None
    added = tokenizer.get_added_tokens_decoder()
    specials = [added[i].content for i in sorted(added) if added[i].special]
    if not specials:
        raise ConfigError(
            "tokenizer_path", f"{path} has no special tokens; it needs an end-of-text token"
        )
    eos = EOS_TOKEN if EOS_TOKEN in specials else specials[0]
    pad = PAD_TOKEN if PAD_TOKEN in specials else eos
    return tokenizer, eos, pad
