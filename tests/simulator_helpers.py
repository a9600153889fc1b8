"""Shared by the simulator tests: access to the original packages, a small learning agent,
and a check that learning beats random through the online runner."""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import pytest

from baselines.random import RandomAgent
from imrl.api import OnlineAgent, RunContext
from imrl.eval.online import TEST_SEED_OFFSET, make_simulator, measure_ctr, run_simulator


def reference(load: Callable):
    """The original package, through `load`. CI installs the originals (.ci/run), so there a
    missing one is an error; elsewhere the parity test is skipped, saying how to install it."""
    try:
        return load()
    except ImportError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"original package not installed: {error}")


class EpsilonGreedyBandit(OnlineAgent):
    """Non-contextual epsilon-greedy over a Discrete action space: mean reward per action,
    untried actions first."""

    action_interface = "discrete"

    def __init__(self, params, ctx, observation_space, action_space, n_envs):
        super().__init__(params, ctx, observation_space, action_space, n_envs)
        self.epsilon = params.get("epsilon", 0.1)
        self.rng = ctx.rng()
        self.total = np.zeros(action_space.n)
        self.count = np.zeros(action_space.n)

    def act(self, obs, explore):
        mean = np.where(self.count > 0, self.total / np.maximum(self.count, 1), np.inf)
        actions = np.full(len(obs), int(np.argmax(mean)))
        if explore:
            random = self.rng.random(len(obs)) < self.epsilon
            actions[random] = self.rng.integers(self.action_space.n, size=int(random.sum()))
        return actions

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated):
        np.add.at(self.total, actions, rewards)
        np.add.at(self.count, actions, 1)

    def update(self):
        return {}


def learned_and_random_ctr(simulator: str, agent_cls: type[OnlineAgent], *, episodes: int, n_envs: int,
                           test_episodes: int, simulator_params: dict | None = None, params: dict | None = None):
    """Final test CTR of `agent_cls` after `episodes` training episodes (the runner's
    protocol), and the test CTR of the uniformly random policy on the same test users."""
    ctx = RunContext(seed=0)
    result, _ = run_simulator(simulator, agent_cls, params or {}, ctx, episodes=episodes, test_every=episodes,
                              test_episodes=test_episodes, n_envs=n_envs, simulator_params=simulator_params)
    env = make_simulator(simulator, n_envs, agent_cls.action_interface, simulator_params)
    random = RandomAgent({}, ctx, env.single_observation_space, env.single_action_space, n_envs)
    return result.metrics["ctr"], measure_ctr(random, env, test_episodes, TEST_SEED_OFFSET + ctx.seed)


class LinearGreedyBandit(OnlineAgent):
    """Contextual epsilon-greedy over a Discrete action space: per action a ridge
    regression of the reward on the observation (scaled to sum 1, plus a constant),
    refitted every `refit_every` steps."""

    action_interface = "discrete"

    def __init__(self, params, ctx, observation_space, action_space, n_envs):
        super().__init__(params, ctx, observation_space, action_space, n_envs)
        self.epsilon, self.refit_every = params.get("epsilon", 0.1), params.get("refit_every", 10)
        self.rng = ctx.rng()
        dim = observation_space.shape[0] + 1
        self.gram = np.tile(np.eye(dim), (action_space.n, 1, 1))
        self.target = np.zeros((action_space.n, dim))
        self.weights = np.zeros((action_space.n, dim))
        self.steps = 0

    def features(self, obs):
        obs = np.asarray(obs, dtype=np.float64)
        return np.concatenate([np.ones((len(obs), 1)), obs / np.maximum(obs.sum(axis=1, keepdims=True), 1.0)], 1)

    def act(self, obs, explore):
        actions = np.argmax(self.features(obs) @ self.weights.T, axis=1)
        if explore:
            random = self.rng.random(len(obs)) < self.epsilon
            actions[random] = self.rng.integers(self.action_space.n, size=int(random.sum()))
        return actions

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated):
        x = self.features(obs)
        np.add.at(self.gram, actions, x[:, :, None] * x[:, None, :])
        np.add.at(self.target, actions, rewards[:, None] * x)

    def update(self):
        self.steps += 1
        if self.steps % self.refit_every == 0:
            self.weights = np.linalg.solve(self.gram, self.target[:, :, None])[:, :, 0]
        return {}
