"""DEERS: the negative encoder sees only skipped items (and the positive one only hits),
competitors are same-category items with the opposite feedback, the pairwise weight is
checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.deers import DEFAULTS, DEERSLearner
from baselines.rl_common import OfflineData, rl_budget, train_offline
from imrl.api import RunContext


def test_negative_encoder_sees_only_skipped_items(split_small):
    ctx = RunContext(seed=0, budget={"env_steps": 8 * 40, "update_ratio": 0.25})
    budget = rl_budget(ctx)
    data = OfflineData(split_small, {"max_steps": 6, "slate_size": 5}, 8, ctx)
    learner = DEERSLearner(split_small.n_items, 5, data.feature_dim, 32, {**DEFAULTS, "epsilon_decay_steps": 1000},
                           ctx.device, data.item_vectors)
    pad = split_small.n_items
    shown_skipped = [set() for _ in range(8)]   # per env: items shown and not hit in this episode
    hit = [set() for _ in range(8)]
    seen = {"negative": [], "positive": []}
    network = learner.q
    for name, encoder in (("negative", network.encode_negative), ("positive", network.encode_positive)):
        def record(window, name=name, encoder=encoder):
            seen[name].append(window.clone())
            return encoder(window)
        setattr(network, f"encode_{name}", record)

    env_step, act = data.env.step, learner.act
    checked = 0

    def checked_act(context, available, explore):
        nonlocal checked
        for name in seen:
            seen[name].clear()
        slate = act(context, available, explore)
        assert torch.equal(seen["negative"][0], context.skipped) and torch.equal(seen["positive"][0], context.history)
        for env in range(8):
            negatives = {i for i in context.skipped[env].tolist() if i != pad}
            positives = {i for i in context.history[env, -len(hit[env]) or context.history.shape[1]:].tolist()} - {pad}
            assert negatives <= shown_skipped[env], (negatives, shown_skipped[env])
            assert not negatives & hit[env]
            assert hit[env] <= positives | set(context.history[env].tolist())
            checked += len(negatives)
        return slate

    def recording_step(actions):
        obs, rewards, terminated, truncated, info = env_step(actions)
        for env in range(8):
            for item, was_hit in zip(info["slate"][env].tolist(), info["hits"][env].tolist()):
                (hit[env] if was_hit else shown_skipped[env]).add(item)
            if terminated[env] or truncated[env]:
                shown_skipped[env], hit[env] = set(), set()
        return obs, rewards, terminated, truncated, info

    learner.act, data.env.step = checked_act, recording_step
    train_offline(learner, data, budget, seed=0)
    assert checked > 100   # skipped windows were not empty


def test_competitors_share_the_category_and_have_the_opposite_feedback():
    categories = torch.tensor([0, 0, 1, 1, 2, -1, -1])
    learner = DEERSLearner(7, 4, 0, 4, DEFAULTS, torch.device("cpu"), categories=categories)
    slate = torch.tensor([[0, 1, 2, 4], [2, 3, 5, 6], [0, 1, 2, 3]])
    rewards = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 1.0, 0], [1.0, 1.0, 0, 0]])
    competitors = learner.competitors(slate, rewards)
    assert competitors.tolist() == [[1, 0, -1, -1],     # 0 and 1 share category 0, one hit
                                    [3, 2, -1, -1],     # unknown categories (-1) have no competitor
                                    [-1, -1, -1, -1]]   # same category, same feedback: none


def test_without_categories_there_is_no_pairwise_term():
    learner = DEERSLearner(5, 2, 0, 4, DEFAULTS, torch.device("cpu"))
    assert (learner.competitors(torch.tensor([[0, 1]]), torch.tensor([[1.0, 0.0]])) == -1).all()


@pytest.mark.parametrize("alpha", [-0.1, 0.25, 1.0])
def test_pairwise_weight_must_keep_the_loss_bounded(alpha):
    with pytest.raises(ValueError, match="pairwise_alpha"):
        DEERSLearner(5, 2, 0, 4, {**DEFAULTS, "pairwise_alpha": alpha}, torch.device("cpu"))


def test_q_values_score_the_whole_catalogue_and_rank_by_q(split_small):
    ctx = RunContext(seed=0)
    data = OfflineData(split_small, {}, 4, ctx)
    learner = DEERSLearner(split_small.n_items, 10, data.feature_dim, 32, DEFAULTS, ctx.device, data.item_vectors)
    context = data.history_context(torch.arange(4), "test")
    q = learner.scores(context)
    assert q.shape == (4, split_small.n_items)
    greedy = learner.act(context, None, explore=False)
    assert torch.equal(greedy, q.topk(10, dim=1).indices)
    assert (context.skipped == split_small.n_items).all()   # logs record no skips
    assert np.isfinite(q.numpy()).all()
