"""The formats are listed once (training/datasets/formats.py FORMATS); what the configs take and the
name a reader is given for a format are derived from it."""

from __future__ import annotations

import pytest

from training.config import CORPUS_FORMATS, ConfigError
from training.dataset_files import DATASET_FORMATS, check_format
from training.datasets import FORMATS, detect_format
from training.datasets.formats import SUFFIXES
from training.tokenizer_config import TokenizerConfig


def test_the_configs_take_the_formats_the_readers_know():
    assert CORPUS_FORMATS == DATASET_FORMATS
    assert CORPUS_FORMATS == ("txt", "jsonl", "csv", "tsv", "parquet", "zip", "tar")
    assert set(CORPUS_FORMATS) == set(FORMATS.values())


@pytest.mark.parametrize("fmt", sorted(SUFFIXES))
def test_a_formats_suffix_reads_as_that_format(fmt: str):
    assert detect_format(f"upload{SUFFIXES[fmt]}") == fmt


def test_a_format_the_readers_do_not_know_is_refused_listing_them():
    with pytest.raises(ConfigError) as e:
        check_format("dataset_format", "docx")
    assert e.value.message == "must be one of txt, jsonl, csv, tsv, parquet, zip, tar, not 'docx'"
    with pytest.raises(ConfigError) as e:
        TokenizerConfig.from_dict({"corpus_path": "c", "output_dir": "o", "corpus_format": "tgz"})
    assert e.value.field == "corpus_format"
