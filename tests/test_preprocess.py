"""Preprocessing on hand-computed cases: binarisation, k-core, the chronological order
and its fallback, the split's fractions and minimums, reindexing, build_split."""

import numpy as np
import pandas as pd
import pytest

from imrl.data import preprocess, synthetic
from imrl.data.interactions import Interactions
from imrl.data.split import load_split, save_split


def make_table(users, items, ratings=None, timestamps=None):
    n = len(users)
    return pd.DataFrame({
        "user": np.asarray(users, dtype=np.int32),
        "item": np.asarray(items, dtype=np.int32),
        "rating": np.asarray(ratings if ratings is not None else [1.0] * n, dtype=np.float32),
        "timestamp": np.asarray(timestamps if timestamps is not None else range(n), dtype=np.int64),
    })


def rows(table, *cols):
    return list(zip(*(table[c].tolist() for c in cols)))


def test_binarise_keeps_positives_with_their_ratings():
    table = make_table([0, 0, 1, 1, 2], [0, 1, 0, 2, 1], ratings=[5, 3.5, 4, 1, 4.5])
    kept = preprocess.binarise(table, 4)
    assert rows(kept, "user", "item", "rating") == [(0, 0, 5.0), (1, 0, 4.0), (2, 1, 4.5)]
    assert kept["rating"].dtype == np.float32 and kept.index.tolist() == [0, 1, 2]
    for keep_all in (None, 0):
        assert preprocess.binarise(table, keep_all).equals(table)
    assert len(table) == 5, "the input is left alone"


def test_kcore_iterates_until_stable():
    # k=2: user 3 has one row -> item 2 drops to one row -> user 2 drops to one row.
    table = make_table([0, 0, 1, 1, 2, 2, 3], [0, 1, 0, 1, 0, 2, 2])
    core = preprocess.kcore(table, 2)
    assert rows(core, "user", "item") == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert preprocess.kcore(table, 1).equals(table)
    assert preprocess.kcore(table, 0).equals(table)
    assert len(preprocess.kcore(table, 3)) == 0, "nothing has 3 of everything"


@pytest.mark.parametrize("scale", [1, 2**56])  # 2**56: too wide for the one-key sort, lexsort path
def test_chronological_order_fallbacks(scale):
    # File order interleaves users. User 0: ties and a missing stamp after 30.
    # User 1: a missing stamp before any known one goes first. User 2: no stamps at all.
    stamps = np.array([30, -1, -1, -1, 10, 10, 5, -1, 20, -1, 3, -1], dtype=np.int64)
    table = make_table(
        users=[0, 1, 0, 2, 0, 0, 1, 2, 0, 1, 1, 2],
        items=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        timestamps=np.where(stamps >= 0, stamps * scale, -1))
    ordered = preprocess.chronological_order(table)
    assert ordered["user"].tolist() == [0] * 5 + [1] * 4 + [2] * 3
    # user 0: stamps 30, -1(->30), 10, 10, 20 at items 0, 2, 4, 5, 8
    # user 1: -1(first), 5, -1(->5), 3 at items 1, 6, 9, 10
    assert ordered["item"].tolist() == [4, 5, 8, 0, 2, 1, 10, 6, 9, 3, 7, 11]
    assert (ordered["timestamp"] // scale).tolist()[:5] == [10, 10, 20, 30, -1], "missing stamps stay -1"


@pytest.mark.parametrize("n_rows, fracs, expected", [
    (10, (0.1, 0.1), (8, 1, 1)),
    (30, (0.1, 0.1), (24, 3, 3)),
    (15, (0.1, 0.1), (11, 2, 2)),   # 1.5 rounds half up to 2
    (4, (0.1, 0.1), (2, 1, 1)),     # 0.4 rounds to 0, raised to the minimum of 1
    (3, (0.1, 0.1), (1, 1, 1)),
    (4, (0.4, 0.4), (1, 1, 2)),     # test 1.6 -> 2, valid capped to leave one train row
    (20, (0.25, 0.05), (14, 5, 1)),
])
def test_split_fractions_and_minimums(n_rows, fracs, expected):
    stamps = np.random.default_rng(n_rows).permutation(n_rows) * 100  # file order is not time order
    table = make_table([0] * n_rows, range(n_rows), timestamps=stamps)
    train, valid, test, dropped = preprocess.chronological_split(table, *fracs)
    assert (len(train), len(valid), len(test), dropped) == (*expected, 0)
    assert np.all(np.diff(np.concatenate([p["timestamp"].to_numpy() for p in (train, valid, test)])) > 0)


def test_split_drops_short_users_and_is_per_user():
    lengths = {0: 12, 1: 2, 2: 5, 3: 1, 5: 3}
    users = np.concatenate([[u] * n for u, n in lengths.items()])
    table = make_table(users[::-1], range(len(users)), timestamps=np.arange(len(users))[::-1])
    parts = preprocess.chronological_split(table)
    assert parts.users_dropped == 2
    counts = {name: np.bincount(part["user"], minlength=6).tolist()
              for name, part in zip(("train", "valid", "test"), parts[:3])}
    assert counts == {"train": [10, 0, 3, 0, 0, 1], "valid": [1, 0, 1, 0, 0, 1], "test": [1, 0, 1, 0, 0, 1]}
    strict = preprocess.chronological_split(table, min_interactions=6)
    assert strict.users_dropped == 4 and set(strict.train["user"]) == {0}


def test_reindex_keeps_side_information_aligned():
    features = np.arange(12, dtype=np.float32).reshape(6, 2)
    categories = np.array([10, 11, 12, 13, 14], dtype=np.int32)
    data = Interactions(table=make_table([5, 2, 5], [4, 1, 3]), n_users=6, n_items=5, source="hand",
                        user_features=features, item_categories=categories)
    new = preprocess.reindex(data)
    new.validate("reindexed")
    assert (new.n_users, new.n_items) == (2, 3)
    assert rows(new.table, "user", "item") == [(1, 2), (0, 0), (1, 1)]
    assert new.user_features.tolist() == [[4.0, 5.0], [10.0, 11.0]]
    assert new.item_categories.tolist() == [11, 13, 14]
    assert new.user_ids.tolist() == ["2", "5"] and new.item_ids.tolist() == ["1", "3", "4"]
    raw = preprocess.reindex(Interactions(table=data.table, n_users=6, n_items=5, source="hand",
                                          user_ids=np.array(list("abcdef"))))
    assert raw.user_ids.tolist() == ["c", "f"]


def test_build_split_end_to_end(tmp_path):
    data = synthetic.generate({"n_users": 300, "n_items": 400, "n_clusters": 8, "min_length": 10,
                               "max_length": 30}, 3)
    cfg = {"min_rating": 4, "kcore": 3}
    split = preprocess.build_split(data, cfg, "synthetic")
    dropped = split.config["dropped"]
    positives = int((data.table["rating"] >= 4).sum())
    assert dropped["binarise"]["interactions_dropped"] == len(data.table) - positives
    total = sum(len(split.part(p)) for p in ("train", "valid", "test"))
    assert total == positives - dropped["kcore"]["interactions_dropped"] - dropped["min_interactions"]["interactions_dropped"]
    assert split.config["preprocess"] == {**preprocess.DEFAULT_CONFIG, **cfg}
    # Contiguous ids, every user in every part, parts in time order per user.
    for name in ("train", "valid", "test"):
        assert np.bincount(split.part(name)["user"], minlength=split.n_users).min() >= 1
    items = np.concatenate([split.part(p)["item"].to_numpy() for p in ("train", "valid", "test")])
    assert np.array_equal(np.unique(items), np.arange(split.n_items))
    last_train = split.train.groupby("user")["timestamp"].max()
    assert np.all(last_train <= split.valid.groupby("user")["timestamp"].min())
    assert np.all(split.valid.groupby("user")["timestamp"].max() <= split.test.groupby("user")["timestamp"].min())
    assert split.user_features.shape == (split.n_users, data.user_features.shape[1])
    assert split.item_categories.shape == (split.n_items,)
    assert split.side_info == data.side_info
    # The split survives a save/load round trip.
    save_split(split, tmp_path / "split")
    loaded = load_split(tmp_path / "split")
    assert loaded.train.equals(split.train) and loaded.config == split.config
    stats = preprocess.statistics(split)
    assert stats["interactions"] == total and stats["density"] == total / (split.n_users * split.n_items)
    assert preprocess.statistics(data)["interactions"] == len(data.table)


@pytest.mark.parametrize("cfg, key", [
    ({"min_ratings": 4}, "min_ratings"),
    ({"kcore": -1}, "kcore"),
    ({"kcore": 2.5}, "kcore"),
    ({"min_rating": "4"}, "min_rating"),
    ({"valid_frac": 0.0}, "valid_frac"),
    ({"test_frac": 1.2}, "test_frac"),
    ({"valid_frac": 0.5, "test_frac": 0.5}, "valid_frac"),
    ({"min_interactions": 2}, "min_interactions"),
])
def test_bad_config_names_the_key(cfg, key):
    data = Interactions(table=make_table([0, 0, 0], [0, 1, 2]), n_users=1, n_items=3, source="hand")
    with pytest.raises(ValueError, match=repr(key)):
        preprocess.build_split(data, cfg, "bad")
