"""Text corpora as the training stages read them: documents, streamed, from any text-dataset format
that `training.datasets` reads. No torch."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from training.config import CORPUS_FORMATS, ConfigError
from training.datasets import DatasetError, detect_format, iter_records
from training.datasets.formats import SUFFIXES
from training.datasets.records import iter_txt_documents


class CorpusError(ConfigError):
    """A corpus the stages cannot read: reported on `corpus_path`, with the line when known."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__("corpus_path", f"{where}: {message}")
        self.path = str(path)
        self.line = line
        self.reason = message


def iter_documents(path: str | Path, fmt: str) -> Iterator[str]:
    """Yield the corpus's non-empty documents, in file order, streaming.

    Any text-dataset format of `training.datasets`: `txt` (documents separated by blank lines),
    `jsonl`/`parquet`/`csv`/`tsv` records with a string `text`, `zip`/`tar` archives of text files.
    Raises CorpusError (with the 1-based line) for anything unreadable, and at the end when the
    corpus holds no document.
    """
    if fmt not in CORPUS_FORMATS:
        choices = ", ".join(CORPUS_FORMATS)
        raise ConfigError("corpus_format", f"must be one of {choices}, not {fmt!r}")
    p = Path(path)
    if not p.is_file():
        raise CorpusError(p, None, "no such file")
    name = reader_name(p, fmt)
    try:
        if fmt == "txt":  # the stages' hot path: no record built per document
            yield from iter_txt_documents(p, name=name)
        else:
            for record in iter_records(p, "text", name=name):
                yield record["text"]
    except DatasetError as e:
        where = f'field "{e.field}": ' if e.field else ""
        raise CorpusError(p, e.line, where + e.message) from None


def detected_format(filename: str) -> str | None:
    try:
        return detect_format(filename)
    except DatasetError:
        return None


def reader_name(path: str | Path, fmt: str) -> str:
    """The file name the readers see: they tell the format by the name, and `fmt` wins over the
    file's own suffix (an upload is stored under a name of the lab's choosing)."""
    name = Path(path).name
    return name if detected_format(name) == fmt else f"{name}{SUFFIXES[fmt]}"


def iter_batches(documents: Iterator[str], batch_chars: int = 1_000_000) -> Iterator[list[str]]:
    """Documents in lists of about `batch_chars` characters, for the batched Rust encoders."""
    batch: list[str] = []
    size = 0
    for doc in documents:
        batch.append(doc)
        size += len(doc)
        if size >= batch_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


@dataclass
class CorpusStats:
    """What the tokenizer artifact tells of its corpus, counted a batch of documents at a time with
    a few passes of C over the batch's UTF-8 instead of a Python step per document."""

    n_documents: int = 0
    bytes: int = 0
    """UTF-8 bytes of the documents."""
    words: int = 0
    """Runs of non-whitespace, as str.split() counts them."""
    characters: set[str] = field(default_factory=set)
    """The distinct characters."""

    def add(self, batch: list[str]) -> None:
        if not batch:
            return
        text = "\n".join(batch)  # a separator that is whitespace keeps words of two documents apart
        data = text.encode("utf-8")
        self.n_documents += len(batch)
        self.bytes += len(data) - (len(batch) - 1)
        if text.isascii() or not _NON_ASCII_SPACE.search(text):
            marks = data.translate(_WORD_MARKS)  # b" " for whitespace, b"x" for the rest
            self.words += marks.count(b" x") + marks.startswith(b"x")
        else:
            self.words += len(text.split())
        # Characters seen before are deleted first: past the first batches little or nothing is
        # left to decode. Only ASCII ones, so that what is left stays valid UTF-8.
        known = bytes(ord(c) for c in self.characters if c.isascii())
        if new := data.translate(None, known):
            found = set(new.decode("utf-8"))
            if "\n" in found and not any("\n" in document for document in batch):
                found.discard("\n")  # only the separator of the join
            self.characters.update(found)

    def counts(self) -> dict[str, int]:
        return {"n_documents": self.n_documents, "bytes": self.bytes, "words": self.words}


# Bytes of UTF-8 that are ASCII whitespace (what str.isspace() says of them) map to b" ", all others
# to b"x": a word begins at each b"x" after a b" ". Bytes from 0x80 up belong to other characters,
# whitespace among them only where _NON_ASCII_SPACE finds one.
_WORD_MARKS = bytes(0x20 if b < 0x80 and chr(b).isspace() else 0x78 for b in range(256))
_NON_ASCII_SPACE = re.compile(r"[^\S\x00-\x7f]")


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
