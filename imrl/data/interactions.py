"""The interactions format: one table per dataset, the hand-off from every reader.

On disk, under ``data/processed/<dataset>/``:

- ``interactions.parquet``: columns ``user`` (int32, contiguous 0..n_users-1),
  ``item`` (int32, contiguous 0..n_items-1), ``rating`` (float32; 1.0 for implicit
  feedback), ``timestamp`` (int64 unix seconds; -1 where the source has none). Row order
  is the source's file order, which is the last tie-breaker of the chronological split.
- ``user_map.parquet`` / ``item_map.parquet``: ``id`` (int32) -> ``raw_id`` (string).
- ``meta.json``: counts, density, source, side information present, content hash.
- optional side information: ``user_features.npy`` (float32 [n_users, d]) and
  ``item_categories.npy`` (int32 [n_items], -1 = unknown).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from imrl.io import atomic_path, atomic_write_json

COLUMNS = {"user": np.int32, "item": np.int32, "rating": np.float32, "timestamp": np.int64}
NO_TIMESTAMP = -1


class FormatError(ValueError):
    """A table or file does not follow the documented format; the message names it."""


@dataclass
class Interactions:
    """A dataset in the common format, in memory."""

    table: pd.DataFrame
    n_users: int
    n_items: int
    source: str
    user_ids: np.ndarray | None = None  # raw ids as strings, index = contiguous id
    item_ids: np.ndarray | None = None
    user_features: np.ndarray | None = None
    item_categories: np.ndarray | None = None
    side_info: dict[str, str] = field(default_factory=dict)  # name -> where it came from

    def validate(self, where: str = "interactions") -> None:
        check_table(self.table, self.n_users, self.n_items, where)
        if self.user_features is not None and self.user_features.shape[0] != self.n_users:
            raise FormatError(f"{where}: user_features has {self.user_features.shape[0]} rows, expected n_users={self.n_users}")
        if self.item_categories is not None and self.item_categories.shape != (self.n_items,):
            raise FormatError(f"{where}: item_categories has shape {self.item_categories.shape}, expected ({self.n_items},)")


def check_table(table: pd.DataFrame, n_users: int, n_items: int, where: str) -> None:
    """Raise FormatError naming `where` unless `table` has the format's columns and dtypes
    and ids in range."""
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise FormatError(f"{where}: missing columns {missing}; expected {list(COLUMNS)}")
    for col, dtype in COLUMNS.items():
        if table[col].dtype != dtype:
            raise FormatError(f"{where}: column {col!r} has dtype {table[col].dtype}, expected {np.dtype(dtype)}")
    if len(table):
        for col, n in (("user", n_users), ("item", n_items)):
            lo, hi = int(table[col].min()), int(table[col].max())
            if lo < 0 or hi >= n:
                raise FormatError(f"{where}: {col} ids span [{lo}, {hi}], expected [0, {n - 1}]")


def content_hash(table: pd.DataFrame) -> str:
    """sha256 over the column bytes in order: equal tables give equal hashes."""
    digest = hashlib.sha256()
    for col in COLUMNS:
        digest.update(col.encode())
        digest.update(np.ascontiguousarray(table[col].to_numpy()).tobytes())
    return digest.hexdigest()


def write_parquet(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(pa.Table.from_pandas(table, preserve_index=False), tmp)


def read_parquet(path: Path) -> pd.DataFrame:
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: not found")
    return pq.read_table(path).to_pandas()


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


SIDE_INFO = {"user_features": np.float32, "item_categories": np.int32}


def save_side_info(directory: Path, user_features: np.ndarray | None, item_categories: np.ndarray | None) -> None:
    for name, array in (("user_features", user_features), ("item_categories", item_categories)):
        if array is not None:
            save_npy(directory / f"{name}.npy", array.astype(SIDE_INFO[name]))


def load_side_info(directory: Path) -> dict[str, np.ndarray | None]:
    """The optional side-information arrays of a dataset or split directory (None where absent)."""
    return {name: np.load(directory / f"{name}.npy") if (directory / f"{name}.npy").exists() else None
            for name in SIDE_INFO}


def metadata(data: Interactions) -> dict[str, Any]:
    n = len(data.table)
    return {
        "source": data.source,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_interactions": n,
        "density": n / max(1, data.n_users * data.n_items),
        "has_timestamps": bool(n and (data.table["timestamp"] != NO_TIMESTAMP).any()),
        "side_info": dict(data.side_info),
        "content_sha256": content_hash(data.table),
    }


def save(data: Interactions, directory: str | Path) -> dict[str, Any]:
    """Write the dataset atomically, file by file; meta.json last, so its presence
    means the rest is complete."""
    directory = Path(directory)
    data.validate(str(directory))
    write_parquet(directory / "interactions.parquet", data.table[list(COLUMNS)])
    for name, ids, n in (("user_map", data.user_ids, data.n_users), ("item_map", data.item_ids, data.n_items)):
        raw = np.arange(n).astype(str) if ids is None else np.asarray(ids).astype(str)
        write_parquet(directory / f"{name}.parquet", pd.DataFrame({"id": np.arange(n, dtype=np.int32), "raw_id": raw}))
    save_side_info(directory, data.user_features, data.item_categories)
    meta = metadata(data)
    atomic_write_json(directory / "meta.json", meta)
    return meta


def load(directory: str | Path) -> Interactions:
    directory = Path(directory)
    meta_path = directory / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path}: not found (the dataset was not converted, or conversion did not finish)")
    meta = json.loads(meta_path.read_text())
    table = read_parquet(directory / "interactions.parquet")
    optional = load_side_info(directory)
    data = Interactions(table=table, n_users=meta["n_users"], n_items=meta["n_items"], source=meta["source"],
                        side_info=meta.get("side_info", {}), **optional)
    data.validate(str(directory / "interactions.parquet"))
    return data
