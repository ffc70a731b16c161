"""Bytes to numbered lines of text, one at a time.

Refuses empty and binary files, takes the encoding from the byte-order mark (UTF-8 without one),
and reports an undecodable line by its number instead of failing the whole file.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from training.datasets.errors import DatasetError

SNIFF_BYTES = 8192
"""How much of the start of a file decides its encoding and whether it is text at all."""
MAX_LINE_BYTES = 32 << 20
"""A longer line (in characters, for UTF-16/32) is refused: a blob without newlines would
otherwise be read whole."""
BINARY_SHARE = 0.3
"""Above this share of control or undecodable characters in the first 8 KB, a file is binary."""

# UTF-32 marks first: the UTF-32-LE mark begins with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")

# Non-UTF-8 files are decoded by a TextIOWrapper, which has no line numbers when it fails. Bad bytes
# become lone surrogates U+DC00-U+DCFF instead (which a valid UTF-16/32 decoding never yields), and
# the line holding one is reported, as surrogateescape does but for bytes below 0x80 too.
_ESCAPE = "training.datasets.escape"
_ESCAPED = re.compile("[\udc00-\udcff]")


def _escape(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)
    bad = error.object[error.start : error.end]
    return "".join(chr(0xDC00 + b) for b in bad), error.end


codecs.register_error(_ESCAPE, _escape)


class Line(NamedTuple):
    number: int
    """1-based line number."""
    text: str
    """The line without its ending; empty when `problem` is set."""
    offset: int | None
    """Byte offset of the line's start, where reading can seek back to it (UTF-8 files only)."""
    problem: str | None = None
    """Why the line could not be decoded."""


def sniff_encoding(head: bytes, file: str) -> str:
    """The Python codec for a file that starts with `head`; refuses empty and binary files."""
    if not head:
        raise DatasetError("the file is empty", file=file)
    encoding = next((enc for bom, enc in _BOMS if head.startswith(bom)), "utf-8")
    if encoding == "utf-8" and b"\x00" in head:
        raise DatasetError(
            "contains NUL bytes: a binary file (or UTF-16 without a byte-order mark), not text",
            file=file,
        )
    sample = head.decode(encoding, errors="replace")
    odd = sum(
        1
        for ch in sample
        if ch == "\ufffd" or ch == "\x7f" or (ch < " " and ch not in _TEXT_CONTROLS)
    )
    if odd > BINARY_SHARE * len(sample):
        share = round(100 * odd / len(sample))
        raise DatasetError(
            f"looks like a binary file ({share}% of its start is not text)", file=file
        )
    return encoding


def iter_lines(
    stream: BinaryIO, file: str, resume: tuple[int, int] | None = None
) -> Iterator[Line]:
    """The stream's lines. `stream` must be at its start; `resume` is (byte offset, line number)
    of a line to start from instead, taken from an earlier `Line.offset` (seekable UTF-8 only)."""
    head = stream.read(SNIFF_BYTES)
    encoding = sniff_encoding(head, file)
    if resume is not None:
        if not encoding.startswith("utf-8") or not stream.seekable():
            raise DatasetError("can only resume reading a seekable UTF-8 file", file=file)
        offset, number = resume
        stream.seek(offset)
        yield from _utf8_lines(stream, file, offset, number)
        return
    body: BinaryIO = io.BufferedReader(_Rejoined(head, stream), buffer_size=1 << 16)  # type: ignore[assignment]
    if encoding.startswith("utf-8"):
        yield from _utf8_lines(body, file, 0, 1)
    else:
        text = io.TextIOWrapper(body, encoding=encoding, errors=_ESCAPE, newline="")
        yield from _decoded_lines(text, file, encoding)


def _utf8_lines(f: BinaryIO, file: str, offset: int, number: int) -> Iterator[Line]:
    # Each line is decoded alone, so a bad byte has a line number and its own offset.
    while raw := f.readline(MAX_LINE_BYTES + 1):
        _check_length(raw, b"\n", file, number)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            problem = f"not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})"
            yield Line(number, "", offset, problem)
        else:
            if offset == 0:
                text = text.removeprefix("\ufeff")  # a byte-order mark is not text
            yield Line(number, text.rstrip("\r\n"), offset)
        offset += len(raw)
        number += 1


def _decoded_lines(f: io.TextIOWrapper, file: str, encoding: str) -> Iterator[Line]:
    number = 1
    while text := f.readline(MAX_LINE_BYTES + 1):
        _check_length(text, "\n", file, number)
        bad = _ESCAPED.search(text)
        if bad:
            byte = ord(bad.group()) - 0xDC00
            problem = f"not valid {encoding.upper()} (byte {byte:#04x} at column {bad.start() + 1})"
            yield Line(number, "", None, problem)
        else:
            yield Line(number, text.rstrip("\r\n"), None)
        number += 1


def _check_length(line: bytes | str, newline: bytes | str, file: str, number: int) -> None:
    if len(line) > MAX_LINE_BYTES and not line.endswith(newline):  # type: ignore[arg-type]
        raise DatasetError(f"is longer than {MAX_LINE_BYTES:,} bytes", file=file, line=number)


class _Rejoined(io.RawIOBase):
    """The sniffed head, then the rest of a stream that may not seek back (a tar member)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
