"""Duplicate detection of the clean stage: exact (a set of text hashes) and near (MinHash LSH).

Both keep hashes of the documents they have seen, never texts, so memory grows with the
number of distinct documents and not with their size: about 100 bytes per document for the exact
index (a 16-byte digest in a set), about 2 kB per kept document for the near-duplicate one at the
default threshold (rensa keeps each 512-byte signature and an entry of ~85 bytes per LSH band).
"""

from __future__ import annotations

import hashlib

NUM_PERM = 128
"""MinHash signature length: the similarity estimate's standard error is about 0.035 at 0.8."""
MINHASH_SEED = 42
"""Fixed, so that which documents count as near duplicates never depends on the split's seed."""
_CANDIDATE_RECALL = 0.9


def text_digest(data: bytes) -> bytes:
    """The 16-byte identity of a document's UTF-8 text (a collision: ~1 in 10^20 at 10^9 texts)."""
    return hashlib.blake2b(data, digest_size=16).digest()


class ExactDeduplicator:
    """Remembers digests; a digest seen before is a duplicate."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def is_duplicate(self, digest: bytes) -> bool:
        """True if the digest was seen before; remembers it either way."""
        if digest in self._seen:
            return True
        self._seen.add(digest)
        return False


class NearDeduplicator:
    """MinHash LSH over lowercased word n-grams, first come first kept.

    A document is a near duplicate when its estimated Jaccard similarity to a document kept earlier
    reaches `threshold`. The LSH bands only propose candidates; rensa then checks each candidate's
    full signature against the threshold, so the bands are tuned for recall, not for precision.
    """

    def __init__(self, threshold: float, ngram: int) -> None:
        from rensa import RMinHashDeduplicator  # a Rust extension the web process has no use for

        self.ngram = ngram
        self._index = RMinHashDeduplicator(
            threshold=threshold,
            num_perm=NUM_PERM,
            use_lsh=True,
            num_bands=lsh_bands(threshold, NUM_PERM),
            seed=MINHASH_SEED,
        )
        self._next_key = 0

    def keep(self, texts: list[str]) -> list[bool]:
        """For each text in order: False if it is near one kept before (in this batch too), else
        True, and it is kept for the texts to come."""
        first = self._next_key
        self._next_key += len(texts)
        keys = map(str, range(first, self._next_key))
        # One call for the whole batch: rensa hashes the shingles and walks the index in Rust.
        return self._index.add_pairs(zip(keys, map(self.shingles, texts), strict=True))

    def shingles(self, text: str) -> list[str]:
        """The text's lowercased word n-grams; a text of fewer words is one shingle.

        rensa takes tokens, not texts (a `str` would be read as a sequence of characters), so the
        n-grams are made here.
        """
        words = text.lower().split()
        n = self.ngram
        if len(words) <= n:
            return [" ".join(words)]
        # The i-th slice starts i words later; zip stops with the shortest: every full n-gram.
        return list(map(" ".join, zip(*(words[i:] for i in range(n)), strict=False)))


def lsh_bands(threshold: float, num_perm: int) -> int:
    """The fewest bands (a divisor of `num_perm`) that make a pair at `threshold` a candidate with
    probability >= 0.9. Fewer bands mean a smaller index; candidates are verified anyway."""
    divisors = [b for b in range(1, num_perm + 1) if num_perm % b == 0]
    for bands in divisors:
        rows = num_perm // bands
        if 1 - (1 - threshold**rows) ** bands >= _CANDIDATE_RECALL:
            return bands
    return num_perm

