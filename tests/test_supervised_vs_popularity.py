"""Each supervised sequential baseline beats Popularity on the synthetic dataset (test
recall@20, every one of three seeds), with budgets small enough for a few seconds each."""

import functools

import pytest

from imrl import registry
from imrl.api import RunContext
from imrl.eval.ranking import evaluate
from tests.conftest import small_split

TINY_BUDGET = {"epochs": 6, "patience": 2, "lr": 0.01, "d": 32, "max_len": 15}
PARAMS = {
    "sasrec": {"windows_per_user": "all", "batch_size": 64},
    "stamp": {"batch_size": 128},
    "casr": {"batch_size": 128, "delta_steps": 3},
    "causerec": {"batch_size": 128, "attention_hidden": 32, "mlp_hidden": 64, "n_interests": 4},
    "cocorec": {"batch_size": 32, "memory_users": 128},
}
SEEDS = (0, 1, 2)


@functools.cache
def split_and_popularity(seed):
    split = small_split(seed)
    return split, heldout_recall("popularity", {}, split, seed)


def heldout_recall(name, params, split, seed):
    method = registry.method(name).load()(params, RunContext(seed=seed, log=lambda line: None))
    method.fit(split)
    result = evaluate(lambda users: method.score(users, "test"), split, "test", [20])
    return result.as_dict()["recall@20"]


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_beats_popularity_on_every_seed(name):
    for seed in SEEDS:
        split, popularity = split_and_popularity(seed)
        recall = heldout_recall(name, {**TINY_BUDGET, **PARAMS[name]}, split, seed)
        assert recall > 1.5 * popularity, f"{name} seed {seed}: recall@20 {recall:.4f} vs popularity {popularity:.4f}"
