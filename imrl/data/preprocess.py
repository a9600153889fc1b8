"""Preprocessing: interactions table -> per-user chronological split.

Pure functions over the interactions table (columns user, item, rating, timestamp; see
``imrl.data.interactions``), vectorised so that they run on tens of millions of rows.
``build_split`` chains them in this order, as PROTOCOL.md states:

1. ``binarise``: keep the positives (rating >= ``min_rating``). The rating column keeps
   its original value (an environment may still use it as a graded reward); every row
   that remains counts as one positive interaction.
2. ``kcore``: repeatedly drop users and items with fewer than ``kcore`` rows.
3. ``chronological_split``: order each user's rows (``chronological_order``), drop users
   with fewer than ``min_interactions`` rows, and cut each user's sequence into train,
   then valid, then test.
4. ``reindex``: contiguous user and item ids over what remains, side information
   following the new ids.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from imrl.data.interactions import NO_TIMESTAMP, Interactions
from imrl.data.split import PARTS, Split

DEFAULT_CONFIG: dict[str, Any] = {
    "min_rating": None,     # binarisation threshold; None or 0 keeps every row
    "kcore": 0,             # k of the k-core filter; 0 or 1 = no filter
    "valid_frac": 0.1,      # share of each user's sequence for validation (before test)
    "test_frac": 0.1,       # share of each user's sequence for test (the end)
    "min_interactions": 3,  # users with fewer rows are dropped (3 = one per part)
}


def take(table: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The rows at positions `rows`, column dtypes kept, index reset."""
    return pd.DataFrame({col: table[col].to_numpy()[rows] for col in table.columns})


def binarise(table: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """Rows with rating >= threshold, in their original order; None or 0 keeps all.
    Ratings are left as they are: every kept row is a positive."""
    if not threshold:
        return take(table, np.arange(len(table)))
    return take(table, np.flatnonzero(table["rating"].to_numpy() >= threshold))


def kcore(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """The k-core: drop users and items with fewer than k rows, again and again until
    every remaining user and item has at least k. Rows are counted as they are
    (a repeated user-item pair counts twice). k <= 1 is a no-op. Row order is kept."""
    rows = np.arange(len(table))
    if k <= 1:
        return take(table, rows)
    users, items = table["user"].to_numpy(), table["item"].to_numpy()
    while len(rows):
        u, i = users[rows], items[rows]
        keep = (np.bincount(u)[u] >= k) & (np.bincount(i)[i] >= k)
        if keep.all():
            break
        rows = rows[keep]
    return take(table, rows)


def chronological_order(table: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by user (ascending id), each user's rows in interaction order.

    The order within a user is by timestamp, ties broken by file position (the row's
    position in `table`). A row without timestamp (-1) takes the timestamp of the
    user's previous row in file order that has one, so it stays right after that row;
    when no earlier row of the user has one it goes first. A user with no timestamps
    at all keeps file order.
    """
    return take(table, chronological_rows(table))


def chronological_rows(table: pd.DataFrame) -> np.ndarray:
    """The row positions of ``chronological_order``."""
    users, stamps = table["user"].to_numpy(), table["timestamp"].to_numpy()
    if not len(users):
        return np.arange(0)
    if (stamps == NO_TIMESTAMP).any():
        stamps = fill_missing_timestamps(users, stamps)
    # One stable sort on a (user, timestamp) key when it fits in int64 (file position
    # breaks ties through stability); a three-key lexsort otherwise.
    low, span = int(stamps.min()), int(stamps.max()) - int(stamps.min()) + 1
    if (int(users.max()) + 1) * span < 2**63:
        return np.argsort(users.astype(np.int64) * span + (stamps - low), kind="stable")
    return np.lexsort((np.arange(len(users)), stamps, users))


def fill_missing_timestamps(users: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Each missing timestamp replaced by the one of the same user's previous row in
    file order that has one (left missing when there is none)."""
    by_user = np.argsort(users, kind="stable")  # file order within each user
    grouped_users, grouped_stamps = users[by_user], stamps[by_user]
    positions = np.arange(len(users))
    user_start = np.flatnonzero(np.r_[True, grouped_users[1:] != grouped_users[:-1]])
    start_of_row = np.repeat(user_start, np.diff(np.r_[user_start, len(users)]))
    last_known = np.maximum.accumulate(np.where(grouped_stamps != NO_TIMESTAMP, positions, -1))
    filled = np.empty_like(stamps)
    filled[by_user] = np.where(last_known >= start_of_row, grouped_stamps[np.maximum(last_known, 0)], NO_TIMESTAMP)
    return filled


class SplitParts(NamedTuple):
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    users_dropped: int  # users with fewer than min_interactions rows


def part_sizes(counts: np.ndarray, valid_frac: float, test_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """(n_valid, n_test) per user of `counts` (each >= 3): each fraction of the count,
    rounded half up, at least 1; test is capped to leave one valid and one train row,
    then valid to leave one train row."""
    n_test = np.maximum(1, np.floor(test_frac * counts + 0.5).astype(np.int64))
    n_valid = np.maximum(1, np.floor(valid_frac * counts + 0.5).astype(np.int64))
    n_test = np.minimum(n_test, counts - 2)
    n_valid = np.minimum(n_valid, counts - 1 - n_test)
    return n_valid, n_test


def chronological_split(table: pd.DataFrame, valid_frac: float = 0.1, test_frac: float = 0.1,
                        min_interactions: int = 3) -> SplitParts:
    """Per user, in chronological order: the last part (test_frac of the user's rows,
    see ``part_sizes``) to test, the part before it (valid_frac) to valid, the rest to
    train. Users with fewer than min_interactions rows are dropped. Each part comes
    sorted by user, then chronologically. Ids are left as they are."""
    check_fractions(valid_frac, test_frac, min_interactions)
    ordered_rows = chronological_rows(table)
    users = table["user"].to_numpy()[ordered_rows]
    counts = np.bincount(users) if len(users) else np.zeros(0, dtype=np.int64)
    n_valid, n_test = part_sizes(counts, valid_frac, test_frac)
    first_row = np.cumsum(counts) - counts
    rank = np.arange(len(users)) - first_row[users]          # position within the user
    from_end = counts[users] - rank                          # 1 = the user's last row
    kept = counts[users] >= min_interactions
    is_test = from_end <= n_test[users]
    is_valid = ~is_test & (from_end <= n_test[users] + n_valid[users])
    parts = [take(table, ordered_rows[kept & mask]) for mask in (~is_test & ~is_valid, is_valid, is_test)]
    users_dropped = int(((counts > 0) & (counts < min_interactions)).sum())
    return SplitParts(*parts, users_dropped=users_dropped)


def reindex(data: Interactions) -> Interactions:
    """Contiguous ids over the users and items present in ``data.table``, in the order
    of their old ids; raw ids, user_features rows and item_categories entries follow.
    Rows keep their order. Without raw ids, the old contiguous ids become the raw ids."""
    users, items = data.table["user"].to_numpy(), data.table["item"].to_numpy()
    kept_users, new_users = np.unique(users, return_inverse=True)
    kept_items, new_items = np.unique(items, return_inverse=True)
    table = data.table.copy()
    table["user"] = new_users.astype(np.int32)
    table["item"] = new_items.astype(np.int32)

    def follow(values: np.ndarray | None, kept: np.ndarray) -> np.ndarray:
        return kept.astype(str) if values is None else np.asarray(values)[kept]

    return replace(
        data, table=table, n_users=len(kept_users), n_items=len(kept_items),
        user_ids=follow(data.user_ids, kept_users), item_ids=follow(data.item_ids, kept_items),
        user_features=None if data.user_features is None else data.user_features[kept_users],
        item_categories=None if data.item_categories is None else data.item_categories[kept_items])


def resolve_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """DEFAULT_CONFIG overridden by `cfg`; ValueError naming the key for anything invalid."""
    unknown = sorted(set(cfg) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"preprocess config: unknown key(s) {unknown}; expected keys from {sorted(DEFAULT_CONFIG)}")
    resolved = {**DEFAULT_CONFIG, **cfg}
    threshold = resolved["min_rating"]
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not threshold >= 0):
        raise ValueError(f"preprocess config: 'min_rating' = {threshold!r}, expected null or a number >= 0")
    for key, lowest in (("kcore", 0), ("min_interactions", 3)):
        value = resolved[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise ValueError(f"preprocess config: {key!r} = {value!r}, expected an integer >= {lowest}")
    for key in ("valid_frac", "test_frac"):
        if isinstance(resolved[key], bool) or not isinstance(resolved[key], (int, float)):
            raise ValueError(f"preprocess config: {key!r} = {resolved[key]!r}, expected a number in (0, 1)")
    check_fractions(resolved["valid_frac"], resolved["test_frac"], resolved["min_interactions"])
    return resolved


def check_fractions(valid_frac: float, test_frac: float, min_interactions: int) -> None:
    for key, value in (("valid_frac", valid_frac), ("test_frac", test_frac)):
        if not 0 < value < 1:
            raise ValueError(f"preprocess config: {key!r} = {value!r}, expected a number in (0, 1)")
    if valid_frac + test_frac >= 1:
        raise ValueError(f"preprocess config: 'valid_frac' + 'test_frac' = {valid_frac + test_frac}, expected < 1")
    if min_interactions < 3:
        raise ValueError(f"preprocess config: 'min_interactions' = {min_interactions!r}, "
                         "expected >= 3 (one row each for train, valid and test)")


def table_counts(table: pd.DataFrame) -> dict[str, int]:
    return {"users": int(table["user"].nunique()), "items": int(table["item"].nunique()),
            "interactions": len(table)}


def build_split(data: Interactions, cfg: dict[str, Any], name: str) -> Split:
    """binarise -> k-core -> chronological split -> reindex (module docstring). The
    Split's config holds the resolved cfg and what each step dropped."""
    cfg = resolve_config(cfg)
    steps: dict[str, dict[str, int]] = {}

    def record(step: str, before: pd.DataFrame, after: pd.DataFrame) -> None:
        b, a = table_counts(before), table_counts(after)
        steps[step] = {f"{key}_dropped": b[key] - a[key] for key in b}

    positives = binarise(data.table, cfg["min_rating"])
    record("binarise", data.table, positives)
    core = kcore(positives, cfg["kcore"])
    record("kcore", positives, core)
    parts = chronological_split(core, cfg["valid_frac"], cfg["test_frac"], cfg["min_interactions"])
    kept = pd.concat(parts[:3], ignore_index=True)
    record("min_interactions", core, kept)

    # Reindex the three parts together (rows keep their order), then cut them apart again.
    combined = reindex(replace(data, table=kept))
    bounds = np.cumsum([0, *(len(part) for part in parts[:3])])
    split_parts = {part: take(combined.table, np.arange(bounds[j], bounds[j + 1])) for j, part in enumerate(PARTS)}
    config = {"preprocess": cfg, "source": data.source, "input": table_counts(data.table), "dropped": steps}
    split = Split(name=name, n_users=combined.n_users, n_items=combined.n_items, **split_parts,
                  user_features=combined.user_features, item_categories=combined.item_categories,
                  side_info=dict(data.side_info), config=config)
    split.validate(name)
    return split


def statistics(data: Interactions | Split) -> dict[str, Any]:
    """Users, items, interactions and density (interactions / (users * items)); for a
    Split also the interactions of each part. Users and items are the declared counts."""
    if isinstance(data, Split):
        per_part = {part: len(data.part(part)) for part in PARTS}
        n = sum(per_part.values())
    else:
        per_part, n = None, len(data.table)
    stats: dict[str, Any] = {"users": data.n_users, "items": data.n_items, "interactions": n,
                             "density": n / max(1, data.n_users * data.n_items)}
    if per_part is not None:
        stats["interactions_per_part"] = per_part
    return stats
