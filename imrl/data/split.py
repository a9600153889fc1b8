"""A preprocessed, per-user chronological split: what every method and the evaluator
consume.

On disk, under ``data/processed/<dataset>/split/``: ``train.parquet``,
``valid.parquet``, ``test.parquet`` (the interactions columns, rows sorted by user and
then chronologically, so row order within a user IS the interaction order),
optional ``user_features.npy`` / ``item_categories.npy``, and ``meta.json`` (written
last; counts, the preprocessing config, side-information labels, content hashes).
Ids are contiguous after filtering: users 0..n_users-1, items 0..n_items-1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imrl.data.interactions import check_table, content_hash, load_side_info, read_parquet, save_side_info, write_parquet
from imrl.io import atomic_write_json

PARTS = ("train", "valid", "test")
PHASES = ("valid", "test")


@dataclass
class Split:
    name: str
    n_users: int
    n_items: int
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    user_features: np.ndarray | None = None    # float32 [n_users, d]
    item_categories: np.ndarray | None = None  # int32 [n_items], -1 unknown
    side_info: dict[str, str] = field(default_factory=dict)  # e.g. {"item_categories": "movies.csv genres"}
    config: dict[str, Any] = field(default_factory=dict)     # the preprocessing config that made it

    def part(self, name: str) -> pd.DataFrame:
        if name not in PARTS:
            raise KeyError(f"unknown split part {name!r}; expected one of {PARTS}")
        return getattr(self, name)

    def csr(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(indptr [n_users+1], items) of one part, items in interaction order. Built when
        first asked for, part by part: nothing reads the test part before it is needed."""
        if name not in self._csr:
            table = self.part(name)
            counts = np.bincount(table["user"].to_numpy(), minlength=self.n_users)
            indptr = np.zeros(self.n_users + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            self._csr[name] = (indptr, table["item"].to_numpy().astype(np.int64))
        return self._csr[name]

    def history(self, phase: str) -> tuple[np.ndarray, np.ndarray]:
        """What each user has consumed before `phase` ("valid": train; "test": train then
        valid), as CSR in interaction order. Methods condition on it; the evaluator
        excludes it from the ranking."""
        if phase not in PHASES:
            raise KeyError(f"unknown phase {phase!r}; expected one of {PHASES}")
        return self._history[phase]

    @cached_property
    def _csr(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {}

    @cached_property
    def _history(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        (tr_ptr, tr_items), (va_ptr, va_items) = self.csr("train"), self.csr("valid")
        user_ids = np.arange(self.n_users)
        # Per user: the train block, then the valid block (a stable sort keeps both orders).
        owners = np.concatenate([np.repeat(user_ids, np.diff(tr_ptr)), np.repeat(user_ids, np.diff(va_ptr))])
        order = np.argsort(owners, kind="stable")
        ptr = tr_ptr + va_ptr
        merged_items = np.concatenate([tr_items, va_items])[order]
        return {"valid": (tr_ptr, tr_items), "test": (ptr, merged_items)}

    def validate(self, where: str) -> None:
        for name in PARTS:
            check_table(self.part(name), self.n_users, self.n_items, f"{where}/{name}.parquet")
            users = self.part(name)["user"].to_numpy()
            if len(users) and np.any(np.diff(users) < 0):
                raise ValueError(f"{where}/{name}.parquet: rows are not sorted by user")

    def meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_interactions": {name: len(self.part(name)) for name in PARTS},
            "side_info": dict(self.side_info),
            "config": self.config,
            "content_sha256": {name: content_hash(self.part(name)) for name in PARTS},
        }


def save_split(split: Split, directory: str | Path) -> dict[str, Any]:
    """Write atomically file by file; meta.json last marks the split complete."""
    directory = Path(directory)
    split.validate(str(directory))
    for name in PARTS:
        write_parquet(directory / f"{name}.parquet", split.part(name))
    save_side_info(directory, split.user_features, split.item_categories)
    meta = split.meta()
    atomic_write_json(directory / "meta.json", meta)
    return meta


def load_split(directory: str | Path) -> Split:
    directory = Path(directory)
    meta_path = directory / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path}: not found (the split was not built, or building it did not finish)")
    meta = json.loads(meta_path.read_text())
    parts = {name: read_parquet(directory / f"{name}.parquet") for name in PARTS}
    optional = load_side_info(directory)
    split = Split(name=meta["name"], n_users=meta["n_users"], n_items=meta["n_items"],
                  side_info=meta.get("side_info", {}), config=meta.get("config", {}), **parts, **optional)
    split.validate(str(directory))
    return split
