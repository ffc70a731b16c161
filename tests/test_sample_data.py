"""lab.sample_data: copy, verify, download, and refuse wrong bytes. No Django, no network."""

import hashlib
import http.server
import re
import threading
from pathlib import Path

import pytest

from lab.sample_data import (
    MANIFEST,
    SampleDataError,
    SampleFile,
    default_source,
    ensure_sample_data,
)

CONTENT = b"To be, or not to be, that is the question:\n"


def entry_for(content: bytes, path: str = "corpora/tiny.txt", **kw) -> SampleFile:
    fields = {
        "url": "http://127.0.0.1:9/unused",
        "licence": "public domain",
        "sha256": hashlib.sha256(content).hexdigest(),
        "bytes": len(content),
    }
    fields.update(kw)
    return SampleFile(path=path, **fields)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "source"
    (src / "corpora").mkdir(parents=True)
    (src / "corpora" / "tiny.txt").write_bytes(CONTENT)
    return src


@pytest.fixture
def http_root(tmp_path: Path):
    """A loopback HTTP server over a folder; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_it_copies_and_verifies_the_real_sample_data(tmp_path: Path):
    placed = ensure_sample_data(tmp_path / "dest", log=lambda _: None)

    assert sorted(placed) == sorted(e.path for e in MANIFEST)
    for entry in MANIFEST:
        data = placed[entry.path].read_bytes()
        assert len(data) == entry.bytes
        assert hashlib.sha256(data).hexdigest() == entry.sha256


def test_it_is_idempotent(tmp_path: Path, source: Path):
    dest = tmp_path / "dest"
    entry = entry_for(CONTENT)
    ensure_sample_data(dest, source, manifest=[entry], log=lambda _: None)
    target = dest / entry.path
    before = target.stat().st_mtime_ns
    messages: list[str] = []

    ensure_sample_data(dest, source, manifest=[entry], log=messages.append)

    assert target.stat().st_mtime_ns == before
    assert messages == [f"sample data: 1 files in place in {dest}"]


def test_it_rejects_a_source_with_a_bad_hash(tmp_path: Path, source: Path):
    dest = tmp_path / "dest"
    entry = entry_for(CONTENT, sha256="0" * 64)

    with pytest.raises(SampleDataError, match="sha256 is .* expected 0000"):
        ensure_sample_data(dest, source, manifest=[entry], download=False, log=lambda _: None)

    assert not (dest / entry.path).exists()
    assert leftovers(tmp_path) == []


def test_it_rejects_a_source_of_the_wrong_size(tmp_path: Path, source: Path):
    entry = entry_for(CONTENT + b"more")

    with pytest.raises(SampleDataError, match="expected 47 bytes, got 43"):
        ensure_sample_data(tmp_path / "dest", source, manifest=[entry], download=False)


def test_it_replaces_a_corrupted_copy(tmp_path: Path, source: Path):
    dest = tmp_path / "dest"
    entry = entry_for(CONTENT)
    (dest / "corpora").mkdir(parents=True)
    (dest / entry.path).write_bytes(CONTENT.upper())

    ensure_sample_data(dest, source, manifest=[entry], log=lambda _: None)

    assert (dest / entry.path).read_bytes() == CONTENT


def test_it_downloads_a_file_missing_from_the_source(tmp_path: Path, http_root):
    root, base = http_root
    (root / "input.txt").write_bytes(CONTENT)
    entry = entry_for(CONTENT, url=f"{base}/input.txt")
    messages: list[str] = []

    placed = ensure_sample_data(tmp_path / "dest", tmp_path / "empty", manifest=[entry], log=messages.append)

    assert placed[entry.path].read_bytes() == CONTENT
    assert messages == [f"sample data: {entry.path} downloaded from {base}/input.txt"]


def test_it_rejects_a_download_with_a_bad_hash(tmp_path: Path, http_root):
    root, base = http_root
    (root / "input.txt").write_bytes(CONTENT.upper())
    entry = entry_for(CONTENT, url=f"{base}/input.txt")

    with pytest.raises(SampleDataError, match="is not the expected file: sha256 is"):
        ensure_sample_data(tmp_path / "dest", tmp_path / "empty", manifest=[entry])

    assert not (tmp_path / "dest" / entry.path).exists()
    assert leftovers(tmp_path) == []


def test_it_explains_that_a_derived_file_must_be_copied(tmp_path: Path, http_root):
    root, base = http_root
    (root / "input.txt").write_bytes(CONTENT)
    entry = entry_for(CONTENT, url=f"{base}/input.txt", derived=True)

    with pytest.raises(SampleDataError, match="cannot be downloaded byte for byte.*LAB_SAMPLE_DATA"):
        ensure_sample_data(tmp_path / "dest", tmp_path / "empty", manifest=[entry])


def test_it_keeps_the_good_files_when_one_fails(tmp_path: Path, source: Path):
    dest = tmp_path / "dest"
    good = entry_for(CONTENT)
    bad = entry_for(CONTENT, path="corpora/missing.txt", derived=True)

    with pytest.raises(SampleDataError) as raised:
        ensure_sample_data(dest, source, manifest=[good, bad], log=lambda _: None)

    assert "corpora/missing.txt" in str(raised.value)
    assert (dest / good.path).read_bytes() == CONTENT


def test_it_agrees_with_the_data_readme():
    readme = default_source() / "README.md"
    if not readme.exists():
        pytest.skip(f"{readme} is not here")
    listed = dict(
        (path, sha) for sha, path in re.findall(r"^([0-9a-f]{64})  (\S+)$", readme.read_text(), re.M)
    )

    assert listed == {e.path: e.sha256 for e in MANIFEST}
