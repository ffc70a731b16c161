"""Show how a trained tokenizer splits text. Uses `tokenizers` (Rust, no torch) in the web process."""

import functools

from tokenizers import Tokenizer

from lab.runs.models import Artifact


@functools.lru_cache(maxsize=16)
def _load(path: str, sha256: str) -> Tokenizer:
    return Tokenizer.from_file(path)


def encode_with_artifact(artifact: Artifact, text: str) -> dict:
    tokenizer = _load(str(artifact.absolute_path), artifact.sha256)
    encoding = tokenizer.encode(text, add_special_tokens=False)
    pieces = [text[start:end] for start, end in encoding.offsets]
    return {"ids": encoding.ids, "tokens": encoding.tokens, "pieces": pieces, "count": len(encoding.ids),
            "chars_per_token": round(len(text) / len(encoding.ids), 2) if encoding.ids else None}
