"""The offline evaluator against hand-computed cases and a brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from imrl.data.split import Split
from imrl.eval.ranking import evaluate

LOG2_3, LOG2_5 = math.log2(3), math.log2(5)


def make_split(n_items: int, train: dict, valid: dict, test: dict, n_users: int | None = None) -> Split:
    """A split from {user: [items in order]} per part."""
    users = {u for part in (train, valid, test) for u in part}
    n_users = n_users if n_users is not None else max(users) + 1

    def table(part: dict) -> pd.DataFrame:
        pairs = [(u, i) for u in sorted(part) for i in part[u]]
        return pd.DataFrame({
            "user": np.array([u for u, _ in pairs], dtype=np.int32),
            "item": np.array([i for _, i in pairs], dtype=np.int32),
            "rating": np.ones(len(pairs), dtype=np.float32),
            "timestamp": np.arange(len(pairs), dtype=np.int64),
        })

    return Split(name="hand", n_users=n_users, n_items=n_items,
                 train=table(train), valid=table(valid), test=table(test))


def fixed_scores(matrix) -> callable:
    table = torch.as_tensor(matrix, dtype=torch.float32)
    return lambda users: table[users]          # advanced indexing: a fresh tensor


def test_hand_computed_single_user():
    # Item 0 scores highest but is in train; the ranking is then 1, 2, 3, 4, 5; relevant {2, 4}.
    split = make_split(6, train={0: [0]}, valid={0: [5]}, test={0: [2, 4]})
    result = evaluate(fixed_scores([[9, 5, 4, 3, 2, 0]]), split, "test", ks=(2, 4))
    metrics = result.as_dict()
    # Test excludes train and valid: ranking 1, 2, 3, 4; hits at ranks 2 and 4.
    expected = {
        "recall@2": 1 / 2, "precision@2": 1 / 2, "ndcg@2": (1 / LOG2_3) / (1 + 1 / LOG2_3),
        "recall@4": 1.0, "precision@4": 2 / 4, "ndcg@4": (1 / LOG2_3 + 1 / LOG2_5) / (1 + 1 / LOG2_3),
    }
    assert metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key
    assert result.n_users == 1 and result.n_users_skipped == 0


def test_hand_computed_two_users_mean_and_per_user():
    split = make_split(5, train={0: [4], 1: [0]}, valid={0: [3], 1: [1]}, test={0: [0], 1: [2, 3]})
    scores = [[5, 4, 3, 2, 1],      # user 0: ranking 0, 1, 2 -> hit at rank 1
              [5, 4, 3, 2, 1]]      # user 1: ranking 2, 3, 4 -> hits at ranks 1, 2
    result = evaluate(fixed_scores(scores), split, "test", ks=(1, 2))
    assert result.users.tolist() == [0, 1]
    np.testing.assert_allclose(result.per_user["recall@1"], [1.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(result.per_user["precision@2"], [0.5, 1.0], atol=1e-6)
    np.testing.assert_allclose(result.per_user["ndcg@2"], [1.0, 1.0], atol=1e-6)
    assert result.as_dict()["recall@1"] == pytest.approx(0.75, abs=1e-6)


def test_ties_broken_by_lower_item_id():
    # All scores equal: the ranking is by id, skipping the history item 1.
    split = make_split(8, train={0: [1]}, valid={}, test={0: [3]}, n_users=1)
    result = evaluate(fixed_scores(np.zeros((1, 8))), split, "test", ks=(2, 3))
    metrics = result.as_dict()
    assert metrics["recall@2"] == 0.0              # top 2 = items 0, 2
    assert metrics["recall@3"] == 1.0              # top 3 = items 0, 2, 3: hit at rank 3
    assert metrics["ndcg@3"] == pytest.approx(1 / 2, abs=1e-6)   # (1/log2 4) / 1


def test_tie_at_the_cut_and_inside_the_list():
    # Items 2..7 tie at 1.0 behind item 0: top 3 = 0, 2, 3 (lowest ids among the tie).
    split = make_split(8, train={0: [1]}, valid={}, test={0: [3, 7]}, n_users=1)
    scores = [[2, 5, 1, 1, 1, 1, 1, 1]]
    metrics = evaluate(fixed_scores(scores), split, "test", ks=(3,)).as_dict()
    assert metrics["recall@3"] == pytest.approx(1 / 2, abs=1e-6)
    assert metrics["ndcg@3"] == pytest.approx((1 / 2) / (1 + 1 / LOG2_3), abs=1e-6)


def reference_metrics(scores: np.ndarray, split: Split, phase: str, ks) -> dict[tuple[int, str], float]:
    """Brute force, one user at a time: sort candidates by (-score, id)."""
    history_ptr, history_items = split.history(phase)
    truth_ptr, truth_items = split.csr(phase)
    out = {}
    for user in range(split.n_users):
        history = set(history_items[history_ptr[user]:history_ptr[user + 1]].tolist())
        relevant = set(truth_items[truth_ptr[user]:truth_ptr[user + 1]].tolist()) - history
        if not relevant:
            continue
        ranking = sorted((i for i in range(split.n_items) if i not in history), key=lambda i: (-scores[user, i], i))
        gains = [float(i in relevant and scores[user, i] > -np.inf) for i in ranking]
        for k in ks:
            hits = sum(gains[:k])
            dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains[:k]))
            ideal = sum(1 / math.log2(r + 2) for r in range(min(k, len(relevant))))
            out[user, f"recall@{k}"] = hits / len(relevant)
            out[user, f"precision@{k}"] = hits / k
            out[user, f"ndcg@{k}"] = dcg / ideal
    return out


def random_split(rng: np.random.Generator, n_users: int, n_items: int) -> Split:
    def part(low: int, high: int) -> dict:
        return {u: rng.integers(0, n_items, rng.integers(low, high)).tolist() for u in range(n_users)}
    return make_split(n_items, part(0, 10), part(0, 3), part(0, 4), n_users=n_users)


@pytest.mark.parametrize("phase", ["valid", "test"])
def test_matches_brute_force_with_heavy_ties(phase):
    rng = np.random.default_rng(7)
    split = random_split(rng, n_users=60, n_items=30)
    scores = rng.integers(0, 4, (60, 30)).astype(np.float32)     # many ties at every cut
    scores[rng.random((60, 30)) < 0.1] = -np.inf                  # some items not recommended
    ks = (1, 3, 5, 10, 29, 40)
    result = evaluate(fixed_scores(scores), split, phase, ks=ks, batch_size=7)
    expected = reference_metrics(scores, split, phase, ks)
    assert result.users.tolist() == sorted({u for u, _ in expected})
    for key, values in result.per_user.items():
        np.testing.assert_allclose(values, [expected[u, key] for u in result.users], atol=1e-12, err_msg=key)


def test_users_without_ground_truth_are_skipped_and_counted():
    # User 1: no test item; user 2: its only test item is in its history; user 3: absent.
    split = make_split(6, train={0: [0], 1: [1], 2: [2]}, valid={}, test={0: [3], 2: [2]}, n_users=4)
    result = evaluate(fixed_scores(np.tile(np.arange(6.0)[::-1], (4, 1))), split, "test", ks=(1,))
    assert result.users.tolist() == [0]
    assert result.n_users == 1 and result.n_users_skipped == 3


def test_k_larger_than_the_candidate_set():
    # 5 items, 2 in history: 3 candidates, relevant {4} at rank 3; K = 10 > 5 = n_items.
    split = make_split(5, train={0: [0, 1]}, valid={}, test={0: [4]}, n_users=1)
    metrics = evaluate(fixed_scores([[5, 4, 3, 2, 1]]), split, "test", ks=(4, 10)).as_dict()
    for k in (4, 10):
        assert metrics[f"recall@{k}"] == 1.0
        assert metrics[f"precision@{k}"] == pytest.approx(1 / k, abs=1e-6)   # still divided by K
        assert metrics[f"ndcg@{k}"] == pytest.approx(1 / 2, abs=1e-6)        # rank 3: 1/log2(4)


def test_minus_inf_is_not_recommended():
    # A list-only method: it scores just item 1; the relevant item 3 is -inf, never a hit.
    split = make_split(5, train={0: [0]}, valid={}, test={0: [3]}, n_users=1)
    inf = float("inf")
    metrics = evaluate(fixed_scores([[-inf, 1, -inf, -inf, -inf]]), split, "test", ks=(5,)).as_dict()
    assert metrics["recall@5"] == 0.0 and metrics["ndcg@5"] == 0.0


def test_history_exclusion_depends_on_phase():
    # Item 2 is user 0's valid item: ground truth at "valid", excluded (history) at "test".
    split = make_split(6, train={0: [0]}, valid={0: [2]}, test={0: [4]}, n_users=1)
    scores = fixed_scores([[9, 1, 8, 1, 7, 1]])
    valid = evaluate(scores, split, "valid", ks=(1, 2)).as_dict()
    assert valid["recall@1"] == 1.0                      # train item 0 excluded, 2 ranks first
    test = evaluate(scores, split, "test", ks=(1, 2)).as_dict()
    assert test["recall@1"] == 1.0                       # 0 and 2 excluded, 4 ranks first
    # At "valid", the test item 4 is not excluded but is not ground truth: rank 2 is a miss.
    assert valid["precision@2"] == pytest.approx(1 / 2, abs=1e-6)


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(3)
    split = random_split(rng, n_users=50, n_items=40)
    scores = fixed_scores(rng.integers(0, 3, (50, 40)))      # ties, so the tie rule runs per chunk
    results = [evaluate(scores, split, "test", ks=(5, 20), batch_size=size) for size in (1, 7, 1000)]
    for other in results[1:]:
        assert other.users.tolist() == results[0].users.tolist()
        for key, values in results[0].per_user.items():
            assert np.array_equal(values, other.per_user[key]), key


def test_nan_scores_name_the_method_and_phase():
    split = make_split(4, train={0: [0]}, valid={}, test={0: [1]}, n_users=1)
    nan = float("nan")
    with pytest.raises(FloatingPointError, match=r"Sasrec.*'test'.*users \[0\]"):
        evaluate(fixed_scores([[0, 1, nan, 2]]), split, "test", name="Sasrec")
    with pytest.raises(FloatingPointError, match=r"Sasrec.*'test'"):    # NaN on a history item
        evaluate(fixed_scores([[nan, 1, 0, 2]]), split, "test", name="Sasrec")


def test_bad_scores_and_arguments_are_rejected():
    split = make_split(4, train={0: [0]}, valid={}, test={0: [1]}, n_users=1)
    with pytest.raises(ValueError, match=r"shape \(1, 3\).*expected \(1, 4\)"):
        evaluate(lambda users: torch.zeros(len(users), 3), split, "test")
    with pytest.raises(TypeError, match="floating"):
        evaluate(lambda users: torch.zeros(len(users), 4, dtype=torch.int64), split, "test")
    with pytest.raises(ValueError, match="ks"):
        evaluate(fixed_scores(np.zeros((1, 4))), split, "test", ks=(0,))
    with pytest.raises(KeyError, match="phase"):
        evaluate(fixed_scores(np.zeros((1, 4))), split, "train")


def test_the_methods_own_tensor_is_left_as_it_was():
    split = make_split(4, train={0: [0], 1: [1]}, valid={}, test={0: [1], 1: [2]})
    kept = torch.arange(12.0).view(3, 4)
    before = kept.clone()
    sliced = evaluate(lambda users: kept[1:], split, "test", ks=(2,)).as_dict()
    copied = evaluate(fixed_scores(kept[1:]), split, "test", ks=(2,)).as_dict()
    expanded = evaluate(lambda users: kept[2].expand(len(users), 4), split, "test", ks=(2,)).as_dict()
    assert torch.equal(kept, before)
    assert sliced == copied
    assert expanded["recall@2"] == 0.5        # ranks 3, 2 for user 0 (a miss) and user 1 (a hit)
