"""The baseline the lab's tokenizer stage is measured against: the `tokenizers` library called directly.

    python bench/tokenizer_bare.py RUN_CONFIG.json OUT_DIR

Reads a tokenizer config the lab wrote (`attempt-1.json` of a finished run) and trains the same
byte-level BPE on the same corpus file with the same trainer and pre-tokenizer settings as
training/tokenizer.py, feeding the same documents (split at blank lines) in batches of the same
size; no events, statistics or artifact metadata. Saves OUT_DIR/tokenizer.json and prints one JSON
line: `saved_at`, the time.time() right after the save returned.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

BATCH_CHARS = 1_000_000  # training.corpus.iter_batches's default


def batches(path: str):
    text = Path(path).read_text(encoding="utf-8")
    batch, size = [], 0
    for doc in text.split("\n\n"):
        doc = doc.strip("\n")
        if doc.strip():
            batch.append(doc)
            size += len(doc)
            if size >= BATCH_CHARS:
                yield batch
                batch, size = [], 0
    if batch:
        yield batch


def main() -> None:
    config_path, out_dir = sys.argv[1], Path(sys.argv[2])
    cfg = json.loads(Path(config_path).read_text())
    if cfg["algorithm"] != "bpe" or cfg["corpus_format"] != "txt":
        sys.exit(f"only byte-level BPE on a txt corpus, not {cfg['algorithm']} on {cfg['corpus_format']}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg["vocab_size"],
        min_frequency=cfg["min_frequency"],
        special_tokens=cfg["special_tokens"],  # byte-level BPE adds no unknown token
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(batches(cfg["corpus_path"]), trainer=trainer)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    print(json.dumps({"saved_at": time.time()}))


if __name__ == "__main__":
    main()
