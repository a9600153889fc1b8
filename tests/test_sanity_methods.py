"""The sanity methods on the synthetic dataset: the data carries sequential signal (a
first-order Markov model beats popularity), and popularity beats random."""

from __future__ import annotations

import pytest
import torch

from imrl import api, registry
from imrl.eval.ranking import evaluate
from tests.conftest import small_split


def _recall(split, name: str, seed: int = 0) -> float:
    method = registry.method(name).load()({}, api.RunContext(seed=seed))
    method.fit(split)
    result = evaluate(lambda users: method.score(users, "test"), split, "test", ks=(20,))
    return result.as_dict()["recall@20"]


@pytest.mark.parametrize("data_seed", [0, 1, 2])
def test_markov_beats_popularity_beats_random(data_seed):
    split = small_split(data_seed)
    markov, popularity, random = (_recall(split, name) for name in ("markov", "popularity", "random"))
    assert markov > 1.3 * popularity, (markov, popularity)
    assert popularity > 1.5 * random, (popularity, random)


def test_markov_scores_follow_the_last_item(split_small):
    method = registry.method("markov").load()({}, api.RunContext(seed=0))
    method.fit(split_small)
    users = torch.arange(5)
    scores = method.score(users, "test")
    assert scores.shape == (5, split_small.n_items)
    indptr, items = split_small.history("test")
    for user in range(5):
        last = items[indptr[user + 1] - 1]
        expected = method.transitions[last].toarray().ravel()
        top = scores[user].argmax().item()
        assert expected[top] == expected.max()
