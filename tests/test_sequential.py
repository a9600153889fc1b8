"""The shared part of the supervised sequential baselines: windows, examples, the loop."""

import numpy as np
import pytest
import torch

from baselines.casr import CASR
from baselines.causerec import CauseRec
from baselines.cocorec import CoCoRec
from baselines.sasrec import SASRec
from baselines.sequential import PAD, Examples, random_subset, windows
from baselines.stamp import STAMP
from imrl.api import RunContext
from tests.supervised_helpers import cyclic_sequences, split_from_sequences

ALL_METHODS = [SASRec, STAMP, CASR, CauseRec, CoCoRec]
TINY = {SASRec: {"d": 8, "max_len": 6}, STAMP: {"d": 8, "max_len": 6}, CASR: {"d": 8, "max_len": 6},
        CauseRec: {"d": 8, "max_len": 6, "n_interests": 3, "mlp_hidden": 8, "attention_hidden": 8},
        CoCoRec: {"d": 8, "max_len": 6, "memory_users": 8, "n_pseudo_categories": 3, "pseudo_rank": 2}}


def test_windows_are_left_padded_and_stay_inside_the_owner():
    items = torch.tensor([10, 11, 12, 20, 21])          # user 0 owns 0..2, user 1 owns 3..4
    tokens = windows(items, starts=torch.tensor([0, 3, 3]), ends=torch.tensor([3, 5, 4]), max_len=4)
    assert tokens.tolist() == [[PAD, 11, 12, 13], [PAD, PAD, 21, 22], [PAD, PAD, PAD, 21]]


def test_prefix_examples_cover_every_train_item_but_the_first_once():
    split = split_from_sequences([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9], [1, 2]], n_items=10)
    examples = Examples.from_split(split, "prefix", max_len=2, device=torch.device("cpu"))
    inputs, targets, users = examples.batch(torch.arange(len(examples)))
    # train parts: [0, 1, 2, 3], [6, 7], [] (the third user has only valid and test)
    assert (targets - 1).tolist() == [1, 2, 3, 7]
    assert users.tolist() == [0, 0, 0, 1]
    assert inputs.tolist() == [[PAD, 1], [1, 2], [2, 3], [PAD, 7]]


@pytest.mark.parametrize("per_user", ["last", "all"])
def test_sequence_examples_shift_targets_by_one(per_user):
    split = split_from_sequences([list(range(9)), [3, 4, 5, 6]], n_items=10)   # train: 0..6 and 3, 4
    examples = Examples.from_split(split, "sequence", 3, torch.device("cpu"), windows_per_user=per_user)
    inputs, targets, users = examples.batch(torch.arange(len(examples)))
    pairs = sorted((u, i, t) for u, row_in, row_t in zip(users.tolist(), inputs.tolist(), targets.tolist())
                   for i, t in zip(row_in, row_t) if t != PAD)
    assert all(t == i + 1 for _, i, t in pairs)                 # each target is the next item of its input
    assert all((i == PAD) == (t == PAD) for row_in, row_t in zip(inputs.tolist(), targets.tolist())
               for i, t in zip(row_in, row_t))
    covered = [t - 1 for u, _, t in pairs if u == 0]
    assert covered == ([4, 5, 6] if per_user == "last" else [1, 2, 3, 4, 5, 6])


def test_random_subset_takes_exactly_the_quota_from_the_candidates():
    candidates = torch.tensor([[True, False, True, True], [False, False, True, False], [False] * 4])
    chosen = random_subset(candidates, torch.tensor([[2], [2], [1]]), torch.Generator().manual_seed(0))
    assert chosen.sum(1).tolist() == [2, 1, 0]
    assert not (chosen & ~candidates).any()


def test_unknown_param_is_named():
    with pytest.raises(ValueError, match="dimension"):
        SASRec({"dimension": 3}, RunContext(seed=0))


def test_budget_epochs_override_params_and_early_stopping_restores_the_best_epoch():
    split = split_from_sequences(cyclic_sequences(20, 12, 8), n_items=12)

    class Declining(STAMP):
        def validate(self):
            self.snapshots.append({k: v.clone() for k, v in self.model.state_dict().items()})
            return 1.0 / len(self.snapshots)

    method = Declining({**TINY[STAMP], "patience": 2, "epochs": 1}, RunContext(seed=0, budget={"epochs": 9}))
    method.snapshots = []
    method.fit(split)
    assert len(method.train_log) == 3                    # the best epoch, then patience=2 worse ones
    for name, value in method.model.state_dict().items():
        assert torch.equal(value, method.snapshots[0][name])


@pytest.mark.parametrize("cls", ALL_METHODS)
def test_same_seed_same_scores_on_cpu(cls):
    split = split_from_sequences(cyclic_sequences(24, 12, 10), n_items=12)
    users = torch.arange(split.n_users)

    def run(seed):
        method = cls({**TINY[cls], "epochs": 2}, RunContext(seed=seed))
        method.fit(split)
        scores = method.score(users, "test")
        assert scores.shape == (split.n_users, split.n_items) and torch.isfinite(scores).all()
        return scores

    first = run(0)
    assert torch.equal(first, run(0))
    assert not torch.equal(first, run(1))


def test_score_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="before fit"):
        STAMP({}, RunContext(seed=0)).score(torch.arange(2), "test")


def test_users_without_history_get_finite_scores():
    sequences = cyclic_sequences(10, 12, 8) + [[3, 4]]         # the last user has no train items
    split = split_from_sequences(sequences, n_items=12)
    for cls in ALL_METHODS:
        method = cls({**TINY[cls], "epochs": 1}, RunContext(seed=0))
        method.fit(split)
        assert torch.isfinite(method.score(torch.tensor([10]), "valid")).all(), cls.__name__
    assert np.diff(split.csr("train")[0])[10] == 0
