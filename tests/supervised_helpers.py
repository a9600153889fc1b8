"""Hand-made splits for the supervised-baseline tests (generated, never dataset samples)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from imrl.data.split import Split


def split_from_sequences(sequences: list[list[int]], n_items: int, held_out: int = 1,
                         item_categories: np.ndarray | None = None) -> Split:
    """Each user's last `held_out` items are test, the `held_out` before them valid."""
    parts = {"train": [], "valid": [], "test": []}
    for user, items in enumerate(sequences):
        cut_valid, cut_test = len(items) - 2 * held_out, len(items) - held_out
        for part, chunk in (("train", items[:cut_valid]), ("valid", items[cut_valid:cut_test]),
                            ("test", items[cut_test:])):
            parts[part] += [(user, item) for item in chunk]

    def table(rows):
        rows = np.array(rows, dtype=np.int64).reshape(-1, 2)
        return pd.DataFrame({"user": rows[:, 0].astype(np.int32), "item": rows[:, 1].astype(np.int32),
                             "rating": np.ones(len(rows), np.float32),
                             "timestamp": np.arange(len(rows), dtype=np.int64)})

    return Split(name="handmade", n_users=len(sequences), n_items=n_items,
                 item_categories=item_categories, **{part: table(rows) for part, rows in parts.items()})


def cyclic_sequences(n_users: int, n_items: int, length: int, seed: int = 0) -> list[list[int]]:
    """Users walk a fixed cycle over the items from random starting points, so the next
    item is predictable from the last one and not from popularity."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_items, n_users)
    return [[int((start + step) % n_items) for step in range(length)] for start in starts]
