"""What the three online simulators (RecSim, RecoGym, VirtualTB) share.

``BatchedSimulator`` is a gymnasium ``VectorEnv``: N independent users stepped at once
with array operations. When a user's episode ends, the same ``step`` starts the next
user in that slot (gymnasium's "same step" autoreset); ``infos["final_obs"]`` holds the
observation each user actually reached (the true next observation of the transition,
also for the users whose episode just ended, marked by ``infos["_final_obs"]``). Every
step reports ``infos["clicks"]`` and ``infos["impressions"]`` per user, the numerator
and denominator of the simulator's click-through rate (SIMULATORS.md, "CTR").

Two action interfaces, chosen when the environment is built:
- "continuous": a score vector in [-1, 1]^d over the candidates' features (IMRL and SAC);
  the simulator shows the best-scoring candidates (VirtualTB takes the vector natively);
- "discrete": item-level actions (candidate indices, product ids, or one of a fixed set
  of action vectors for VirtualTB), for the item-level baselines.
Invalid actions (wrong shape or type, NaN, out of range) raise ``InvalidActionError``.

``item_view()`` tells item-level agents what the discrete actions are in terms of a fixed
item catalogue (``ItemView``): by default the identity (RecoGym's products, VirtualTB's
fixed action vectors); RecSim, whose discrete actions are slots of candidates drawn
afresh every step, declares its 20 topics as the catalogue (SIMULATORS.md, "Item view").

``OneUserEnv`` shows one user of a batched simulator as a plain ``gymnasium.Env``: what
``check_env`` and the comparisons against the original packages use.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

ACTION_INTERFACES = ("continuous", "discrete")


class InvalidActionError(ValueError):
    """An action that the environment's action space does not contain."""


def continuous_space(dim: int) -> gym.spaces.Box:
    return gym.spaces.Box(-1.0, 1.0, (dim,), np.float32)


def top_k_by_score(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first; ties go to the lower index."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


@dataclass(frozen=True)
class ItemView:
    """A simulator's discrete actions as items of a fixed catalogue, for item-level agents.

    ``n_items``: the catalogue's size. ``items_of``: observations [B, ...] -> int64
    [B, n_actions], the catalogue item each discrete action index shows to that user now
    (several indices may show the same item; an item no index shows is unavailable);
    None: action index = item, every item always available. ``slot_shares``: next
    observations [B, ...] -> float [B, k], each slate position's share of the step's
    reward, where the observation shows which position earned it; None: equal shares.
    ``note``: the adaptation in one sentence, for the run's ``substitutes`` (None for the
    identity)."""

    n_items: int
    items_of: Callable[[np.ndarray], np.ndarray] | None = None
    slot_shares: Callable[[np.ndarray], np.ndarray] | None = None
    note: str | None = None


class BatchedSimulator(VectorEnv):
    """Base of the three simulators. A subclass sets ``name`` and implements
    ``_seed`` (all its random streams from one integer), ``_start`` (new users in the
    given slots, returning their first observations) and ``_step`` (one step of every
    user given validated actions)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
    name: ClassVar[str]

    def __init__(self, num_envs: int, action_interface: str, observation_space: gym.spaces.Box,
                 continuous_dim: int, discrete_space: gym.spaces.Space):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"{self.name}: num_envs must be a positive integer, got {num_envs!r}")
        if action_interface not in ACTION_INTERFACES:
            raise ValueError(f"{self.name}: action_interface must be one of {ACTION_INTERFACES}, "
                             f"got {action_interface!r}")
        self.num_envs = int(num_envs)
        self.action_interface = action_interface
        self.single_observation_space = observation_space
        self.discrete_space = discrete_space
        self.single_action_space = (continuous_space(continuous_dim) if action_interface == "continuous"
                                    else discrete_space)
        self.observation_space = batch_space(observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._all = np.arange(self.num_envs)
        self._seeded = False

    # -- what a simulator implements -------------------------------------------------
    @abstractmethod
    def _seed(self, seed: int) -> None:
        """Re-create every random stream (and anything drawn at construction) from `seed`."""

    @abstractmethod
    def _start(self, slots: np.ndarray) -> np.ndarray:
        """Start a new user in each of `slots` (sorted); their first observations."""

    @abstractmethod
    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One step of every user: (next observations, rewards, terminated, infos with
        "clicks" and "impressions")."""

    def item_view(self) -> ItemView:
        """The discrete actions as catalogue items: here the identity (one item per action
        index); a simulator whose action indices change meaning overrides this."""
        space = self.discrete_space
        return ItemView(int(space.n) if isinstance(space, gym.spaces.Discrete) else int(space.nvec[0]))

    # -- gymnasium VectorEnv ---------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None or not self._seeded:
            self._seed(int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2**32))
            self._seeded = True
        return self._start(self._all), {}

    def step(self, actions):
        if not self._seeded:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        obs, rewards, terminated, infos = self._step(self.check_actions(actions))
        infos["final_obs"] = obs.copy()
        infos["_final_obs"] = terminated.copy()
        if terminated.any():
            ended = np.flatnonzero(terminated)
            obs[ended] = self._start(ended)
        return obs, rewards, terminated, np.zeros(self.num_envs, dtype=bool), infos

    def check_actions(self, actions) -> np.ndarray:
        return check_actions(actions, self.single_action_space, self.num_envs, self.name, self.action_interface)


def check_actions(actions, space: gym.spaces.Space, num_envs: int, name: str, interface: str) -> np.ndarray:
    """`actions` (one row per user) as an array, or InvalidActionError saying what is wrong."""
    actions = np.asarray(actions)
    expected = (num_envs, *space.shape)
    if actions.shape != expected:
        raise InvalidActionError(f"{name}: {interface} actions must have shape {expected} (one row per user), "
                                 f"got {actions.shape}")
    if isinstance(space, gym.spaces.Box):
        if not np.issubdtype(actions.dtype, np.number):
            raise InvalidActionError(f"{name}: continuous actions must be numbers, got dtype {actions.dtype}")
        bad = ~np.isfinite(actions) | (actions < space.low) | (actions > space.high)
        kind = "finite scores in [-1, 1]"
    else:
        if not np.issubdtype(actions.dtype, np.integer):
            raise InvalidActionError(f"{name}: discrete actions must be integers, got dtype {actions.dtype}")
        high = space.nvec if isinstance(space, gym.spaces.MultiDiscrete) else space.n
        bad = (actions < 0) | (actions >= high)
        kind = f"integers in [0, {int(np.max(high))})"
    if bad.any():
        where = np.argwhere(bad)[0]
        raise InvalidActionError(f"{name}: {interface} actions must be {kind}; "
                                 f"user {where[0]} has {actions[tuple(where)].item()!r}")
    return actions


class OneUserEnv(gym.Env):
    """One user of a batched simulator built with num_envs=1, as a gymnasium Env.

    An episode ends with the user's true final observation; the next user, which the
    batched simulator has already drawn in the same step (exactly when the originals
    draw it: on their next reset), is what the next ``reset()`` returns."""

    def __init__(self, simulator: BatchedSimulator):
        if simulator.num_envs != 1:
            raise ValueError(f"OneUserEnv needs a simulator with num_envs=1, got {simulator.num_envs}")
        self.simulator = simulator
        self.observation_space = simulator.single_observation_space
        self.action_space = simulator.single_action_space
        self._next_user_obs: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or self._next_user_obs is None:
            obs, _ = self.simulator.reset(seed=seed)
            obs = obs[0]
        else:
            obs = self._next_user_obs
        self._next_user_obs = None
        return obs.copy(), {}

    def step(self, action):
        if self._next_user_obs is not None:
            raise RuntimeError(f"{self.simulator.name}: the episode has ended; call reset()")
        obs, rewards, terminated, _, infos = self.simulator.step(np.asarray(action)[None])
        if terminated[0]:
            self._next_user_obs = obs[0]
        info = {"clicks": infos["clicks"][0], "impressions": infos["impressions"][0]}
        return infos["final_obs"][0].copy(), float(rewards[0]), bool(terminated[0]), False, info
