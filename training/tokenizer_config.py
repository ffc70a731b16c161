"""The tokenizer stage's config (`python -m training tokenizer`): torch-free, the web checks it."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.config import (
    EOS_TOKEN,
    PAD_TOKEN,
    TOKENIZER_ALGORITHMS,
    UNK_TOKENS,
    _check_chat_template,
    _check_corpus,
    _Config,
    eos_and_pad,
)
from training.config_checks import ConfigError, check_limits


@dataclass
class TokenizerConfig(_Config):
    """Train a tokenizer on a corpus (`python -m training tokenizer`)."""

    corpus_path: str
    """Path of the text corpus to learn the vocabulary from."""
    output_dir: str
    """Folder the tokenizer is written to, as `tokenizer.json`."""
    corpus_format: str = "txt"
    """`txt`: documents split by blank lines; `jsonl`: one JSON object a line with a `text`."""
    algorithm: str = "bpe"
    """`bpe`: byte-level BPE (GPT-2's), any text round-trips exactly and nothing is unknown.
    `unigram`: SentencePiece's Unigram on `▁`-marked words; characters the corpus lacks are `<unk>`.
    `wordpiece`: BERT's (cased) WordPiece, `##` marks a word's later pieces; words are split at
    whitespace and punctuation, so decoding rejoins them with single spaces, and a word with a
    character the corpus lacks is `[UNK]`."""
    vocab_size: int = 4096
    """Vocabulary size, special tokens included (and, for `bpe`, the 256 bytes). A small corpus
    may give less; unigram and wordpiece give more when the corpus's characters need more."""
    min_frequency: int = 2
    """A pair must occur at least this many times to be merged (`bpe`, `wordpiece`; `unigram`
    keeps the pieces that most raise the corpus's likelihood instead)."""
    special_tokens: list[str] = field(default_factory=lambda: [EOS_TOKEN, PAD_TOKEN])
    """Tokens never split or merged. The first ends each document (eos); `<|pad|>` pads. Unigram
    and wordpiece add their unknown token after them."""
    chat_template: str = ""
    """Jinja template that turns a list of messages into text, stored with the tokenizer for
    transformers' `apply_chat_template`; empty: none. CHATML_TEMPLATE is a ready one."""

    def __post_init__(self) -> None:
        self._check_types()
        check_limits(self)
        _check_corpus(self.corpus_path, self.corpus_format)
        if not self.output_dir:
            raise ConfigError("output_dir", "must not be empty")
        if self.algorithm not in TOKENIZER_ALGORITHMS:
            raise ConfigError(
                "algorithm",
                f"must be bpe (byte-level BPE), unigram or wordpiece, not {self.algorithm!r}",
            )
        if not self.special_tokens:
            raise ConfigError("special_tokens", "needs at least one token, the end-of-text token")
        if any(not t for t in self.special_tokens):
            raise ConfigError("special_tokens", "must not contain an empty string")
        if len(set(self.special_tokens)) != len(self.special_tokens):
            raise ConfigError("special_tokens", "must not contain duplicates")
        self._check_vocab_size()
        if self.min_frequency < 1:
            raise ConfigError("min_frequency", "must be at least 1")
        if self.chat_template:
            _check_chat_template(self.chat_template, self.special_tokens_map())

    @property
    def unk_token(self) -> str | None:
        return UNK_TOKENS.get(self.algorithm)

    @property
    def special_tokens_with_unk(self) -> list[str]:
        """The special tokens as the trainer gets them: ids 0..k-1 in this order."""
        unk = self.unk_token
        return self.special_tokens + ([unk] if unk and unk not in self.special_tokens else [])

    def special_tokens_map(self) -> dict[str, str]:
        """transformers' `bos_token`, `eos_token`, `pad_token` (and `unk_token`) of the tokenizer.
        Documents are separated by eos alone, GPT-2 style, so eos also begins one."""
        eos, pad = eos_and_pad(self.special_tokens)
        tokens = {"bos_token": eos, "eos_token": eos, "pad_token": pad}
        return tokens | ({"unk_token": self.unk_token} if self.unk_token else {})

    def _check_vocab_size(self) -> None:
        n = len(self.special_tokens_with_unk)
        if self.algorithm == "bpe":
            smallest, parts = 256 + n, f"256 bytes + {n} special tokens"
        else:
            # The corpus's characters must fit as well; only training can count them.
            smallest, parts = n + 1, f"{n} special tokens with {self.unk_token}, and one more"
        if not smallest <= self.vocab_size <= 1_000_000:
            raise ConfigError(
                "vocab_size",
                f"must be between {smallest} ({parts}) and 1000000, not {self.vocab_size}",
            )
