"""What the dataset page shows beyond its stats: a page of records, their tokens under a chosen
tokenizer, and (SFT and preference) what a model trains on."""

import json

from tokenizers import Tokenizer

from lab.datasets.chat_preview import ChatPreview, NoChatTemplate, chat_previews
from lab.datasets.models import Dataset
from lab.runs.models import Artifact
from training.datasets import DatasetError, describe, read_page

# Counting tokens reads the whole file in the request: past this size the page says so instead.
COUNT_TOKENS_UP_TO_BYTES = 50 * 1024 * 1024
CHAT_KINDS = (Dataset.Kind.SFT, Dataset.Kind.PREFERENCE)


def page_records(dataset: Dataset, offset: int, limit: int) -> tuple[list[dict], str]:
    """(records `offset` to `offset + limit`, why there are none when the file cannot be read)."""
    if dataset.n_records == 0:
        return [], ""
    try:
        return read_page(dataset.absolute_path, max(offset, 0), limit, dataset.kind,
                         index=dataset.stats.get("page_index", ())), ""
    except (OSError, DatasetError) as e:
        return [], f"the file cannot be read: {e}"


def as_json(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, indent=1)


def token_counts(dataset: Dataset, tokenizer: Artifact) -> dict | None:
    """The tokens-a-record histogram under `tokenizer`, counted once and kept in the stats."""
    cached = dataset.stats.get("tokens_by_tokenizer", {}).get(tokenizer.sha256)
    if cached is not None or dataset.size_bytes > COUNT_TOKENS_UP_TO_BYTES:
        return cached
    counted = describe(dataset.absolute_path, dataset.kind,
                       tokenizer=Tokenizer.from_file(str(tokenizer.absolute_path))).tokens
    dataset.stats.setdefault("tokens_by_tokenizer", {})[tokenizer.sha256] = counted
    dataset.save(update_fields=["stats"])
    return counted


def training_view(dataset: Dataset, record: dict, tokenizer: Artifact) -> tuple[list[ChatPreview], str]:
    """(previews of `record` as trained on, why there are none)."""
    if dataset.kind not in CHAT_KINDS:
        return [], ""
    try:
        return chat_previews(record, dataset.kind, tokenizer.absolute_path), ""
    except NoChatTemplate as e:
        return [], str(e)
    except Exception as e:  # a template raises what its author wrote
        return [], f"the chat template cannot render this record: {e}"
