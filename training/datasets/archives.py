"""`.zip` and `.tar.gz` archives of text: each member one document, `.jsonl` members read as JSON
Lines. Members are read as streams, never extracted to disk.

An archive is refused whole (ArchiveRefused) when a member could escape a folder it were extracted
to (absolute path, `..`, a link) or when it expands past the limits: declared sizes bound what is
decompressed (zipfile stops at a member's declared size; a tar member's size is exact), so the
limits are checked on them before reading. A zip is checked whole before its first member is read;
a tar.gz, read as a stream, member by member, so records of earlier members may come first.
"""

from __future__ import annotations

import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from training.datasets.errors import ArchiveRefused, DatasetError
from training.datasets.formats import Raw, read_document, read_jsonl
from training.datasets.textio import iter_lines


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may expand to before it is refused as a possible zip bomb."""

    max_ratio: float = 100.0
    """Most bytes of contents per byte of archive."""
    max_total_bytes: int = 10 << 30
    """Most bytes of contents in all, 10 GiB by default."""
    ratio_from_bytes: int = 1 << 20
    """The ratio is only checked past this many bytes of contents: a tiny archive of repetitive
    text compresses far better than 100:1 and is harmless."""


DEFAULT_LIMITS = ArchiveLimits()


def read_zip(path: Path, file: str, limits: ArchiveLimits) -> Iterator[Raw | DatasetError]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            budget = _Budget(path.stat().st_size, limits, file)
            for info in members:  # the whole central directory, before any member is read
                _check_zip_member(info, file)
                budget.spend(info.file_size, info.filename)
            for info in members:
                if info.is_dir() or info.file_size == 0 or _is_clutter(info.filename):
                    continue
                with archive.open(info) as stream:
                    yield from _read_member(stream, f"{file}:{info.filename}")
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError) as e:
        raise ArchiveRefused(f"not a readable zip archive ({e})", file=file) from None


def read_tar(path: Path, file: str, limits: ArchiveLimits) -> Iterator[Raw | DatasetError]:
    budget = _Budget(path.stat().st_size, limits, file)
    try:
        # Stream mode ("r|"): members are read in order without seeking, and one at a time.
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                _check_tar_member(member, file)
                # Skipped members are decompressed too, on the way to the next header.
                budget.spend(member.size, member.name)
                if member.isdir() or member.size == 0 or _is_clutter(member.name):
                    continue
                stream = archive.extractfile(member)
                assert stream is not None  # a regular file, checked above
                yield from _read_member(stream, f"{file}:{member.name}")
    except (tarfile.TarError, zlib.error, EOFError, OSError) as e:
        raise ArchiveRefused(f"not a readable tar archive ({e})", file=file) from None


def extract_archive(path: Path, dest: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> None:
    """Unpack a `.zip` or `.tar(.gz)` into the empty folder `dest`, with the readers' checks: no
    member outside `dest`, no links or devices, the size and ratio limits. Raises ArchiveRefused."""
    file = path.name
    budget = _Budget(path.stat().st_size, limits, file)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                members = archive.infolist()
                for info in members:
                    _check_zip_member(info, file)
                    budget.spend(info.file_size, info.filename)
                for info in members:
                    if not info.is_dir() and not _is_clutter(info.filename):
                        _copy_member(archive.open(info), dest / info.filename, info.filename, file)
            return
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                _check_tar_member(member, file)
                budget.spend(member.size, member.name)
                if member.isreg() and not _is_clutter(member.name):
                    _copy_member(archive.extractfile(member), dest / member.name, member.name, file)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as e:
        raise ArchiveRefused(f"not a readable zip or tar archive ({e})", file=file) from None


def _copy_member(stream: BinaryIO, target: Path, name: str, file: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = open(target, "xb")
    except (FileExistsError, IsADirectoryError, NotADirectoryError):
        stream.close()
        raise ArchiveRefused(f"member {name!r} clashes with another member of that name (a file and a folder, "
                             "or the same file twice)", file=file) from None
    with stream, out:
        while block := stream.read(1 << 20):
            out.write(block)


def _read_member(stream: BinaryIO, file: str) -> Iterator[Raw | DatasetError]:
    """One member's records. A member that is not text fails alone, as a bad record does."""
    try:
        lines = iter_lines(stream, file)
        if file.lower().endswith(".jsonl"):
            yield from read_jsonl(lines, file)
        else:
            yield from read_document(lines, file)
    except DatasetError as e:
        yield e


class _Budget:
    def __init__(self, archive_bytes: int, limits: ArchiveLimits, file: str) -> None:
        self.archive_bytes = max(archive_bytes, 1)
        self.limits = limits
        self.file = file
        self.total = 0

    def spend(self, size: int, member: str) -> None:
        self.total += size
        if self.total > self.limits.max_total_bytes:
            raise ArchiveRefused(
                f"expands to more than the limit of {_size(self.limits.max_total_bytes)} "
                f"(at member {member!r})",
                file=self.file,
            )
        ratio = self.total / self.archive_bytes
        if self.total > self.limits.ratio_from_bytes and ratio > self.limits.max_ratio:
            raise ArchiveRefused(
                f"expands {ratio:.0f} times its size (more than {self.limits.max_ratio:g}), "
                f"at member {member!r}: refused as a possible zip bomb",
                file=self.file,
            )


def _check_zip_member(info: zipfile.ZipInfo, file: str) -> None:
    _check_path(info.filename, file)
    # The Unix mode, where the archiver stored one; Python's own zipfile stores permissions only.
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        raise ArchiveRefused(f"member {info.filename!r} is a symbolic link", file=file)
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveRefused(f"member {info.filename!r} is not a regular file", file=file)
    if info.flag_bits & 0x1:
        raise ArchiveRefused(f"member {info.filename!r} is encrypted", file=file)


def _check_tar_member(member: tarfile.TarInfo, file: str) -> None:
    _check_path(member.name, file)
    if member.issym() or member.islnk():
        raise ArchiveRefused(f"member {member.name!r} is a link", file=file)
    if not (member.isreg() or member.isdir()):
        raise ArchiveRefused(f"member {member.name!r} is not a regular file", file=file)


def _check_path(name: str, file: str) -> None:
    parts = re.split(r"[\\/]", name)
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise ArchiveRefused(f"member {name!r} has an absolute path", file=file)
    if ".." in parts:
        raise ArchiveRefused(f"member {name!r} escapes the archive's folder", file=file)


def _is_clutter(name: str) -> bool:
    """Files archivers and desktops add that nobody means as data (`__MACOSX/`, `.DS_Store`)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return any(p == "__MACOSX" or p.startswith(".") for p in parts)


def _size(n: int) -> str:
    return f"{n / (1 << 30):g} GiB" if n >= 1 << 30 else f"{n / (1 << 20):g} MiB"
