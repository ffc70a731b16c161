"""The sample data sets that the demo notebook, the tests and the benchmarks use.

Small samples of real public data sets lie in `../shared/data/` beside the repository; they are not
committed. This module keeps their manifest (file, public source, licence, sha256, size) and puts a
verified copy of each under `var/sample-data/`:

    python -m lab.sample_data            # or: make sample-data

Each file is copied from LAB_SAMPLE_DATA (default `<repo>/../shared/data`). Where a file is missing
there, it is downloaded from its public source when that source is the file itself; the files that
are samples drawn from a larger source (`derived=True`) cannot be downloaded byte for byte and must
be copied. Every copy is checked against the manifest's sha256, and a file already in place with the
right hash is left alone, so a second run only re-reads ~10 MB.

Pure standard library and no Django: `make sample-data` runs it with any Python 3.11.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from training.corpus import file_sha256

REPO_ROOT = Path(__file__).resolve().parent.parent
CHUNK = 1 << 20


@dataclass(frozen=True)
class SampleFile:
    path: str
    """Where the file lies, relative to the sample-data folder (forward slashes)."""
    url: str
    """The file's public source: the file itself, or, when `derived`, the data it was drawn from."""
    licence: str
    """The licence of the data, as its source states it."""
    sha256: str
    """Hex sha256 of the exact bytes; every copy is checked against it."""
    bytes: int
    """Size in bytes; checked before the hash, so a wrong size fails fast."""
    derived: bool = False
    """True when the file is a sample or conversion of `url` that cannot be downloaded as is."""
    note: str = ""
    """How the file was made from its source, for the people who read the manifest."""


_GH = "https://raw.githubusercontent.com"
_DOLLY = (
    "https://github.com/spyysalo/databricks-dolly-translation/tree/"
    "2ee771db87ba66de909ee0506a18d9e6ffb720e9/dolly-doc-in"
)
_HH = f"{_GH}/anthropics/hh-rlhf/354e5c3cb8960630860dd5774a6ac2a58313bf4d/harmless-base/test.jsonl.gz"

# The facts below are those of ../shared/data/README.md, which tells the whole story of each file.
MANIFEST: tuple[SampleFile, ...] = (
    SampleFile(
        path="corpora/tinyshakespeare.txt",
        url=f"{_GH}/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt",
        licence="public domain",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        bytes=1_115_394,
        note="The whole source file, byte for byte.",
    ),
    SampleFile(
        path="sft/dolly-2k.jsonl",
        url=_DOLLY,
        licence="CC BY-SA 3.0 (Copyright (2023) Databricks, Inc.)",
        sha256="7dea27b7c12ad0e526daeacc56d4ec57c422292d167229623adeb8383504abb9",
        bytes=1_667_935,
        derived=True,
        note="databricks-dolly-15k rebuilt from a DOCX rendering; 2,000 records drawn with "
        "random.Random(0); alpaca format.",
    ),
    SampleFile(
        path="sft/dolly-2k.messages.jsonl",
        url=_DOLLY,
        licence="CC BY-SA 3.0 (Copyright (2023) Databricks, Inc.)",
        sha256="ad6d014863cee448176744519982e00f639791c213004dfe891d65c5bf4affff",
        bytes=1_748_391,
        derived=True,
        note="The same 2,000 Dolly records as chat messages.",
    ),
    SampleFile(
        path="preference/hh-harmless-test-1811.jsonl",
        url=_HH,
        licence="MIT (Copyright (c) 2022 Anthropic)",
        sha256="cec8b2f019e3b7f75e3b82e769e97b618a20e9ddcaa0dfc67dbe2bbcb0373266",
        bytes=2_575_202,
        derived=True,
        note="A seeded random 1,811 of the 2,312 hh-rlhf harmless-base test pairs; red-teaming "
        "dialogues, filter before a demo.",
    ),
    SampleFile(
        path="preference/hh-harmless-test-1811.prompt.jsonl",
        url=_HH,
        licence="MIT (Copyright (c) 2022 Anthropic)",
        sha256="38c080a8a7691a4eff299c11d07b20594a242053cb800848cc7495f3dfb4f189",
        bytes=1_685_629,
        derived=True,
        note="The same pairs split into prompt/chosen/rejected; 7 unclean pairs dropped.",
    ),
    SampleFile(
        path="classification/sms-spam-5k.tsv",
        url=f"{_GH}/MandeepSinghthakur/SpamDetectionMachineLearning/"
        "90484a3a99ff9b46840260c5eb273ae62d46b6a8/smsspamcollection/SMSSpamCollection",
        licence="CC BY 4.0 (SMS Spam Collection v.1, Almeida and Gómez Hidalgo)",
        sha256="b69b9aed957a565b7c14af52fe6ec38b7666487e334be446aba0b8a420369ba8",
        bytes=429_854,
        derived=True,
        note="5,000 of the 5,574 lines drawn with random.Random(0), under a label<TAB>text header.",
    ),
    SampleFile(
        path="eval/gsm8k-test-300.jsonl",
        url=f"{_GH}/openai/grade-school-math/3101c7d5072418e28b9008a6636bde82a006892c/"
        "grade_school_math/data/test.jsonl",
        licence="MIT (Copyright (c) 2021 OpenAI)",
        sha256="23334809255204935ff6b5d6de36a29312ed2b1e9baae0629299699361dbc055",
        bytes=168_872,
        derived=True,
        note="The first 300 of the 1,319 GSM8K test problems.",
    ),
    SampleFile(
        path="eval/mmlu-test-500.jsonl",
        url="https://github.com/raybears/cot-transparency/tree/"
        "f6874394ba80a439237e4d7581dddc30d40c1830/data/mmlu/test",
        licence="MIT (hendrycks/test)",
        sha256="8ebd1896385c83630824b95bfae2ef2b3ef3431d5490763cd7422f61270251a8",
        bytes=266_787,
        derived=True,
        note="500 of the 14,042 MMLU test questions drawn with random.Random(0), as cais/mmlu rows.",
    ),
)


class SampleDataError(Exception):
    """A sample file could not be put in place with the right bytes."""


def default_source() -> Path:
    return Path(os.environ.get("LAB_SAMPLE_DATA") or REPO_ROOT.parent / "shared" / "data")


def default_dest() -> Path:
    return REPO_ROOT / "var" / "sample-data"


def is_in_place(entry: SampleFile, target: Path) -> bool:
    """Whether `target` holds exactly the manifest's bytes (size first: a cheap early no)."""
    try:
        if target.stat().st_size != entry.bytes:
            return False
    except FileNotFoundError:
        return False
    return file_sha256(target) == entry.sha256


def ensure_sample_data(
    dest: Path | str | None = None,
    source: Path | str | None = None,
    *,
    manifest: Iterable[SampleFile] = MANIFEST,
    download: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Put a verified copy of every manifest file under `dest`; return {relative path: file}.

    Raises SampleDataError naming every file that could not be put in place; the files that could
    are kept, and nothing with a wrong hash is ever left at a target path.
    """
    dest = Path(dest) if dest is not None else default_dest()
    source = Path(source) if source is not None else default_source()
    placed: dict[str, Path] = {}
    problems: list[str] = []
    fetched = 0
    for entry in manifest:
        target = dest / entry.path
        if is_in_place(entry, target):
            placed[entry.path] = target
            continue
        try:
            how = _fetch(entry, target, source, download)
        except SampleDataError as e:
            problems.append(str(e))
            continue
        log(f"sample data: {entry.path} {how}")
        placed[entry.path] = target
        fetched += 1
    if problems:
        raise SampleDataError("\n".join(problems))
    if not fetched:
        log(f"sample data: {len(placed)} files in place in {dest}")
    return placed


def _fetch(entry: SampleFile, target: Path, source: Path, download: bool) -> str:
    """Copy `entry` from `source`, else download it; return how it came."""
    reasons = []
    local = source / entry.path
    if local.is_file():
        try:
            with open(local, "rb") as f:
                _write_verified(f, entry, target)
            return f"copied from {source}"
        except SampleDataError as e:
            reasons.append(str(e))
    else:
        reasons.append(f"{local} does not exist (LAB_SAMPLE_DATA={source})")

    if entry.derived:
        reasons.append(
            f"it is a sample derived from {entry.url} and cannot be downloaded byte for byte: "
            "copy it from a checkout of shared/data by setting LAB_SAMPLE_DATA to that folder"
        )
    elif not download:
        reasons.append("downloading is switched off")
    else:
        try:
            with urllib.request.urlopen(entry.url, timeout=60) as response:
                _write_verified(response, entry, target)
            return f"downloaded from {entry.url}"
        except (urllib.error.URLError, OSError) as e:
            reasons.append(f"downloading {entry.url} failed: {e}")
        except SampleDataError as e:
            reasons.append(f"the download from {entry.url} is not the expected file: {e}")
    raise SampleDataError(f"{entry.path}: " + "; ".join(reasons))


def _write_verified(stream: BinaryIO, entry: SampleFile, target: Path) -> None:
    """Stream into a temporary file beside `target`, check size and hash, then rename into place.

    The rename is atomic, so a reader (or a second copier running at the same time) sees either no
    file or the whole right one, never a half-written or wrong one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > entry.bytes:
                    break  # no point reading a larger file to the end
                digest.update(chunk)
                out.write(chunk)
        if size != entry.bytes:
            got = size if size <= entry.bytes else "more"
            raise SampleDataError(f"expected {entry.bytes} bytes, got {got}")
        if digest.hexdigest() != entry.sha256:
            raise SampleDataError(f"sha256 is {digest.hexdigest()}, expected {entry.sha256}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.sample_data", description="Put verified sample data in place."
    )
    parser.add_argument("--dest", type=Path, default=None, help="default: <repo>/var/sample-data")
    parser.add_argument(
        "--source", type=Path, default=None, help="default: $LAB_SAMPLE_DATA or <repo>/../shared/data"
    )
    parser.add_argument("--no-download", action="store_true", help="only copy, never download")
    parser.add_argument("--list", action="store_true", help="print the manifest and exit")
    args = parser.parse_args(argv)
    if args.list:
        for entry in MANIFEST:
            kind = "derived from" if entry.derived else "from"
            print(f"{entry.path}  {entry.bytes} bytes  {entry.licence}")
            print(f"  {kind} {entry.url}\n  sha256 {entry.sha256}")
        return 0
    try:
        ensure_sample_data(args.dest, args.source, download=not args.no_download)
    except SampleDataError as e:
        print(f"sample data: FAILED\n{e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
