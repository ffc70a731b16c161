"""Bytes to numbered lines of text: one at a time (iter_lines), or many at once (iter_blocks).

Refuses empty and binary files, takes the encoding from the byte-order mark (UTF-8 without one),
and reports an undecodable line by its number instead of failing the whole file.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable, Iterator
from typing import AnyStr, BinaryIO, NamedTuple

from training.datasets.errors import DatasetError

SNIFF_BYTES = 8192
"""How much of the start of a file decides its encoding and whether it is text at all."""
MAX_LINE_BYTES = 32 << 20
"""A longer line (in characters, for UTF-16/32) is refused: a blob without newlines would
otherwise be read whole."""
BINARY_SHARE = 0.3
"""Above this share of control or undecodable characters in the first 8 KB, a file is binary."""
BLOCK_SIZE = 4 << 20
"""What iter_blocks reads at a time: bytes of UTF-8, characters of other encodings."""

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


class Block(NamedTuple):
    """Many whole lines at once, for readers that split text with str methods instead of a Python
    loop over lines. A line is what lies between two "\\n" less its trailing "\\r"s, as
    `Line.text` is (UTF-16/32 files end lines at a lone "\\r" too: it is "\\n" here)."""

    number: int
    """1-based number of the first line."""
    text: str
    """The lines with their "\\n"; only the file's last line may have none."""
    offset: int | None
    """Byte offset of the first line (UTF-8 files only); the block holds no byte-order mark, so
    its text encodes back to exactly the file's bytes from there."""


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
    encoding, body, offset, number = _open_body(stream, file, resume)
    if encoding.startswith("utf-8"):
        yield from _utf8_lines(body, file, offset, number)
    else:
        yield from _decoded_lines(_text_reader(body, encoding), file, encoding, number)


def iter_blocks(
    stream: BinaryIO, file: str, resume: tuple[int, int] | None = None
) -> Iterator[Block | Line]:
    """The stream's text as iter_lines reads it, but in Blocks of about BLOCK_SIZE: the same lines,
    without a Python step per line. What iter_lines would report stays exact: an undecodable line
    comes as its own `Line` (with `problem`) between the blocks before and after it, and a block
    that could hold a line over MAX_LINE_BYTES is given line by line, so the error names the same
    line. The first line of a UTF-8 file is a `Line` too (it may start with a byte-order mark).
    Same arguments as iter_lines; memory holds one block and the unfinished line after it."""
    encoding, body, offset, first_number = _open_body(stream, file, resume)
    if encoding.startswith("utf-8"):
        for chunk, number in _whole_lines(body.read, _utf8_cut, _utf8_count, file, first_number):
            yield from _utf8_block(chunk, file, offset, number)
            offset += len(chunk)
        return
    reader = _text_reader(body, encoding)
    for text, number in _whole_lines(reader.read, _decoded_cut, _decoded_count, file, first_number):
        if len(text) > MAX_LINE_BYTES or _ESCAPED.search(text):
            lines = io.StringIO(text, newline="")
            yield from _decoded_lines(lines, file, encoding, number)  # type: ignore[arg-type]
        else:
            yield Block(number, text.replace("\r\n", "\n").replace("\r", "\n"), None)


def _open_body(
    stream: BinaryIO, file: str, resume: tuple[int, int] | None
) -> tuple[str, BinaryIO, int, int]:
    """(encoding, the stream from where reading starts, its byte offset, its line number)."""
    head = stream.read(SNIFF_BYTES)
    encoding = sniff_encoding(head, file)
    if resume is not None:
        if not encoding.startswith("utf-8") or not stream.seekable():
            raise DatasetError("can only resume reading a seekable UTF-8 file", file=file)
        offset, number = resume
        stream.seek(offset)
        return encoding, stream, offset, number
    body = io.BufferedReader(_Rejoined(head, stream), buffer_size=1 << 16)
    return encoding, body, 0, 1  # type: ignore[return-value]


def _text_reader(body: BinaryIO, encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(body, encoding=encoding, errors=_ESCAPE, newline="")


def _whole_lines(
    read: Callable[[int], AnyStr],
    cut: Callable[[AnyStr], int],
    count: Callable[[AnyStr], int],
    file: str,
    number: int,
) -> Iterator[tuple[AnyStr, int]]:
    """(chunk, its first line's number) for reads of BLOCK_SIZE, each cut after its last line
    ending (`cut`), so that no line is split: the unfinished line waits for the next read.
    `count` gives the number of lines a chunk holds."""
    rest = None
    while data := read(BLOCK_SIZE):
        if rest:
            data = rest + data
        end = cut(data)
        if not end:  # no line ends in this read: its line goes on
            if len(data) > MAX_LINE_BYTES:
                reason = f"is longer than {MAX_LINE_BYTES:,} bytes"
                raise DatasetError(reason, file=file, line=number)
            rest = data
            continue
        chunk, rest = data[:end], data[end:]
        yield chunk, number
        number += count(chunk)
    if rest:
        yield rest, number


def _utf8_cut(data: bytes) -> int:
    return data.rfind(b"\n") + 1


def _utf8_count(chunk: bytes) -> int:
    return chunk.count(b"\n")


def _decoded_cut(data: str) -> int:
    # TextIOWrapper(newline="") ends lines at "\r" as well; a "\r" last in a read may be the
    # first half of a "\r\n", so it waits for the next read.
    return max(data.rfind("\n"), data.rfind("\r", 0, len(data) - 1)) + 1


def _decoded_count(chunk: str) -> int:
    return chunk.count("\n") + chunk.count("\r") - chunk.count("\r\n")


def _utf8_block(chunk: bytes, file: str, offset: int, number: int) -> Iterator[Block | Line]:
    """A chunk of whole lines as Blocks, but each undecodable line (and a first line at offset 0,
    which may hold a byte-order mark) as the Lines _utf8_lines gives."""
    if len(chunk) > MAX_LINE_BYTES:
        yield from _utf8_lines(io.BytesIO(chunk), file, offset, number)  # type: ignore[arg-type]
        return
    start = 0
    if offset == 0:
        start = chunk.find(b"\n") + 1 or len(chunk)
        first_line = io.BytesIO(chunk[:start])
        yield from _utf8_lines(first_line, file, offset, number)  # type: ignore[arg-type]
        number += 1
    while start < len(chunk):
        try:
            text = chunk[start:].decode("utf-8")
        except UnicodeDecodeError as e:
            bad = start + e.start
            line_start = chunk.rfind(b"\n", start, bad) + 1 or start
            line_end = chunk.find(b"\n", bad) + 1 or len(chunk)
            if line_start > start:
                yield Block(number, chunk[start:line_start].decode("utf-8"), offset + start)
                number += chunk.count(b"\n", start, line_start)
            bad_line = io.BytesIO(chunk[line_start:line_end])
            bad_offset = offset + line_start
            yield from _utf8_lines(bad_line, file, bad_offset, number)  # type: ignore[arg-type]
            number += 1
            start = line_end
        else:
            yield Block(number, text, offset + start)
            return


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


def _decoded_lines(
    f: io.TextIOWrapper, file: str, encoding: str, number: int
) -> Iterator[Line]:
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
