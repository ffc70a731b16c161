"""The tokenizer stage: learn a vocabulary from a corpus, with one of three algorithms.

- `bpe`, byte-level BPE (GPT-2's): the 256 bytes are in the vocabulary, so every string round-trips
  exactly and nothing is ever unknown; merges are learned on top of them.
- `unigram` (SentencePiece's): words keep their leading space as `▁`, so text round-trips exactly
  when the corpus has all its characters (and, like SentencePiece, loses one leading space).
- `wordpiece` (BERT's, cased): words and punctuation are split apart and decoded with single spaces
  between them (no space before `.,!?`), `##` marks a word's later pieces.
Unigram and wordpiece map what they cannot spell to an unknown token; the artifact reports how often
that happens on the corpus (`unk_rate`). Training streams the corpus in batches.

The output folder holds `tokenizer.json` (the artifact, what `tokenizers` loads) and, beside it,
`tokenizer_config.json`: the special tokens' roles and the chat template, so that transformers'
`AutoTokenizer.from_pretrained(folder)` gives a tokenizer whose `apply_chat_template` works.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from training.config import (
    CHAT_TEMPLATE_PROBE,
    ConfigError,
    eos_and_pad,
    render_chat_template,
)
from training.corpus import CorpusStats, file_sha256, iter_batches, iter_documents
from training.events import Reporter
from training.stage_shape import setup_then_fit
from training.tokenizer_config import TokenizerConfig
from training.tokenizer_files import TOKENIZER_CONFIG, declared_special_tokens, read_tokenizer_config

ALGORITHM_NAMES = {"bpe": "byte-level-bpe", "unigram": "unigram", "wordpiece": "wordpiece"}
COUNT_SAMPLE_BYTES = 128 * 1024
"""How much of the corpus the artifact's encoding statistics are measured on. Encoding runs at
about the speed of training, so 1 MiB cost a 20 MB corpus's training 5%; on tinyshakespeare the
token count estimated from 128 KiB was 0.2% off the exact count (1 MiB: 0.2%, 64 KiB: 1%)."""


@dataclass
class TokenizerRun:
    """An untrained tokenizer and its trainer, as `setup` made them."""

    cfg: TokenizerConfig
    reporter: Reporter
    tokenizer: Tokenizer
    trainer: trainers.Trainer


def train_tokenizer(cfg: TokenizerConfig, reporter: Reporter) -> Path | None:
    """Train, save `output_dir/tokenizer.json` and its `tokenizer_config.json`, report the artifact;
    None if stopped."""
    return setup_then_fit(setup, fit, cfg, reporter)


def setup(cfg: TokenizerConfig, reporter: Reporter) -> TokenizerRun:
    reporter.status("running")
    tokenizer, trainer = new_tokenizer(cfg)
    reporter.log(
        f"training a {ALGORITHM_NAMES[cfg.algorithm]} tokenizer (vocab {cfg.vocab_size}) "
        f"on {cfg.corpus_path}"
    )
    return TokenizerRun(cfg, reporter, tokenizer, trainer)


def fit(run: TokenizerRun) -> Path | None:
    """Stream the corpus through the trainer, save, report the artifact; None if stopped."""
    cfg, reporter, tokenizer = run.cfg, run.reporter, run.tokenizer
    stats = CorpusStats()
    sample = _LeadingDocuments(COUNT_SAMPLE_BYTES)
    failure: list[Exception] = []

    def batches() -> Iterator[list[str]]:
        # The Rust trainer pulls this iterator. An exception raised inside it would come back
        # wrapped or lost, so it is kept aside and raised again once the trainer has returned.
        try:
            for batch in iter_batches(iter_documents(cfg.corpus_path, cfg.corpus_format)):
                if reporter.should_stop():
                    return
                stats.add(batch)
                sample.take(batch)
                yield batch
        except Exception as e:
            failure.append(e)

    try:
        tokenizer.train_from_iterator(batches(), trainer=run.trainer)
    except Exception as e:  # the Rust trainer raises a bare Exception
        n_characters = len(stats.characters)
        raise (failure[0] if failure else _explain_trainer_error(e, cfg, n_characters)) from None
    if failure:
        raise failure[0]
    if reporter.should_stop():
        reporter.status("cancelled")
        return None

    path = save_tokenizer(tokenizer, cfg)
    metadata = _artifact_metadata(cfg, tokenizer, path, stats, sample)
    if warning := _vocab_size_warning(cfg, metadata["vocab_size"], len(stats.characters)):
        reporter.log(warning, level="warning")
    if cfg.chat_template and (warning := _chat_template_warning(cfg, tokenizer)):
        reporter.log(warning, level="warning")
    reporter.artifact("tokenizer", str(path.resolve()), metadata)
    reporter.status("succeeded", summary=metadata)
    return path


def new_tokenizer(cfg: TokenizerConfig) -> tuple[Tokenizer, trainers.Trainer]:
    """An untrained tokenizer of `cfg.algorithm` and the trainer that fills its vocabulary."""
    builders = {"bpe": _byte_level_bpe, "unigram": _unigram, "wordpiece": _wordpiece}
    return builders[cfg.algorithm](cfg)


def _byte_level_bpe(cfg: TokenizerConfig) -> tuple[Tokenizer, trainers.Trainer]:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=cfg.special_tokens_with_unk,  # ids 0..k-1, in this order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tokenizer, trainer


def _unigram(cfg: TokenizerConfig) -> tuple[Tokenizer, trainers.Trainer]:
    tokenizer = Tokenizer(models.Unigram())
    # "first": only the text's start gets a `▁`, not each text after a special token, so
    # `<|im_start|>user` decodes as written.
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    tokenizer.decoder = decoders.Metaspace(prepend_scheme="first")
    trainer = trainers.UnigramTrainer(
        vocab_size=cfg.vocab_size,
        special_tokens=cfg.special_tokens_with_unk,
        unk_token=cfg.unk_token,
        show_progress=False,
    )
    return tokenizer, trainer


def _wordpiece(cfg: TokenizerConfig) -> tuple[Tokenizer, trainers.Trainer]:
    tokenizer = Tokenizer(models.WordPiece(unk_token=cfg.unk_token))
    # Cased, unlike bert-base-uncased: a generative model should keep its capitals.
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=cfg.special_tokens_with_unk,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    return tokenizer, trainer


def save_tokenizer(tokenizer: Tokenizer, cfg: TokenizerConfig) -> Path:
    """Write `tokenizer_config.json`, then `tokenizer.json` into `cfg.output_dir`; return the
    latter. Each file appears whole, and the folder is complete once tokenizer.json is there."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf_config = json.dumps(hf_tokenizer_config(cfg), indent=2, ensure_ascii=False)
    _replace_atomically(out / TOKENIZER_CONFIG, lambda tmp: tmp.write_text(hf_config, encoding="utf-8"))
    path = out / "tokenizer.json"
    _replace_atomically(path, lambda tmp: tokenizer.save(str(tmp)))
    return path


def hf_tokenizer_config(cfg: TokenizerConfig) -> dict[str, Any]:
    """The `tokenizer_config.json` that transformers reads beside `tokenizer.json`."""
    config = {"tokenizer_class": "PreTrainedTokenizerFast", **cfg.special_tokens_map()}
    return config | ({"chat_template": cfg.chat_template} if cfg.chat_template else {})


def count_tokens(
    tokenizer: Tokenizer, batches: Iterable[list[str]], unk_token: str | None
) -> tuple[int, int]:
    """(tokens, unknown tokens) of the texts, each encoded without special tokens around it."""
    unk_id = tokenizer.token_to_id(unk_token) if unk_token else None
    total = unknown = 0
    for batch in batches:
        for encoding in tokenizer.encode_batch(batch, add_special_tokens=False):
            total += len(encoding.ids)
            unknown += encoding.ids.count(unk_id) if unk_id is not None else 0
    return total, unknown


def load_tokenizer(path: str | Path) -> tuple[Tokenizer, str, str]:
    """(tokenizer, eos token, pad token) of a `tokenizer.json`, as `eos_and_pad` chooses them among
    its special tokens and what the tokenizer_config.json beside it declares."""
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
    declared = declared_special_tokens(read_tokenizer_config(Path(path).parent))
    eos, pad = eos_and_pad(specials, declared)
    return tokenizer, eos, pad


def saved_tokenizer_settings(tokenizer_path: str | Path) -> dict[str, str]:
    """`chat_template` and `unk_token` from the `tokenizer_config.json` beside a `tokenizer.json`,
    those it has; {} without one (a tokenizer trained before the stage wrote it)."""
    saved = read_tokenizer_config(Path(tokenizer_path).parent)
    settings = {"chat_template": saved.get("chat_template"), **declared_special_tokens(saved)}
    return {k: settings[k] for k in ("chat_template", "unk_token") if isinstance(settings.get(k), str) and settings[k]}


def _artifact_metadata(
    cfg: TokenizerConfig,
    tokenizer: Tokenizer,
    path: Path,
    stats: CorpusStats,
    sample: _LeadingDocuments,
) -> dict[str, Any]:
    """What the artifact says of itself: the vocabulary, and how it encodes the corpus.

    The encoding statistics come from the corpus's first COUNT_SAMPLE_BYTES: encoding all of a big
    corpus again only to count took longer than training the tokenizer. Past the sample, the token
    count is scaled by bytes (`tokens_counted` says "sample"); pretraining counts exactly anyway.
    """
    batches = iter_batches(iter(sample.documents))
    sampled_tokens, unknown = count_tokens(tokenizer, batches, cfg.unk_token)
    whole = sample.bytes >= stats.bytes
    tokens = sampled_tokens if whole else round(sampled_tokens * stats.bytes / max(sample.bytes, 1))
    return {
        "algorithm": ALGORITHM_NAMES[cfg.algorithm],
        "vocab_size": tokenizer.get_vocab_size(),
        "special_tokens": cfg.special_tokens_with_unk,
        "unk_token": cfg.unk_token,
        "chat_template": cfg.chat_template or None,
        **stats.counts(),
        "tokens": tokens,
        "tokens_per_word": round(tokens / max(stats.words, 1), 4),
        "bytes_per_token": round(stats.bytes / max(tokens, 1), 4),
        "unk_rate": round(unknown / max(sampled_tokens, 1), 6),
        "tokens_counted": "all" if whole else "sample",
        "sha256": file_sha256(path),
    }


class _LeadingDocuments:
    """The corpus's first documents, up to about `max_bytes` of UTF-8, kept as they stream past
    to the trainer, so that counting tokens on them reads nothing again."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.documents: list[str] = []
        self.bytes = 0

    def take(self, batch: list[str]) -> None:
        for document in batch:
            if self.bytes >= self.max_bytes:
                return
            self.documents.append(document)
            self.bytes += len(document.encode("utf-8"))


def _replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file renamed into place: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def _explain_trainer_error(error: Exception, cfg: TokenizerConfig, n_characters: int) -> Exception:
    """A ConfigError on `vocab_size` when the corpus's characters do not fit, else the error."""
    needed = n_characters + len(cfg.special_tokens_with_unk)
    if cfg.vocab_size >= needed:
        return error
    return ConfigError(
        "vocab_size",
        f"the corpus has {n_characters} distinct characters, and a {cfg.algorithm} vocabulary "
        f"holds them all besides the {len(cfg.special_tokens_with_unk)} special tokens: "
        f"ask for at least {needed}, not {cfg.vocab_size} ({error})",
    )


def _vocab_size_warning(cfg: TokenizerConfig, got: int, n_characters: int) -> str | None:
    """Why the trained vocabulary is not the size asked for; None when it is."""
    if got < cfg.vocab_size:
        if cfg.algorithm == "unigram":
            why = "the corpus has no more candidate pieces"
        else:
            why = f"no other pair occurs {cfg.min_frequency}+ times"
        return f"the corpus gave only {got} of the {cfg.vocab_size} tokens asked for ({why})"
    if got > cfg.vocab_size:  # unigram and wordpiece keep every character, whatever the size
        inside_words = " (and one with ## inside words)" if cfg.algorithm == "wordpiece" else ""
        return (
            f"the vocabulary has {got} tokens, more than the {cfg.vocab_size} asked for: each of "
            f"the corpus's {n_characters} characters has a token{inside_words}, besides the "
            f"{len(cfg.special_tokens_with_unk)} special tokens"
        )
    return None


def _chat_template_warning(cfg: TokenizerConfig, tokenizer: Tokenizer) -> str | None:
    """A warning when the template's own markup encodes to unknown tokens: markers that are not
    special tokens, in characters the corpus lacks."""
    if cfg.unk_token is None:
        return None
    rendered = render_chat_template(
        cfg.chat_template, CHAT_TEMPLATE_PROBE, cfg.special_tokens_map()
    )
    contents = [message["content"] for message in CHAT_TEMPLATE_PROBE]
    _, in_conversation = count_tokens(tokenizer, [[rendered]], cfg.unk_token)
    _, in_contents = count_tokens(tokenizer, [contents], cfg.unk_token)
    if in_conversation <= in_contents:
        return None
    return (
        f"the chat template's markup encodes to {in_conversation - in_contents} "
        f"{cfg.unk_token} tokens per conversation: add its markers (such as <|im_start|> and "
        f"<|im_end|>) to special_tokens"
    )
