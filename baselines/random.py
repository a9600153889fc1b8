"""Random: uniformly random scores (offline) or uniformly random actions (online).
The floor every method must beat."""

from __future__ import annotations

import numpy as np
import torch

from imrl.api import OfflineMethod, OnlineAgent
from imrl.data.split import Split


class Random(OfflineMethod):
    defaults = {}

    def fit(self, split: Split) -> None:
        self.n_items = split.n_items
        self.generator = self.ctx.generator()

    def score(self, users: torch.Tensor, phase: str) -> torch.Tensor:
        return torch.rand(len(users), self.n_items, generator=self.generator, device=self.ctx.device)


class RandomAgent(OnlineAgent):
    action_interface = "discrete"
    defaults = {}

    def __init__(self, params, ctx, observation_space, action_space, n_envs):
        super().__init__(params, ctx, observation_space, action_space, n_envs)
        self.action_space.seed(ctx.seed)

    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        return np.stack([self.action_space.sample() for _ in range(len(obs))])

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        pass

    def update(self) -> dict[str, float]:
        return {}
