"""The clean stage's output: kept documents split into `train.jsonl` and `validation.jsonl`.

Both files are written under temporary names and renamed only once the whole corpus went through,
so a cancelled or failed run leaves nothing half-written that a later stage could take for a corpus.
"""

from __future__ import annotations

import hashlib
import os
from json.encoder import encode_basestring  # the C string encoder json.dumps itself uses
from pathlib import Path
from types import TracebackType
from typing import TextIO

TRAIN_FILE = "train.jsonl"
VALIDATION_FILE = "validation.jsonl"
_BUFFER_BYTES = 1 << 20


def is_validation(digest: bytes, seed: int, val_fraction: float) -> bool:
    """Whether a document goes to validation, from its text digest and the seed.

    Hashing the text rather than taking its position keeps the split stable when documents are added
    or removed upstream, and puts copies of one text on one side (no leak when exact dedup is off).
    """
    keyed = hashlib.blake2b(digest, digest_size=8, key=seed.to_bytes(8, "little")).digest()
    return int.from_bytes(keyed, "little") < val_fraction * 2**64


class SplitWriter:
    """A context manager: `write` inside, `commit` renames the files into place; leaving without a
    commit deletes them."""

    def __init__(self, output_dir: Path, seed: int, val_fraction: float) -> None:
        self.output_dir = output_dir
        self.seed = seed
        self.val_fraction = val_fraction
        self.counts = {"train": 0, "validation": 0}
        suffix = f".tmp-{os.getpid()}"
        self._final = [output_dir / TRAIN_FILE, output_dir / VALIDATION_FILE]
        self._temp = [p.with_name(f".{p.name}{suffix}") for p in self._final]
        self._files: list[TextIO] = []

    def __enter__(self) -> SplitWriter:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        try:
            for path in self._temp:
                self._files.append(open(path, "w", encoding="utf-8", buffering=_BUFFER_BYTES))
        except BaseException:
            self._discard()
            raise
        return self

    def write(self, text: str, digest: bytes) -> None:
        """Append one document, as `{"text": …}`, to the side its digest picks."""
        side = 1 if is_validation(digest, self.seed, self.val_fraction) else 0
        self._files[side].write('{"text": ' + encode_basestring(text) + "}\n")
        self.counts["validation" if side else "train"] += 1

    def commit(self) -> dict[str, Path]:
        """Close the files and give them their final names: {"train": path, "validation": path}."""
        for f in self._files:
            f.close()
        for temp, final in zip(self._temp, self._final, strict=True):
            os.replace(temp, final)
        self._files = []
        return dict(zip(("train", "validation"), self._final, strict=True))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._files:  # not committed: cancelled or failed
            self._discard()

    def _discard(self) -> None:
        for f in self._files:
            f.close()
        self._files = []
        for path in self._temp:
            path.unlink(missing_ok=True)
