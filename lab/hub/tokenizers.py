"""Show how a trained tokenizer splits text. Uses `tokenizers` (Rust, no torch) in the web process.

A token is shown as the characters of the user's text that it covers (from the encoding's offsets),
never as its vocabulary string: `##ing`, `▁the` and byte-level `Ġthe` all show as what was typed.
"""

import functools

from tokenizers import Tokenizer

from lab.runs.models import Artifact


@functools.lru_cache(maxsize=16)
def _load(path: str, sha256: str) -> Tokenizer:
    return Tokenizer.from_file(path)


def load_tokenizer(artifact: Artifact) -> Tokenizer:
    return _load(str(artifact.absolute_path), artifact.sha256)


def encode_with_artifact(artifact: Artifact, text: str) -> dict:
    tokenizer = load_tokenizer(artifact)
    encoding = tokenizer.encode(text, add_special_tokens=False)
    pieces, gaps, tail = split_by_offsets(text, encoding.offsets)
    unk_id = unknown_token_id(tokenizer, artifact.metadata.get("unk_token"))
    return {
        "artifact": describe_tokenizer(artifact),
        "ids": encoding.ids, "tokens": encoding.tokens, "pieces": pieces, "gaps": gaps, "tail": tail,
        "unk_id": unk_id, **text_stats(text, encoding.ids, unk_id),
    }


def split_by_offsets(text: str, offsets: list[tuple[int, int]]) -> tuple[list[str], list[str], str]:
    """(piece of each token, uncovered text before each token, uncovered text after the last).

    Joining gap + piece for every token, then the tail, gives `text` back exactly. Characters are
    given to the first token whose offsets reach them: several tokens can span one character (the
    bytes of `東` under byte-level BPE, or Unigram's `▁` prepended to the first word), and the later
    ones get an empty piece. Gaps are what no token covers, such as the spaces WordPiece drops.
    """
    pieces, gaps, covered = [], [], 0
    for start, end in offsets:
        start = max(start, covered)
        end = max(end, start)
        gaps.append(text[covered:start])
        pieces.append(text[start:end])
        covered = end
    return pieces, gaps, text[covered:]


def unknown_token_id(tokenizer: Tokenizer, unk_token: str | None) -> int | None:
    """The unknown token's id; None for a tokenizer that has none (byte-level BPE spells everything)."""
    unk_token = unk_token or getattr(tokenizer.model, "unk_token", None)
    return tokenizer.token_to_id(unk_token) if unk_token else None


def text_stats(text: str, ids: list[int], unk_id: int | None) -> dict:
    return {
        "count": len(ids),
        "characters": len(text),
        "chars_per_token": round(len(text) / len(ids), 2) if ids else None,
        "unknown": ids.count(unk_id) if unk_id is not None else 0,
    }


def describe_tokenizer(artifact: Artifact) -> dict:
    """What names a tokenizer in a list: its artifact name, algorithm and vocabulary size."""
    return {
        "id": artifact.pk,
        "name": artifact.name,
        "algorithm": artifact.metadata.get("algorithm", ""),
        "vocab_size": artifact.metadata.get("vocab_size"),
        "unk_token": artifact.metadata.get("unk_token"),
    }
