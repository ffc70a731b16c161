"""A page of a stored dataset's records, as its page shows them."""

import json

from training.datasets import DatasetError, read_page

from lab.datasets.models import Dataset


def preview_page(dataset: Dataset, offset: int, limit: int) -> list[str]:
    """Records `offset` to `offset + limit` as indented JSON; one line saying why when unreadable."""
    if dataset.n_records == 0:
        return []
    try:
        records = read_page(dataset.absolute_path, max(offset, 0), limit, dataset.kind,
                            index=dataset.stats.get("page_index", ()))
    except (OSError, DatasetError) as e:
        return [f"the file cannot be read: {e}"]
    return [json.dumps(r, ensure_ascii=False, indent=1) for r in records]
