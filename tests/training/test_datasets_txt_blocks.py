"""The block-based txt reader (iter_blocks → read_txt) against the line-by-line one (iter_lines →
read_txt): the same documents, in the same order, with the same line numbers, byte offsets and
errors. Small BLOCK_SIZEs put block boundaries everywhere: inside documents, blank-line runs,
CRLF pairs and multi-byte characters."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.training.helpers import CORPUS
from training.corpus import CorpusError, iter_documents
from training.datasets import describe, formats, textio
from training.datasets.errors import DatasetError
from training.datasets.formats import read_txt, read_txt_texts
from training.datasets.textio import iter_blocks, iter_lines


def _read(path: Path, reader) -> list[tuple]:
    """Every item read_txt gives, comparable: (text, line, offset) or ("error", its text)."""
    with path.open("rb") as f:
        return [
            ("error", str(item))
            if isinstance(item, DatasetError)
            else (item.value, item.line, item.resume)
            for item in read_txt(reader(f, path.name), path.name)
        ]


def _texts(path: Path) -> list[str]:
    with path.open("rb") as f:
        texts = read_txt_texts(iter_blocks(f, path.name), path.name)
        return [t if isinstance(t, str) else str(t) for t in texts]


def _assert_paths_agree(
    path: Path, monkeypatch, block_sizes=(1, 5, 64, textio.BLOCK_SIZE)
) -> list[tuple]:
    exact = _read(path, iter_lines)
    for size in block_sizes:
        monkeypatch.setattr(textio, "BLOCK_SIZE", size)
        assert _read(path, iter_blocks) == exact, f"BLOCK_SIZE={size}"
        texts = [item[0] if item[0] != "error" else item[1] for item in exact]
        assert _texts(path) == texts, f"BLOCK_SIZE={size}"
    return exact


def test_it_reads_the_sample_corpus_alike_on_both_paths(monkeypatch):
    exact = _assert_paths_agree(CORPUS, monkeypatch, block_sizes=(4096, 65536, textio.BLOCK_SIZE))
    assert len(exact) == 7222
    assert exact[0] == ("First Citizen:\nBefore we proceed any further, hear me speak.", 1, 0)


CRAFTED = {
    "crlf": "First line.\r\nSecond line.\r\n\r\nNext document.\r\n\r\n\r\nLast.\r\n",
    "blank_line_runs": "\n\n\nA\n\n\n\nB\nb\n \n\t\n  \nC\n\n",
    "whitespace_only_lines": "A\n \x0b\x0c\x1c\x1d\u3000\u2028\xa0\u0085\nB\n\r\nC",
    "no_final_newline": "one\ntwo\n\n   three",
    "trailing_blank_without_newline": "one\n\n  ",
    "lone_cr_is_not_a_line_end": "a\rb\r\r\nc \r\n\nd\r",
    "indented_and_trailing_spaces": "  lead\ntrail  \n\n\tTabbed\n",
    "non_ascii": "naïve café ☕\n𝄞 music\n\n東京\n\nemoji 🙂\n",
    "single_document": "just one line",
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_it_reads_crafted_utf8_alike_on_both_paths(tmp_path, monkeypatch, name):
    path = tmp_path / f"{name}.txt"
    path.write_bytes(CRAFTED[name].encode("utf-8"))
    assert _assert_paths_agree(path, monkeypatch)


def test_it_splits_crlf_documents_without_their_carriage_returns(tmp_path, monkeypatch):
    path = tmp_path / "crlf.txt"
    path.write_bytes(CRAFTED["crlf"].encode())
    exact = _assert_paths_agree(path, monkeypatch)
    assert [(text, line) for text, line, _ in exact] == [
        ("First line.\nSecond line.", 1), ("Next document.", 4), ("Last.", 7)
    ]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_it_reads_a_file_with_a_byte_order_mark_alike_on_both_paths(
    tmp_path, monkeypatch, encoding
):
    text = "Première ligne.\r\nsuite\r\rnew line after a lone CR\n\n \r\n☕ 𝄞\n\nfin"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    path = tmp_path / "bom.txt"
    path.write_bytes(data)
    exact = _assert_paths_agree(path, monkeypatch)
    assert exact[0][0].startswith("Première ligne.\nsuite")  # no byte-order mark in the text
    assert [item[0] for item in exact][-2:] == ["☕ 𝄞", "fin"]


def test_it_matches_random_text_on_both_paths(tmp_path, monkeypatch):
    rng = random.Random(20261123)
    alphabet = ["a", "b", " ", "\t", "\n", "\n", "\n", "\r", "\r\n", "é", "☕", "\u3000", "\x1c"]
    for i in range(150):
        path = tmp_path / f"random-{i}.txt"
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 80)))
        # In UTF-16 a lone "\r" ends a line, in UTF-8 it does not.
        path.write_bytes(text.encode("utf-16" if i % 3 == 0 else "utf-8"))
        if not text.strip():
            continue
        exact = _read(path, iter_lines)
        for size in (1, 2, 3, 7, 16):
            monkeypatch.setattr(textio, "BLOCK_SIZE", size)
            assert _read(path, iter_blocks) == exact, (text, size)


def _long_corpus(n_documents: int) -> list[str]:
    return [f"Document {i}.\nIts second line, with some words in it.\n" for i in range(n_documents)]


def test_it_reports_a_bad_byte_in_a_late_block_with_its_exact_line(tmp_path, monkeypatch):
    documents = _long_corpus(3000)
    documents[2500] = "Document 2500.\nHere is a latin-1 caf\xe9.\n"
    path = tmp_path / "late.txt"
    path.write_bytes("\n".join(documents).encode("latin-1"))
    bad_line = 2500 * 3 + 2  # three lines a document, then the second line of document 2500
    monkeypatch.setattr(textio, "BLOCK_SIZE", 16 << 10)  # the file spans ~9 blocks
    exact = _read(path, iter_lines)
    assert _read(path, iter_blocks) == exact
    errors = [item for item in exact if item[0] == "error"]
    reason = "not valid UTF-8 (byte 0xe9 at column 22)"
    assert errors == [("error", f"late.txt, line {bad_line}: {reason}")]
    assert [str(e) for e in describe(path).errors] == [errors[0][1]]
    with pytest.raises(CorpusError) as info:
        list(iter_documents(path, "txt"))
    assert info.value.line == bad_line and "UTF-8" in info.value.message


def test_it_reports_a_bad_utf16_unit_in_a_late_block_with_its_exact_line(tmp_path, monkeypatch):
    body = "\n".join(_long_corpus(400))
    bad_line = body.count("\n") + 1
    path = tmp_path / "late16.txt"
    lone_surrogate = b"\x00\xd8\n\x00"
    path.write_bytes(
        b"\xff\xfe" + body.encode("utf-16-le") + lone_surrogate + "\nafter\n".encode("utf-16-le")
    )
    monkeypatch.setattr(textio, "BLOCK_SIZE", 4096)  # characters: the file spans ~8 blocks
    exact = _read(path, iter_lines)
    assert _read(path, iter_blocks) == exact
    reason = "not valid UTF-16 (byte 0x00 at column 1)"
    assert ("error", f"late16.txt, line {bad_line}: {reason}") in exact
    assert len(exact) == 402 and exact[-1][:2] == ("after", bad_line + 2)


def test_it_cuts_over_long_documents_alike_on_both_paths(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "MAX_DOCUMENT_CHARS", 60)
    long_document = "".join(f"line {i:02d} of a long document\n" for i in range(12))
    text = "short\n\n" + long_document + "\nafter\n"
    path = tmp_path / "long.txt"
    path.write_text(text)
    exact = _assert_paths_agree(path, monkeypatch, block_sizes=(7, 64, 1 << 20))
    assert exact[0][0] == "short" and exact[-1][0] == "after"
    assert len(exact) > 4 and all(len(item[0]) < 90 for item in exact)


def test_it_refuses_an_over_long_line_alike_on_both_paths(tmp_path, monkeypatch):
    monkeypatch.setattr(textio, "MAX_LINE_BYTES", 100)
    path = tmp_path / "wide.txt"
    path.write_text("fine\n\n" * 50 + "x" * 150 + "\nnever read\n")
    errors = []
    for reader, size in ((iter_lines, 0), (iter_blocks, 64), (iter_blocks, 1 << 20)):
        monkeypatch.setattr(textio, "BLOCK_SIZE", size or textio.BLOCK_SIZE)
        with pytest.raises(DatasetError) as info:
            _read(path, reader)
        errors.append(str(info.value))
    assert errors == ["wide.txt, line 101: is longer than 100 bytes"] * 3
