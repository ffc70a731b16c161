"""Archives: members read as documents or JSON Lines; unsafe members and zip bombs refused whole."""

from __future__ import annotations

import io
import json
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from training.datasets import ArchiveLimits, ArchiveRefused, DatasetError, describe, iter_records

ZEROS_50MB = 50 << 20


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as t:
        for info in members:
            body = (data or {}).get(info.name)
            if body is not None:
                info.size = len(body)
            t.addfile(info, io.BytesIO(body) if body is not None else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def test_it_reads_each_text_member_of_a_zip_as_one_document(tmp_path):
    path = _zip(
        tmp_path / "corpus.zip",
        {
            "docs/": b"",
            "docs/a.txt": b"First paragraph.\n\nSecond paragraph of the same file.\n",
            "docs/b.md": "Another file, caf\u00e9.".encode("utf-8-sig"),
            "docs/empty.txt": b"",
            "__MACOSX/docs/._a.txt": b"\x00\x05\x16\x07 resource fork",
            "docs/.DS_Store": b"\x00\x00\x00\x01Bud1",
        },
    )
    assert list(iter_records(path)) == [
        {"text": "First paragraph.\n\nSecond paragraph of the same file."},
        {"text": "Another file, caf\u00e9."},
    ]
    d = describe(path)
    assert (d.kind, d.rows, d.page_index) == ("text", 2, [])


def test_it_reads_jsonl_members_as_records_with_their_member_lines(tmp_path):
    good = {"prompt": "Hi?", "completion": "Hello."}
    path = _zip(
        tmp_path / "chat.zip",
        {
            "part-1.jsonl": (json.dumps(good) + "\n").encode(),
            "part-2.jsonl": (json.dumps(good) + "\n{oops\n").encode(),
        },
    )
    d = describe(path)
    assert (d.kind, d.rows) == ("sft", 2)
    assert [str(e) for e in d.errors] == [
        "chat.zip:part-2.jsonl, line 2: not valid JSON "
        "(Expecting property name enclosed in double quotes at column 2)"
    ]


def test_it_reports_a_binary_member_and_reads_the_others(tmp_path):
    path = _zip(
        tmp_path / "corpus.zip",
        {"a.txt": b"text", "photo.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "b.txt": b"more"},
    )
    d = describe(path)
    assert d.rows == 2
    (error,) = d.errors
    assert error.file == "corpus.zip:photo.jpg" and "NUL bytes" in error.message


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("../evil.txt", "member '../evil.txt' escapes the archive's folder"),
        ("docs/../../evil.txt", "escapes the archive's folder"),
        ("/etc/evil.txt", "member '/etc/evil.txt' has an absolute path"),
        ("C:\\evil.txt", "has an absolute path"),
        ("..\\evil.txt", "escapes the archive's folder"),
    ],
)
def test_it_refuses_a_zip_whose_member_escapes_the_folder(tmp_path, member, reason):
    path = _zip(tmp_path / "evil.zip", {"fine.txt": b"fine", member: b"evil"})
    with pytest.raises(ArchiveRefused, match=reason.replace("\\", "\\\\")):
        list(iter_records(path))
    (error,) = describe(path).errors
    assert error.file == "evil.zip" and reason in error.message


def test_it_refuses_a_zip_holding_a_symlink(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as z:
        info = zipfile.ZipInfo("passwd.txt")
        info.create_system = 3  # Unix, so the mode bits mean what they say
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/passwd")
    assert [str(e) for e in describe(path).errors] == [
        "link.zip: member 'passwd.txt' is a symbolic link"
    ]


def test_it_refuses_a_zip_bomb_by_its_ratio_before_decompressing(tmp_path):
    path = tmp_path / "bomb.zip"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z,
        z.open("zeros.txt", "w") as f,
    ):
        for _ in range(ZEROS_50MB >> 20):
            f.write(bytes(1 << 20))
    assert path.stat().st_size < 100_000
    (error,) = describe(path).errors
    assert isinstance(error, ArchiveRefused)
    assert (
        "refused as a possible zip bomb" in error.message
        and "at member 'zeros.txt'" in error.message
    )


def test_it_refuses_an_archive_past_the_total_size_limit(tmp_path):
    path = _zip(tmp_path / "big.zip", {"a.txt": bytes(range(32, 127)) * 20, "b.txt": b"x"})
    limits = ArchiveLimits(max_total_bytes=1000)
    with pytest.raises(ArchiveRefused, match="expands to more than the limit of 0.000953674 MiB"):
        list(iter_records(path, limits=limits))
    assert describe(path).ok


def test_it_accepts_a_small_archive_of_very_repetitive_text(tmp_path):
    path = _zip(tmp_path / "repeat.zip", {"a.txt": b"la " * 100_000})  # compresses ~500:1
    assert describe(path).ok


def test_it_reads_a_tar_gz_of_documents_and_jsonl(tmp_path):
    docs = {
        "corpus/a.txt": b"Alpha.\n",
        "corpus/b.jsonl": b'{"text": "Beta."}\n{"text": "Gamma."}\n',
    }
    path = _tar(tmp_path / "corpus.tar.gz", [_file("corpus/a.txt"), _file("corpus/b.jsonl")], docs)
    assert list(iter_records(path)) == [{"text": "Alpha."}, {"text": "Beta."}, {"text": "Gamma."}]
    tgz = path.rename(tmp_path / "corpus.tgz")
    assert describe(tgz).rows == 3


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (tarfile.SYMTYPE, "member 'a.txt' is a link"),
        (tarfile.LNKTYPE, "member 'a.txt' is a link"),
        (tarfile.FIFOTYPE, "member 'a.txt' is not a regular file"),
    ],
)
def test_it_refuses_a_tar_holding_a_link_or_a_device(tmp_path, kind, reason):
    link = _file("a.txt")
    link.type = kind
    link.linkname = "/etc/passwd"
    path = _tar(tmp_path / "links.tar.gz", [_file("fine.txt"), link], {"fine.txt": b"fine"})
    assert [str(e) for e in describe(path).errors] == [f"links.tar.gz: {reason}"]


def test_it_refuses_a_tar_whose_member_escapes_the_folder(tmp_path):
    path = _tar(tmp_path / "evil.tar.gz", [_file("../evil.txt")], {"../evil.txt": b"evil"})
    with pytest.raises(ArchiveRefused, match="escapes the archive's folder"):
        list(iter_records(path))


def test_it_refuses_a_tar_bomb_at_the_member_header(tmp_path):
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        info = _file("zeros.txt")
        info.size = ZEROS_50MB
        t.addfile(info, _Zeros(ZEROS_50MB))
    (error,) = describe(path).errors
    assert isinstance(error, ArchiveRefused) and "refused as a possible zip bomb" in error.message


def test_it_refuses_a_corrupt_archive(tmp_path):
    path = tmp_path / "broken.zip"
    path.write_bytes(b"PK\x03\x04 this is not really a zip")
    (error,) = describe(path).errors
    assert error.message.startswith("not a readable zip archive")
    tgz = tmp_path / "broken.tar.gz"
    tgz.write_bytes(b"\x1f\x8b\x08\x00garbage")
    (error,) = describe(tgz).errors
    assert error.message.startswith("not a readable tar archive")


def test_it_refuses_text_documents_in_an_archive_of_another_kind(tmp_path):
    chat = b'{"prompt": "Hi?", "completion": "Hello."}\n'
    path = _zip(tmp_path / "mixed.zip", {"chat.jsonl": chat, "notes.txt": b"a note"})
    with pytest.raises(
        DatasetError,
        match="mixed.zip:notes.txt, line 1: holds plain text documents, which cannot be of kind",
    ):
        list(iter_records(path))


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def test_it_refuses_a_zip_before_yielding_any_record_of_it(tmp_path):
    path = _zip(tmp_path / "evil.zip", {"fine.txt": b"fine", "../evil.txt": b"evil"})
    records = iter_records(path)
    with pytest.raises(ArchiveRefused):
        next(records)
