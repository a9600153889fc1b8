"""The synthetic dataset: determinism, format, and the structure it promises
(power-law popularity, drifting interests, ratings tied to interest, sequential habits)."""

import numpy as np
import pytest

from imrl.data import synthetic
from imrl.data.interactions import content_hash

SMALL = {"n_users": 400, "n_items": 500, "n_clusters": 10, "min_length": 20, "max_length": 40}


def cluster_histograms(data, rows):
    """Per-user normalised histograms of item clusters over the selected rows."""
    users = data.table["user"].to_numpy()[rows]
    clusters = data.item_categories[data.table["item"].to_numpy()[rows]]
    hist = np.zeros((data.n_users, int(data.item_categories.max()) + 1))
    np.add.at(hist, (users, clusters), 1)
    return hist / np.maximum(hist.sum(axis=1, keepdims=True), 1)


def position_in_user(users):
    counts = np.bincount(users)
    return np.arange(len(users)) - (np.cumsum(counts) - counts)[users], counts[users]


def test_same_seed_same_bytes_other_seed_differs():
    a, b, c = synthetic.generate(SMALL, 7), synthetic.generate(SMALL, 7), synthetic.generate(SMALL, 8)
    assert content_hash(a.table) == content_hash(b.table)
    assert np.array_equal(a.user_features, b.user_features)
    assert np.array_equal(a.item_categories, b.item_categories)
    assert content_hash(a.table) != content_hash(c.table)


def test_format_sizes_and_dtypes():
    data = synthetic.generate(SMALL, 0)
    data.validate("test")
    table = data.table
    assert (data.n_users, data.n_items) == (400, 500)
    assert [str(table[c].dtype) for c in ("user", "item", "rating", "timestamp")] == ["int32", "int32", "float32", "int64"]
    lengths = np.bincount(table["user"].to_numpy(), minlength=data.n_users)
    assert lengths.min() >= 20 and lengths.max() <= 40
    assert set(np.unique(table["rating"])) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert not table.duplicated(["user", "item"]).any(), "a user never consumes an item twice"
    # Rows grouped by user, timestamps non-decreasing within a user, some ties, plausible dates.
    users, stamps = table["user"].to_numpy(), table["timestamp"].to_numpy()
    assert np.all(np.diff(users) >= 0)
    same_user = users[1:] == users[:-1]
    gaps = np.diff(stamps)[same_user]
    assert gaps.min() >= 0 and 0 < np.mean(gaps == 0) < 0.2
    assert stamps.min() >= synthetic.DEFAULTS["start_time"] and stamps.max() < 1_700_000_000
    # Side information: balanced clusters as categories, features as asked.
    assert data.item_categories.dtype == np.int32 and np.ptp(np.bincount(data.item_categories)) <= 1
    assert data.user_features.shape == (400, synthetic.DEFAULTS["user_feature_dim"])
    assert data.user_features.dtype == np.float32
    assert set(data.side_info) == {"item_categories", "user_features"}
    bare = synthetic.generate({**SMALL, "user_feature_dim": 0}, 0)
    assert bare.user_features is None and "user_features" not in bare.side_info


def test_popularity_follows_a_power_law():
    def top_decile_share(exponent):
        data = synthetic.generate({**SMALL, "popularity_exponent": exponent}, 0)
        counts = np.sort(np.bincount(data.table["item"], minlength=data.n_items))[::-1]
        return counts[: data.n_items // 10].sum() / counts.sum()

    skewed, flat = top_decile_share(1.0), top_decile_share(0.0)
    assert skewed > 0.25 and skewed > 1.5 * flat


def test_interests_drift_over_time():
    """Early and late positives of a user fall in more different clusters with drift."""
    def early_late_distance(drift_std):
        data = synthetic.generate({**SMALL, "n_users": 1000, "drift_std": drift_std}, 0)
        positive = np.flatnonzero(data.table["rating"].to_numpy() >= 4)
        rank, count = position_in_user(data.table["user"].to_numpy()[positive])
        early = cluster_histograms(data, positive[rank < count // 3])
        late = cluster_histograms(data, positive[rank >= count - count // 3])
        return 0.5 * np.abs(early - late).sum(axis=1).mean()

    assert early_late_distance(0.5) > early_late_distance(0.0) + 0.05


def test_ratings_follow_interest():
    """Positives (>= 4) fall in the user's main cluster far more often than negatives."""
    data = synthetic.generate(SMALL, 0)
    everything = np.arange(len(data.table))
    main_cluster = cluster_histograms(data, everything).argmax(axis=1)
    users, items = data.table["user"].to_numpy(), data.table["item"].to_numpy()
    in_main = data.item_categories[items] == main_cluster[users]
    ratings = data.table["rating"].to_numpy()
    assert 0.3 < np.mean(ratings >= 4) < 0.8
    assert in_main[ratings >= 4].mean() > 3 * in_main[ratings <= 2].mean()


def test_consecutive_items_share_clusters():
    """The successor structure keeps consecutive picks in one cluster far above chance."""
    def same_cluster_share(params):
        data = synthetic.generate(params, 0)
        users = data.table["user"].to_numpy()
        clusters = data.item_categories[data.table["item"].to_numpy()]
        return (clusters[1:] == clusters[:-1])[users[1:] == users[:-1]].mean()

    with_habits = same_cluster_share(SMALL)
    assert with_habits > 4 / SMALL["n_clusters"]
    assert with_habits > 1.5 * same_cluster_share({**SMALL, "p_transition": 0.0})


@pytest.mark.parametrize("params, key", [
    ({"n_user": 10}, "n_user"),
    ({"n_users": 0}, "n_users"),
    ({"n_users": 10.5}, "n_users"),
    ({"p_transition": 1.5}, "p_transition"),
    ({"p_transition": 0.8, "p_interest": 0.3}, "p_interest"),
    ({"max_length": 1500}, "max_length"),
    ({"n_items": 50}, "n_items"),
    ({"drift_std": -1.0}, "drift_std"),
    ({"rating_mean": "high"}, "rating_mean"),
    ({"user_feature_dim": True}, "user_feature_dim"),
])
def test_bad_params_name_the_key(params, key):
    with pytest.raises(ValueError, match=repr(key)):
        synthetic.generate(params, 0)
