"""The clean stage's config (`python -m training clean`): torch-free, the web checks it."""

from __future__ import annotations

from dataclasses import dataclass

from training.config import CORPUS_FORMATS, _Config
from training.config_checks import ConfigError, check_limits


@dataclass
class CleanConfig(_Config):
    """Clean a corpus and split it into train and validation (`python -m training clean`)."""

    input_path: str
    """Path of the corpus to clean."""
    output_dir: str
    """Folder of the cleaned corpus: `train.jsonl`, `validation.jsonl` and `report.json`."""
    input_format: str = "txt"
    """`txt`: documents split by blank lines; `jsonl`: one JSON object a line with a `text`; or
    another of the corpus formats that training/corpus.py reads."""
    normalize: bool = True
    """Normalise Unicode to NFC and strip control characters (tabs and newlines are kept)."""
    scrub_emails: bool = False
    """Replace e-mail addresses with `<EMAIL>`."""
    scrub_phones: bool = False
    """Replace phone numbers (`+44 20 7946 0958`, `(555) 123-4567`…) with `<PHONE>`; years and
    other numbers stay."""
    min_chars: int = 20
    """Drop documents shorter than this many characters (after normalising and scrubbing)."""
    max_chars: int = 100_000
    """Drop documents longer than this many characters."""
    min_alpha_ratio: float = 0.6
    """Drop documents whose letters are under this share of their non-space characters; 0 = off."""
    max_repeated_line_ratio: float = 0.3
    """Drop documents in which more than this share of the lines repeat an earlier line; 1 = off."""
    exact_dedup: bool = True
    """Drop documents identical to an earlier one (after normalising and scrubbing)."""
    near_dedup: bool = True
    """Drop documents nearly identical to an earlier kept one (MinHash LSH over word n-grams)."""
    near_dup_threshold: float = 0.8
    """Jaccard similarity of two documents' word n-gram sets from which the later one is dropped."""
    near_dup_ngram: int = 5
    """Words per n-gram (lowercased) compared by the near-duplicate step."""
    val_fraction: float = 0.05
    """Share of the kept documents written to `validation.jsonl`, from 0 to 0.5."""
    seed: int = 1337
    """Seeds the train/validation split: a document's side depends only on its text and the seed."""

    def __post_init__(self) -> None:
        self._check_types()
        check_limits(self)
        for name in ("input_path", "output_dir"):
            if not getattr(self, name):
                raise ConfigError(name, "must not be empty")
        if self.input_format not in CORPUS_FORMATS:
            choices = ", ".join(CORPUS_FORMATS)
            raise ConfigError(
                "input_format", f"must be one of {choices}, not {self.input_format!r}"
            )
        if self.min_chars < 1:
            raise ConfigError("min_chars", "must be at least 1")
        if self.max_chars < self.min_chars:
            raise ConfigError(
                "max_chars", f"must be at least min_chars ({self.min_chars}), not {self.max_chars}"
            )
        for name in ("min_alpha_ratio", "max_repeated_line_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(name, "must be between 0 and 1")
        if not 0 < self.near_dup_threshold <= 1:
            raise ConfigError("near_dup_threshold", "must be above 0 and at most 1")
        if self.near_dup_ngram < 1:
            raise ConfigError("near_dup_ngram", "must be at least 1")
        if not 0 <= self.val_fraction <= 0.5:
            raise ConfigError("val_fraction", "must be between 0 and 0.5")
        if self.seed < 0:
            raise ConfigError("seed", "must not be negative")
