"""A small batched gymnasium environment for the online tests of the RL baselines (the
simulators have their own tests): each user has a hidden type, shown in the observation
with noise; the items of the type's block are clicked with probability ``p_hit``, the
others with ``p_miss``; a step's reward is 1 when any shown item is clicked."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space


class PreferenceVectorEnv(VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, n_items: int = 20, n_types: int = 4, slate_size: int = 0,
                 episode_length: int = 8, p_hit: float = 0.9, p_miss: float = 0.05):
        self.num_envs, self.n_items, self.n_types = num_envs, n_items, n_types
        self.episode_length, self.p_hit, self.p_miss = episode_length, p_hit, p_miss
        self.single_observation_space = gym.spaces.Box(-1.0, 2.0, (n_types,), np.float32)
        self.single_action_space = (gym.spaces.MultiDiscrete([n_items] * slate_size) if slate_size
                                    else gym.spaces.Discrete(n_items))
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.block = np.arange(n_items) * n_types // n_items   # the type whose block holds each item

    def reset(self, *, seed=None, options=None):
        self.rng = np.random.default_rng(seed)
        self.types = self.rng.integers(self.n_types, size=self.num_envs)
        self.steps = np.zeros(self.num_envs, dtype=np.int64)
        return self._observe(), {}

    def _observe(self) -> np.ndarray:
        obs = np.eye(self.n_types, dtype=np.float32)[self.types]
        return obs + self.rng.normal(0.0, 0.1, obs.shape).astype(np.float32)

    def step(self, actions):
        slates = np.asarray(actions).reshape(self.num_envs, -1)
        liked = self.block[slates] == self.types[:, None]
        clicked = self.rng.random(slates.shape) < np.where(liked, self.p_hit, self.p_miss)
        rewards = clicked.any(1).astype(np.float64)
        self.steps += 1
        terminated = self.steps >= self.episode_length
        obs = self._observe()
        infos = {"final_obs": obs.copy(), "_final_obs": terminated.copy(), "clicks": rewards}
        ended = np.flatnonzero(terminated)
        self.types[ended] = self.rng.integers(self.n_types, size=len(ended))
        self.steps[ended] = 0
        obs[ended] = self._observe()[ended]
        return obs, rewards, terminated, np.zeros(self.num_envs, dtype=bool), infos


def mean_reward(agent, env: PreferenceVectorEnv, steps: int, seed: int, learn: bool) -> float:
    """Mean reward per step of `agent` over `steps` batched steps (learning when `learn`)."""
    obs, _ = env.reset(seed=seed)
    total = 0.0
    for _ in range(steps):
        actions = agent.act(obs, explore=learn)
        next_obs, rewards, terminated, truncated, infos = env.step(actions)
        if learn:
            agent.observe(obs, actions, rewards, infos["final_obs"], terminated, truncated)
            agent.update()
        total += rewards.mean()
        obs = next_obs
    return total / steps
