"""Datasets the lab trains on: read, detect, validate and describe them. No torch: the web process
imports this package to validate uploads (pyarrow is imported only to read Parquet).

Every reader streams: one record, one document or one Parquet batch in memory at a time.

    describe(path)                       one pass: kind, rows, the first 20 errors, statistics
    iter_records(path)                   canonical records, raising the first DatasetError
    read_page(path, offset, limit, ...)  a page of canonical records for the preview
    detect_file_kind(path)               the kind, from the first readable record

Formats: .txt, .jsonl, .csv, .tsv, .parquet, .zip, .tar.gz/.tgz. Kinds and their canonical records:
see kinds.py.
"""

from training.datasets.archives import DEFAULT_LIMITS, ArchiveLimits
from training.datasets.describe import DatasetDescription, describe
from training.datasets.errors import ArchiveRefused, DatasetError
from training.datasets.formats import FORMATS, detect_format
from training.datasets.kinds import KINDS, detect_kind
from training.datasets.preference import split_hh
from training.datasets.records import Checkpoint, detect_file_kind, iter_records, read_page

__all__ = [
    "DEFAULT_LIMITS",
    "FORMATS",
    "KINDS",
    "ArchiveLimits",
    "ArchiveRefused",
    "Checkpoint",
    "DatasetDescription",
    "DatasetError",
    "describe",
    "detect_file_kind",
    "detect_format",
    "detect_kind",
    "iter_records",
    "read_page",
    "split_hh",
]
