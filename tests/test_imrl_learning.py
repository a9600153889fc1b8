"""IMRL learns: on a small offline environment, after a small budget, its policy finds
more of a user's items per episode than the random policy, for every seed, by a margin
of several standard errors."""

from __future__ import annotations

import numpy as np
import torch

from imrl.agents.imrl import IMRL
from imrl.api import RunContext
from imrl.envs.offline import BatchedOfflineRecEnv

# Short episodes with a wide slate, so that a budget of a few thousand steps is enough.
ENV = {"slate_size": 10, "max_steps": 10, "embedding_dim": 8, "history_len": 5}
PARAMS = {"hidden": 64, "model_hidden": 64, "batch_size": 128, "lr": 1e-3, "n_envs": 16, "random_steps": 500,
          "augment_after": 200, "env": ENV}
BUDGET = {"env_steps": 3000, "update_ratio": 0.25}
MARGIN = 0.7   # hits per episode; the random policy finds about 1.7 (standard error near 0.1), an untrained policy about 2.0


def mean_return(split, policy, users: np.ndarray) -> float:
    """Mean number of hits in one episode of each user (all users played at once)."""
    env = BatchedOfflineRecEnv(split, num_envs=len(users), action_interface="continuous", seed=0, **ENV)
    obs, _ = env.reset(options={"users": users})
    total, running = np.zeros(len(users)), np.ones(len(users), dtype=bool)
    while running.any():
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        total += reward * running
        running &= ~(terminated | truncated)
    return float(total.mean())


def test_imrl_beats_random(split_small):
    rng = np.random.default_rng(123)
    probe = BatchedOfflineRecEnv(split_small, num_envs=1, action_interface="continuous", **ENV)
    users = rng.choice(probe.setup.users, size=200, replace=False)
    random_returns = [mean_return(split_small, lambda obs: rng.uniform(-1, 1, (len(obs), 8)).astype(np.float32), users)
                      for _ in range(3)]
    imrl_returns = []
    for seed in range(3):
        method = IMRL(PARAMS, RunContext(seed=seed, budget=BUDGET, log=lambda message: None))
        method.fit(split_small)
        assert method.agent.counters["augmented"] > 0, "augmentation never happened"
        imrl_returns.append(mean_return(split_small, lambda obs: method.agent.policy_action(torch.from_numpy(obs)).numpy(),
                                        users))
    assert min(imrl_returns) > max(random_returns) + MARGIN, (imrl_returns, random_returns)
