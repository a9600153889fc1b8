"""The embedded default dataset: synthetic users whose drifting interests, item
popularity and item-to-item habits generate a time-ordered interaction log.

Generative process (all draws from one ``numpy.random.Generator`` seeded by ``seed``):

1. Items. The ``n_items`` items are dealt at random into ``n_clusters`` clusters of
   equal size (+-1; the clusters are the dataset's ``item_categories``). Popularity follows a
   power law: the items, in a random order, get weights ``rank ** -popularity_exponent``.
   Each item gets ``n_successors`` distinct likely successors drawn uniformly from its
   own cluster, weighted ``1, 1/2, 1/3, ...`` (the first-order transition structure).
2. Users. Each of ``n_users`` users has interest logits ``z`` over the clusters,
   initially ``interest_scale * N(0, 1)``, and a sequence length drawn uniformly from
   ``[min_length, max_length]``. Interests drift: after every interaction
   ``z += drift_std * N(0, 1)`` (a random walk, so late interests differ from early).
3. Picks. At each step a user picks one item not consumed before, from a mixture:
   with probability ``p_transition`` a successor of the previous item; with
   probability ``p_interest`` a cluster from ``softmax(z)`` and then an item of that
   cluster by popularity; otherwise an item by global popularity. A pick already
   consumed is redrawn (component included); after a few failed rounds the pick is
   uniform over unconsumed items. On the first step the transition component falls
   back to the interest component (there is no previous item).
4. Ratings. With ``affinity = log(n_clusters * softmax(z)[cluster(item)])`` (0 for a
   user indifferent between clusters), the rating is
   ``round(rating_mean + rating_slope * affinity + rating_noise * N(0, 1))`` clipped to
   1..5, so a binarisation threshold of 4 keeps mostly on-interest picks.
5. Timestamps. Each user starts uniformly in ``[start_time, start_time + time_span)``
   (unix seconds); successive gaps are 0 with probability ``tie_prob`` (ties, as when
   several items are rated in the same second) and otherwise exponential with mean
   ``mean_gap`` seconds, rounded down. Rows are emitted per user in pick order, so the
   file order breaks timestamp ties correctly.
6. User features (when ``user_feature_dim > 0``): a noisy view of the initial
   interests, ``g @ W + feature_noise * N(0, 1)`` where ``z0 = interest_scale * g`` and
   ``W`` is a fixed ``N(0, 1/n_clusters)`` projection to ``user_feature_dim`` columns.

Parameters and defaults (``DEFAULTS``):

- ``n_users`` (3000), ``n_items`` (2000), ``n_clusters`` (20): sizes.
- ``min_length`` (30), ``max_length`` (60): interactions per user (at most
  ``n_items // 2``).
- ``popularity_exponent`` (1.0): power-law exponent of item popularity (>= 0).
- ``n_successors`` (3): likely successors per item (each cluster needs more items).
- ``p_transition`` (0.5), ``p_interest`` (0.3): mixture weights; the rest is popularity.
- ``interest_scale`` (2.0): spread of the initial interest logits (> 0).
- ``drift_std`` (0.25): per-step standard deviation of the interest random walk.
- ``rating_mean`` (3.5), ``rating_slope`` (0.6), ``rating_noise`` (0.8): rating model.
- ``user_feature_dim`` (8; 0 = no user features), ``feature_noise`` (0.5).
- ``start_time`` (1420070400 = 2015-01-01), ``time_span`` (4 years in seconds),
  ``mean_gap`` (86400 seconds), ``tie_prob`` (0.05): timestamps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from imrl.data.interactions import Interactions

DEFAULTS: dict[str, Any] = {
    "n_users": 3000,
    "n_items": 2000,
    "n_clusters": 20,
    "min_length": 30,
    "max_length": 60,
    "popularity_exponent": 1.0,
    "n_successors": 3,
    "p_transition": 0.5,
    "p_interest": 0.3,
    "interest_scale": 2.0,
    "drift_std": 0.25,
    "rating_mean": 3.5,
    "rating_slope": 0.6,
    "rating_noise": 0.8,
    "user_feature_dim": 8,
    "feature_noise": 0.5,
    "start_time": 1_420_070_400,
    "time_span": 4 * 365 * 86_400,
    "mean_gap": 86_400,
    "tie_prob": 0.05,
}

INTEGER_PARAMS = {"n_users", "n_items", "n_clusters", "min_length", "max_length", "n_successors",
                  "user_feature_dim", "start_time", "time_span", "mean_gap"}
REDRAW_ROUNDS = 8  # mixture redraws before a pick falls back to uniform


def resolve_params(params: dict[str, Any]) -> dict[str, Any]:
    """DEFAULTS overridden by `params`; ValueError naming the key for anything invalid."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"synthetic: unknown parameter(s) {unknown}; expected keys from {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    for key, value in p.items():
        if key in INTEGER_PARAMS:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"synthetic: parameter {key!r} = {value!r}, expected an integer")
        elif isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value):
            raise ValueError(f"synthetic: parameter {key!r} = {value!r}, expected a finite number")

    def require(ok: bool, key: str, expected: str) -> None:
        if not ok:
            raise ValueError(f"synthetic: parameter {key!r} = {p[key]!r}, expected {expected}")

    for key in ("n_users", "n_clusters", "min_length", "n_successors", "mean_gap"):
        require(p[key] >= 1, key, "an integer >= 1")
    require(p["n_items"] >= p["n_clusters"] * (p["n_successors"] + 1), "n_items",
            f"at least n_clusters * (n_successors + 1) = {p['n_clusters'] * (p['n_successors'] + 1)} "
            "(each cluster needs room for distinct successors)")
    require(p["min_length"] <= p["max_length"] <= p["n_items"] // 2, "max_length",
            f"between min_length={p['min_length']} and n_items // 2 = {p['n_items'] // 2}")
    for key in ("p_transition", "p_interest", "tie_prob"):
        require(0 <= p[key] <= 1, key, "a probability in [0, 1]")
    require(p["p_transition"] + p["p_interest"] <= 1, "p_interest", f"at most 1 - p_transition = {1 - p['p_transition']}")
    require(p["interest_scale"] > 0, "interest_scale", "a number > 0")
    for key in ("popularity_exponent", "drift_std", "rating_noise", "feature_noise", "user_feature_dim",
                "start_time", "time_span"):
        require(p[key] >= 0, key, "a number >= 0")
    return p


def generate(params: dict[str, Any], seed: int) -> Interactions:
    """A synthetic dataset in the interactions format (module docstring: the process)."""
    p = resolve_params(params)
    rng = np.random.default_rng(seed)
    n_users, n_items, n_clusters = p["n_users"], p["n_items"], p["n_clusters"]

    # 1. Items: clusters, power-law popularity, successors.
    cluster = rng.permutation(np.arange(n_items) % n_clusters)
    popularity = np.empty(n_items)
    popularity[rng.permutation(n_items)] = np.arange(1, n_items + 1, dtype=float) ** -p["popularity_exponent"]
    popularity_cdf = np.cumsum(popularity) / popularity.sum()
    cluster_cdf, cluster_order = within_cluster_cdf(cluster, popularity, n_clusters)
    cluster_last = np.cumsum(np.bincount(cluster, minlength=n_clusters)) - 1  # in cluster_order
    successors = draw_successors(rng, cluster, n_clusters, p["n_successors"])
    successor_cdf = np.cumsum(1.0 / np.arange(1, p["n_successors"] + 1))
    successor_cdf /= successor_cdf[-1]

    # 2. Users: initial interests, lengths.
    initial = rng.standard_normal((n_users, n_clusters))
    logits = p["interest_scale"] * initial
    lengths = rng.integers(p["min_length"], p["max_length"] + 1, size=n_users)
    max_length = int(lengths.max())

    # 3-4. Picks and ratings, one step for all users at a time.
    history = np.empty((n_users, max_length), dtype=np.int64)
    ratings = np.empty((n_users, max_length), dtype=np.float32)
    all_users = np.arange(n_users)
    for step in range(max_length):
        interests = softmax(logits)
        picks = np.empty(n_users, dtype=np.int64)
        pending = all_users
        for _ in range(REDRAW_ROUNDS):
            draw = rng.random(len(pending))
            use_transition = draw < p["p_transition"] if step else np.zeros(len(pending), dtype=bool)
            use_interest = ~use_transition & (draw < p["p_transition"] + p["p_interest"])
            use_popularity = ~use_transition & ~use_interest
            candidates = np.empty(len(pending), dtype=np.int64)
            previous = history[pending[use_transition], step - 1]
            rank = np.searchsorted(successor_cdf, rng.random(len(previous)), side="right")
            candidates[use_transition] = successors[previous, rank]
            chosen_cluster = sample_rows(rng, interests[pending[use_interest]])
            position = np.searchsorted(cluster_cdf, chosen_cluster + rng.random(len(chosen_cluster)), side="right")
            candidates[use_interest] = cluster_order[np.minimum(position, cluster_last[chosen_cluster])]
            candidates[use_popularity] = np.minimum(
                np.searchsorted(popularity_cdf, rng.random(int(use_popularity.sum())), side="right"), n_items - 1)
            pending = accept(history, step, pending, candidates, picks)
            if not len(pending):
                break
        while len(pending):  # uniform fallback; max_length <= n_items // 2 keeps it short
            pending = accept(history, step, pending, rng.integers(0, n_items, size=len(pending)), picks)
        history[:, step] = picks
        affinity = np.log(n_clusters * interests[all_users, cluster[picks]])
        latent = p["rating_mean"] + p["rating_slope"] * affinity + p["rating_noise"] * rng.standard_normal(n_users)
        ratings[:, step] = np.clip(np.rint(latent), 1, 5)
        logits += p["drift_std"] * rng.standard_normal((n_users, n_clusters))

    # 5. Timestamps: per-user start plus gaps (0 with probability tie_prob).
    gaps = np.floor(rng.exponential(p["mean_gap"], size=(n_users, max_length))).astype(np.int64)
    gaps[rng.random((n_users, max_length)) < p["tie_prob"]] = 0
    gaps[:, 0] = rng.integers(p["start_time"], p["start_time"] + max(1, p["time_span"]), size=n_users)
    timestamps = np.cumsum(gaps, axis=1)

    observed = np.arange(max_length) < lengths[:, None]
    table = pd.DataFrame({
        "user": np.repeat(all_users, lengths).astype(np.int32),
        "item": history[observed].astype(np.int32),
        "rating": ratings[observed],
        "timestamp": timestamps[observed],
    })

    side_info = {"item_categories": "synthetic generator's item clusters"}
    user_features = None
    if p["user_feature_dim"]:
        # 6. Noisy linear view of the initial interests.
        projection = rng.standard_normal((n_clusters, p["user_feature_dim"])) / np.sqrt(n_clusters)
        noise = p["feature_noise"] * rng.standard_normal((n_users, p["user_feature_dim"]))
        user_features = (initial @ projection + noise).astype(np.float32)
        side_info["user_features"] = "synthetic: noisy projection of each user's initial cluster interests"
    data = Interactions(table=table, n_users=n_users, n_items=n_items, source=f"synthetic(seed={seed})",
                        user_features=user_features, item_categories=cluster.astype(np.int32), side_info=side_info)
    data.validate("synthetic")
    return data


def within_cluster_cdf(cluster: np.ndarray, popularity: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Items sorted by cluster, and a CDF that runs from c to c+1 over cluster c by
    popularity, so that searchsorted(cdf, c + u) samples an item of cluster c."""
    order = np.argsort(cluster, kind="stable")
    sorted_cluster, weight = cluster[order], popularity[order]
    totals = np.bincount(sorted_cluster, weights=weight, minlength=n_clusters)
    before = np.concatenate([[0.0], np.cumsum(totals)[:-1]])
    return sorted_cluster + (np.cumsum(weight) - before[sorted_cluster]) / totals[sorted_cluster], order


def draw_successors(rng: np.random.Generator, cluster: np.ndarray, n_clusters: int, k: int) -> np.ndarray:
    """[n_items, k] distinct items of the same cluster, never the item itself: the item's
    position in its cluster plus k distinct non-zero offsets, modulo the cluster size."""
    successors = np.empty((len(cluster), k), dtype=np.int64)
    for c in range(n_clusters):
        members = np.flatnonzero(cluster == c)
        size = len(members)  # > k, guaranteed by resolve_params
        offsets = rng.integers(1, size, size=(size, k))
        while True:  # redraw the rows that repeat an offset
            repeated = np.flatnonzero((np.diff(np.sort(offsets, axis=1), axis=1) == 0).any(axis=1))
            if not len(repeated):
                break
            offsets[repeated] = rng.integers(1, size, size=(len(repeated), k))
        successors[members] = members[(np.arange(size)[:, None] + offsets) % size]
    return successors


def accept(history: np.ndarray, step: int, pending: np.ndarray, candidates: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Store candidates not consumed before `step`; return the users still pending."""
    seen = (history[pending, :step] == candidates[:, None]).any(axis=1)
    picks[pending[~seen]] = candidates[~seen]
    return pending[seen]


def sample_rows(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One categorical draw per row of `probabilities`."""
    cumulative = np.cumsum(probabilities, axis=1)
    draw = rng.random(len(probabilities))[:, None] * cumulative[:, -1:]
    return np.minimum((cumulative <= draw).sum(axis=1), probabilities.shape[1] - 1)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
