"""The two method interfaces. A method knows the protocol only through these: it never
reads files, computes its own test metrics, or picks its device or seed (the run
context gives them).

- ``OfflineMethod``: fits on a ``Split`` (and may build the offline environment from
  it); ``score`` returns, for a batch of users, a score for every item. The evaluator
  removes what the user has already consumed and ranks; a method that only produces a
  list (beam search) gives -inf to everything outside it.
- ``OnlineAgent``: acts on a batched gymnasium environment and learns from the
  transitions it is shown. ``action_interface`` says which of the environment's two
  action interfaces it uses ("continuous" scores or "discrete" items).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import gymnasium as gym
import numpy as np
import torch

from imrl.data.split import Split
from imrl.envs.environment import OfflineEnvironment


@dataclass(frozen=True)
class RunContext:
    """What the runner decides for a method: seed, device, budget, where to checkpoint."""

    seed: int
    device: torch.device = torch.device("cpu")
    budget: dict[str, Any] = field(default_factory=dict)   # e.g. {"epochs": 5} or {"episodes": 200}
    checkpoint_dir: Path | None = None
    checkpoint_every_s: float = 600.0                        # wall time between saves (imrl/checkpoint.py)
    progress: bool = False                                   # show progress bars
    #: The hash of the run's configuration (imrl/runs/run.py): a checkpoint saved under
    #: another is not resumed (imrl/checkpoint.py).
    config_hash: str | None = None
    #: Where the run resumed from a checkpoint (imrl/checkpoint.py appends); empty: it started fresh.
    resumes: list[str] = field(default_factory=list)
    #: The offline environment RL methods train in (the dataset's config; None: log replay).
    environment: OfflineEnvironment | None = None
    log: Callable[[str], None] = print

    def generator(self, offset: int = 0) -> torch.Generator:
        """A torch generator on the run's device derived from the seed (offset: a stream id)."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.seed * 1_000_003 + offset)
        return gen

    def rng(self, offset: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, offset])


class Method:
    """Shared by both interfaces: hyper-parameters, context, side-information labels."""

    #: The method's hyper-parameters and their defaults; required of every registered
    #: method (imrl/config.py checks the config against it when the workflow starts: an
    #: unknown key, or a value of another type than its default's, stops it). The
    #: config's values are merged over it; an unknown key is an error naming it.
    defaults: ClassVar[dict[str, Any] | None] = None
    #: JSON schemas of single keys where the default's type does not say enough (a key
    #: that takes an integer or "auto", one whose default is None).
    param_schema: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, params: dict[str, Any], ctx: RunContext):
        if self.defaults is not None:
            unknown = sorted(set(params) - set(self.defaults))
            if unknown:
                raise ValueError(f"{type(self).__name__}: unknown parameter(s) {unknown}; "
                                 f"valid parameters: {sorted(self.defaults) or 'none'}")
            params = {**self.defaults, **params}
        self.params = dict(params)
        self.ctx = ctx
        #: Human-readable notes of every substitute or removal of side information;
        #: copied into the results JSON and shown wherever the result is shown.
        self.substitutes: list[str] = []
        #: What training reports beside the metrics (environment, validation selection);
        #: copied into the results JSON's "training".
        self.diagnostics: dict[str, Any] = {}


class OfflineMethod(Method, ABC):
    @abstractmethod
    def fit(self, split: Split) -> None:
        """Train on ``split.train`` (``split.valid`` for early stopping only)."""

    @abstractmethod
    def score(self, users: torch.Tensor, phase: str) -> torch.Tensor:
        """Scores [len(users), n_items] (float) for `users` (int64) at `phase` ("valid"
        or "test"): the user's history is ``split.history(phase)``."""


class OnlineAgent(Method, ABC):
    action_interface: ClassVar[str] = "continuous"   # or "discrete"

    def __init__(self, params: dict[str, Any], ctx: RunContext,
                 observation_space: gym.Space, action_space: gym.Space, n_envs: int):
        super().__init__(params, ctx)
        self.observation_space = observation_space
        self.action_space = action_space   # the single-environment action space
        self.n_envs = n_envs

    def use_item_view(self, view: Any) -> None:
        """Optional, for discrete agents that act on items: the simulator's
        ``imrl.envs.simulators.ItemView`` (its discrete actions as catalogue items), given
        by the runner before training. Ignored by default."""

    @abstractmethod
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """Actions for a batch of observations [n_envs, ...]."""

    @abstractmethod
    def observe(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
                terminated: np.ndarray, truncated: np.ndarray) -> None:
        """Record one batched transition (next_obs is the true final observation where an
        episode ended)."""

    @abstractmethod
    def update(self) -> dict[str, float]:
        """Gradient steps after an environment step; returns scalar diagnostics."""
