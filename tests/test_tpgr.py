"""TPGR: the balanced tree (every item exactly one leaf, a path decodes to its item), the
tree policy's probabilities agree between sampling, training and ranking, and a batch of
finished episodes gives one REINFORCE step per time step (the reference code's)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.rl_common import Context
from baselines.tpgr import DEFAULTS, TPGR, BalancedTree, TPGRLearner, TreePolicy
from imrl.api import RunContext

SIZES = [(1, 2), (7, 2), (10, 10), (11, 10), (100, 3), (392, 10), (1000, 10), (1001, 10)]


def make_tree(n: int, c: int, kind: str) -> BalancedTree:
    rng = np.random.default_rng(n * 31 + c)
    if kind == "pca":
        return BalancedTree(n, c, rng.normal(size=(n, 8)))
    return BalancedTree(n, c, rng=rng)


@pytest.mark.parametrize("kind", ["pca", "random"])
@pytest.mark.parametrize("n,c", SIZES)
def test_tree_is_balanced_and_every_item_is_exactly_one_leaf(n, c, kind):
    tree = make_tree(n, c, kind)
    assert tree.depth == max(1, math.ceil(round(math.log(n, c), 9)))
    assert tree.codes.shape == (n, tree.depth) and ((tree.codes >= 0) & (tree.codes < c)).all()
    # Every item one leaf, every leaf at most one item.
    assert len(np.unique(tree.leaf_of_item)) == n
    assert (tree.item_of_leaf >= 0).sum() == n
    assert (tree.item_of_leaf[tree.leaf_of_item] == np.arange(n)).all()
    # Balanced: at every internal node the children hold numbers of items differing by <= 1.
    for level in range(tree.depth):
        under = tree.leaf_of_item // c ** (tree.depth - level - 1)        # node of `level` + 1 above each item
        counts = np.bincount(under, minlength=c ** (level + 1)).reshape(-1, c)
        occupied = counts.sum(1) > 0
        assert (counts[occupied].max(1) - counts[occupied].min(1) <= 1).all(), (level, counts[occupied])


@pytest.mark.parametrize("n,c", SIZES)
def test_a_path_decodes_to_the_item_it_encodes(n, c):
    tree = make_tree(n, c, "pca")
    for item in range(n):
        node = 0
        for digit in tree.codes[item]:
            node = node * c + digit
        assert tree.item_of_leaf[node] == item


def test_pca_clustering_follows_the_principal_direction():
    # Items on a line: each child of the root holds a contiguous stretch of it.
    positions = np.random.default_rng(0).permutation(30).astype(float)
    vectors = np.stack([positions, 0.01 * np.sin(positions)], 1)
    tree = BalancedTree(30, 3, vectors)
    for child in range(3):
        members = np.sort(positions[tree.codes[:, 0] == child])
        assert len(members) == 10 and members[-1] - members[0] == 9


def policy_for(tree: BalancedTree, feature_dim: int = 3) -> TreePolicy:
    torch.manual_seed(0)
    policy = TreePolicy(tree, dim=4, hidden=5, feature_dim=feature_dim, item_vectors=None)
    with torch.no_grad():
        policy.weights.normal_(0.0, 1.0)
        policy.biases.normal_(0.0, 1.0)
    return policy


def test_greedy_walk_returns_the_item_whose_path_is_forced():
    tree = make_tree(100, 3, "pca")
    policy = policy_for(tree)
    state = torch.zeros(1, 5 + 3)
    for item in [0, 17, 99]:
        with torch.no_grad():   # make every node prefer the child on the item's path
            policy.biases.zero_()
            node = 0
            for level, digit in enumerate(tree.codes[item]):
                policy.biases[tree.node_offset(level) + node, digit] = 10.0
                node = node * tree.c + digit
        assert policy.sample(state, None, 1, greedy=True).item() == item


def test_probabilities_agree_between_ranking_sampling_and_training():
    tree = make_tree(50, 4, "pca")
    policy = policy_for(tree)
    state = torch.randn(6, 8)
    available = torch.rand(6, 50) > 0.3
    log_probs = policy.item_log_probs(state, available)
    assert torch.allclose(log_probs.exp().sum(1), torch.ones(6), atol=1e-5)
    assert torch.isneginf(log_probs[~available]).all()
    torch.manual_seed(1)
    slate = policy.sample(state, available, 5, greedy=False)
    assert all(len(set(row.tolist())) == 5 for row in slate) and available.gather(1, slate).all()
    slot_log_probs, plain = policy.path_log_probs(state, slate, available)
    assert plain.shape == (6, 5, tree.depth, tree.c)
    # Slot j: the item's probability among what is left after slots < j.
    remaining = available.clone()
    for j in range(5):
        expected = policy.item_log_probs(state, remaining).gather(1, slate[:, j:j + 1]).squeeze(1)
        assert torch.allclose(slot_log_probs[:, j], expected, atol=1e-5)
        remaining.scatter_(1, slate[:, j:j + 1], False)


def test_state_reads_both_windows_with_their_feedback():
    tree = make_tree(20, 3, "random")
    policy = policy_for(tree, feature_dim=0)
    pad = torch.full((1, 4), 20)
    some = torch.tensor([[20, 20, 3, 5]])
    empty = policy.state(Context(pad, pad, None))
    assert not torch.allclose(policy.state(Context(some, pad, None)), empty)
    assert not torch.allclose(policy.state(Context(pad, some, None)), empty)
    assert not torch.allclose(policy.state(Context(some, pad, None)), policy.state(Context(pad, some, None)))


def test_a_batch_of_episodes_gives_one_step_per_time_step_each_on_that_step_of_every_episode(monkeypatch):
    # Four users, episodes of three steps; the batch (4 finished episodes) gives three
    # REINFORCE steps, one per update() call, as the reference code's TPGR.train (an Adam
    # step per time step). It used to give one step for the whole batch.
    tree = make_tree(30, 3, "pca")
    torch.manual_seed(0)
    learner = TPGRLearner(tree, 2, 0, 8, {**DEFAULTS, "episodes_per_update": 4, "hidden": 5}, torch.device("cpu"),
                          torch.randn(30, 8))
    pad = torch.full((4, 3), 30)
    seen = []
    path_log_probs = learner.policy.path_log_probs
    monkeypatch.setattr(learner.policy, "path_log_probs",
                        lambda state, slate, available: seen.append(slate) or path_log_probs(state, slate, available))
    slates = []
    for step in range(3):
        context = Context(pad, pad, None)
        slate = learner.act(context, None, explore=True)
        slates.append(slate)
        ended = torch.full((4,), step == 2)
        learner.observe(context, slate, torch.rand(4, 2), context, ended, torch.zeros(4, dtype=torch.bool))
        if step < 2:
            assert learner.update() == {}   # no finished episode yet
    before = learner.policy.biases.detach().clone()
    results = [learner.update() for _ in range(4)]
    assert [bool(result) for result in results] == [True, True, True, False]
    assert not torch.equal(before, learner.policy.biases)
    # Each step learns from one time step of all four episodes (rows in any order), each time step once.
    def rows(slate):
        return sorted(map(tuple, slate.tolist()))
    assert sorted(next(t for t, slate in enumerate(slates) if rows(slate) == rows(batch)) for batch in seen) == [0, 1, 2]


def test_a_larger_batch_is_cut_into_steps_of_episodes_per_update_and_slots_compete_within_their_slate():
    # Eight users end together, episodes of two steps, 4 episodes per step: each time step
    # of the batch gives two Adam steps, on disjoint halves of the eight episodes. Each
    # slot's advantage is its return less its slate's mean (the state's baseline), so a
    # slate's advantages sum to zero.
    tree = make_tree(30, 3, "pca")
    torch.manual_seed(0)
    learner = TPGRLearner(tree, 3, 0, 8, {**DEFAULTS, "episodes_per_update": 4, "hidden": 5}, torch.device("cpu"),
                          torch.randn(30, 8), slate_baseline=True)
    pad = torch.full((8, 3), 30)
    for step in range(2):
        context = Context(pad, pad, None)
        slate = learner.act(context, None, explore=True)
        learner.observe(context, slate, torch.rand(8, 3), context, torch.full((8,), step == 1),
                        torch.zeros(8, dtype=torch.bool))
    assert learner.update()
    steps = [*learner.steps_left]   # the three steps left after the first
    assert len(steps) == 3 and all(len(advantages) == 4 for _, advantages in steps)
    for _, advantages in steps:
        assert torch.allclose(advantages.sum(1), torch.zeros(4), atol=1e-5)
        assert advantages.abs().sum() > 0


def test_the_default_budget_gives_tpgr_many_gradient_steps(split_small):
    # 1,600 transitions of 16 users, 10-step episodes: 160 episodes. With one update per 64
    # finished episodes TPGR took 2 gradient steps in the whole run (the policy stayed at its
    # random initialisation: exactly random's recall@20 in Table II); per time step, ~100.
    method = TPGR({"env": {"max_steps": 10}}, RunContext(seed=0, budget={"env_steps": 1600}))
    method.fit(split_small)
    assert method.training.updates >= 80, method.training.updates
