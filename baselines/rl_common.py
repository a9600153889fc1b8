"""What the four RL baselines (DEERS, KGRL, TPGR, PGPR) share: the budget, the offline
environment they train on, the state they see, storage, and the thin adapter that puts
a learner on an online simulator. The methods themselves live in their own files.

Budget (``RunContext.budget``: the dataset's or simulator's ``budget`` entry, shared by
every method there; IMRL reads the same keys, ``imrl/agents/imrl.py``): ``env_steps``
transitions of offline training (user-steps, summed over the users stepped in
parallel), ``update_ratio`` gradient updates per transition (DEERS and KGRL, replay
based; TPGR, one step per time step of its last batch of finished episodes, as its
reference code; PGPR updates once per batch of walks, as its algorithm does) and
``validate_every`` gradient updates between validations (the best-validation policy is
kept: imrl/eval/selection.py). Other keys of the shared budget (e.g. the supervised
methods' ``epochs``) are not the RL methods' and are ignored. Online, the runner fixes
the episodes and users; ``update_ratio`` applies per transition as offline.

Offline protocol. Every learner trains in the run's offline environment
(``imrl.envs.environment``: the learned user model by default, or log replay; discrete
slates, "ids" observations: the last N positive and the last N skipped items of the episode),
built with the method's ``env`` parameters (default: the environment's defaults, as
IMRL) and ``n_envs`` users at once. ``Context`` is what a learner sees of a user: those
two windows and the user features of the split. At evaluation the positive window is
the user's last N items of ``split.history(phase)`` and the skipped window is empty
(logs record no skips); the learner scores every item and the shared evaluator ranks.

Online protocol. The state is the simulator's observation vector (standardised by
running statistics), the same for every method (the IMRL paper: "every method receive
the same kind of state representation"); the item windows are empty, because the
runner shows test episodes to ``act`` only, without the rewards a window needs. Items
are the simulator's item catalogue, which the simulator declares
(``imrl.envs.simulators.ItemView``, given by the runner through ``use_item_view``):
RecSim's 20 topics (its discrete actions are slots of candidates drawn afresh every
step, so a slot index names no item; a document's only observable feature is its
topic), RecoGym's products, VirtualTB's fixed action vectors (the last two: one item per
action index). Each step the learner may choose the items some action index shows (an
availability mask); its choice is shown through the first such index, and transitions
record the items shown. A slate is a MultiDiscrete action. The simulators report one
reward per step: each slot of a slate is credited reward / k, or, where the next
observation shows which slate position earned it (RecSim's response), that position
the whole reward (``ItemView.slot_shares``).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from imrl.api import OfflineMethod, OnlineAgent, RunContext
from imrl.checkpoint import Checkpointer
from imrl.data.split import Split
from imrl.envs.environment import OfflineEnvironment
from imrl.envs.offline import last_items
from imrl.envs.simulators import ItemView
from imrl.eval.selection import DEFAULT_EVERY, ValidationSelection, load_module_states, module_states, validation_metric

BUDGET_DEFAULTS: dict[str, float] = {"env_steps": 20_000, "update_ratio": 0.25,   # IMRL's defaults too
                                     "validate_every": DEFAULT_EVERY}
#: Method parameters every RL baseline has: the offline environment's arguments (shape:
#: history_len, slate_size, max_steps, embedding_dim, ...), users stepped at once, and the
#: width of the learned item embeddings online.
SHARED_DEFAULTS: dict[str, Any] = {"env": {}, "n_envs": 16, "dim": 32}


def rl_budget(ctx: RunContext) -> dict[str, float]:
    """The RL keys of the run's budget over BUDGET_DEFAULTS; ValueError naming a bad value."""
    budget = {key: ctx.budget.get(key, default) for key, default in BUDGET_DEFAULTS.items()}
    steps, ratio = budget["env_steps"], budget["update_ratio"]
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"budget: 'env_steps' = {steps!r}, expected an integer >= 1")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.number)) or not 0 <= ratio < math.inf:
        raise ValueError(f"budget: 'update_ratio' = {ratio!r}, expected a number >= 0")
    ValidationSelection(budget["validate_every"])   # checks it
    return {"env_steps": int(steps), "update_ratio": float(ratio), "validate_every": budget["validate_every"]}


class UpdateSchedule:
    """update_ratio gradient updates per transition, the fractions carried over (as IMRL)."""

    def __init__(self, ratio: float):
        self.ratio, self.pending = ratio, 0.0

    def after(self, transitions: int) -> int:
        """Updates due after `transitions` more transitions."""
        self.pending += transitions * self.ratio
        due = int(self.pending)
        self.pending -= due
        return due


def seed_torch(ctx: RunContext) -> None:
    """Network initialisation and every torch draw of a learner follow the run's seed (on
    CPU, repeatable under the runner's deterministic kernels: imrl.runs.run.seed_everything)."""
    torch.manual_seed(ctx.seed)


@dataclass
class Context:
    """What a learner sees of a batch of users: positive and skipped item windows
    (int64 [B, N], oldest first, ``pad`` = n_items for an empty slot) and features
    (float32 [B, f]: user features offline, the observation online; None if absent)."""

    history: Tensor
    skipped: Tensor
    features: Tensor | None

    def __len__(self) -> int:
        return len(self.history)

    def as_dict(self, prefix: str = "") -> dict[str, Tensor]:
        return {prefix + f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Tensor], prefix: str = "") -> Context:
        return cls(data[prefix + "history"], data[prefix + "skipped"], data.get(prefix + "features"))


class Learner(ABC):
    """A method's learning rule over `n_items` items with slates of `slate_size`, shared
    by its offline method and its online agent. Tensors live on the run's device."""

    n_items: int
    slate_size: int

    @abstractmethod
    def act(self, context: Context, available: Tensor | None, explore: bool) -> Tensor:
        """Slates int64 [B, k] of distinct items (``available``: bool [B, n_items], items that
        may be shown; None: all)."""

    @abstractmethod
    def observe(self, context: Context, slate: Tensor, slot_rewards: Tensor, next_context: Context,
                terminated: Tensor, truncated: Tensor) -> None:
        """One batched transition; ``slot_rewards`` float [B, k]."""

    @abstractmethod
    def update(self) -> dict[str, float]:
        """At most one gradient update; its diagnostics, or {} when there was nothing to learn."""

    @abstractmethod
    def scores(self, context: Context) -> Tensor:
        """Preference scores [B, n_items] (for ranking)."""


def masked(scores: Tensor, available: Tensor | None) -> Tensor:
    return scores if available is None else scores.masked_fill(~available, -torch.inf)


def window_items(windows: Tensor, n_items: int) -> Tensor:
    """bool [B, n_items]: the items of each window [B, m] (the pad n_items dropped)."""
    marks = torch.zeros(len(windows), n_items + 1, dtype=torch.bool, device=windows.device)
    return marks.scatter_(1, windows, True)[:, :-1]


def exclude(scores: Tensor, windows: Tensor) -> Tensor:
    """`scores` [B, n_items] with the items of `windows` [B, m] (pad n_items ignored) set to -inf."""
    padded = torch.cat([scores, scores.new_zeros(len(scores), 1)], dim=1)
    return padded.scatter(1, windows, -torch.inf)[:, :-1]


def epsilon_greedy_slate(scores: Tensor, available: Tensor | None, k: int, epsilon: float) -> Tensor:
    """The top-k items, each slot replaced with probability `epsilon` by a uniformly drawn
    available item that is not in the greedy slate (so the slate stays distinct)."""
    scores = masked(scores, available)
    greedy = scores.topk(k, dim=1).indices
    if epsilon <= 0:
        return greedy
    noise = masked(torch.rand(scores.shape, device=scores.device), available)
    noise.scatter_(1, greedy, -torch.inf)
    random_items = noise.topk(k, dim=1).indices
    explore = torch.rand(greedy.shape, device=scores.device) < epsilon
    return torch.where(explore, random_items, greedy)


# ----------------------------------------------------------------------------- offline
class OfflineData:
    """The run's offline environment of a split (``ctx.environment``: the user model by the
    workflow's default, else log replay), built with the method's ``env`` arguments, and the
    contexts learners see during training and at evaluation."""

    def __init__(self, split: Split, env_params: dict[str, Any], n_envs: int, ctx: RunContext):
        self.split = split
        self.device = ctx.device
        self.environment = ctx.environment or OfflineEnvironment()
        self.env = self.environment.make(split, n_envs, "discrete", "ids", seed=ctx.seed, device=ctx.device,
                                         **env_params)
        setup = self.env.setup
        self.n_items, self.slate_size, self.history_len = split.n_items, setup.slate_size, setup.history_len
        #: The environment's item embedding table E [n_items, d] (the user model's item
        #: embeddings; on replay, an SVD of the training interactions).
        self.item_vectors = torch.from_numpy(self.env.setup.item_embeddings).to(ctx.device)
        features = self.env.setup.user_features
        self.user_features = None if features is None else torch.from_numpy(features).to(ctx.device)
        self.feature_dim = 0 if features is None else features.shape[1]

    def context(self, obs: dict[str, np.ndarray]) -> Context:
        users = torch.from_numpy(obs["user"]).to(self.device)
        return Context(torch.from_numpy(obs["history"]).to(self.device), torch.from_numpy(obs["skipped"]).to(self.device),
                       None if self.user_features is None else self.user_features[users])

    def validate(self, learner: Learner, selection: ValidationSelection, updates: int) -> None:
        """Score `learner`'s policy on the validation split for `selection`."""
        modules = [value for value in vars(learner).values() if isinstance(value, torch.nn.Module)]
        value = validation_metric(lambda users: learner.scores(self.history_context(users, "valid")), self.split,
                                  selection.metric, self.device, modules)
        selection.record(updates, value, lambda: module_states(learner))

    def history_context(self, users: Tensor, phase: str) -> Context:
        """Users' last N items before `phase`, an empty skipped window, their features."""
        indptr, items = self.split.history(phase)
        windows = last_items(indptr, items, users.cpu().numpy(), self.history_len, self.n_items)
        history = torch.from_numpy(windows).to(self.device)
        return Context(history, torch.full_like(history, self.n_items),
                       None if self.user_features is None else self.user_features[users.to(self.device)])


@dataclass
class TrainingStats:
    env_steps: int = 0      # transitions (user-steps)
    updates: int = 0        # gradient updates
    seconds: float = 0.0
    reward: float = 0.0     # mean reward per transition

    def as_dict(self) -> dict[str, float]:
        return {"env_steps": self.env_steps, "updates": self.updates, "seconds": self.seconds, "reward": self.reward}


def train_offline(learner: Learner, data: OfflineData, budget: dict[str, float], seed: int,
                  checkpoint: Checkpointer | None = None) -> tuple[Learner, TrainingStats, ValidationSelection]:
    """Run `learner` on the offline environment for ``budget["env_steps"]`` transitions and
    keep the policy with the best validation recall@20 (every ``validate_every`` updates and
    at the end; imrl/eval/selection.py); the learner (a resumed run's is the restored one)
    with that policy loaded, the statistics and the selection. Items the environment would
    not credit (shown in the episode, or consumed: ``env.available()``) are not offered;
    every slot's reward is the environment's ``slot_rewards`` (its hit on replay, its click
    probability under the user model). With a `checkpoint`, the loop saves its state
    between steps when a save is due and resumes from the last save."""
    env, start = data.env, time.perf_counter()
    total_steps = math.ceil(budget["env_steps"] / env.num_envs)
    saved = checkpoint.restore() if checkpoint is not None else None
    if saved is None:
        loop = {"step": 0, "stats": TrainingStats(), "schedule": UpdateSchedule(budget["update_ratio"]),
                "total_reward": 0.0, "selection": ValidationSelection(budget["validate_every"])}
        obs, _ = env.reset(seed=seed)
    else:
        learner, loop, obs = saved["learner"], saved["loop"], saved["obs"]
        env.load_state_dict(saved["env"])
    context = data.context(obs)
    stats, selection = loop["stats"], loop["selection"]
    while loop["step"] < total_steps:
        slate = learner.act(context, env.available(), explore=True)
        obs, rewards, terminated, truncated, info = env.step(slate.cpu().numpy())
        slot_rewards = torch.from_numpy(info["slot_rewards"]).to(data.device)
        learner.observe(context, slate, slot_rewards, data.context(info["final_obs"]),
                        torch.from_numpy(terminated).to(data.device), torch.from_numpy(truncated).to(data.device))
        for _ in range(loop["schedule"].after(env.num_envs)):
            stats.updates += bool(learner.update())
        if selection.due(stats.updates):
            data.validate(learner, selection, stats.updates)
        context = data.context(obs)
        stats.env_steps += env.num_envs
        loop["total_reward"] += float(rewards.sum())
        loop["step"] += 1
        if checkpoint is not None and loop["step"] < total_steps and checkpoint.due():
            checkpoint.save({"where": f"step {loop['step']} of {total_steps}", "learner": learner, "loop": loop,
                             "env": env.state_dict(), "obs": obs})
    data.validate(learner, selection, stats.updates)   # the last policy is a candidate too
    load_module_states(learner, selection.best_state)
    stats.seconds = time.perf_counter() - start   # of this process (a resumed run: since it resumed)
    stats.reward = loop["total_reward"] / max(stats.env_steps, 1)
    return learner, stats, selection


class RLOfflineMethod(OfflineMethod, ABC):
    """The offline side of a method's learner: trained on the offline environment for the
    budget, it ranks items by the learner's scores of the user's history context."""

    def fit(self, split: Split) -> None:
        self.budget = rl_budget(self.ctx)
        seed_torch(self.ctx)
        self.data = OfflineData(split, self.params["env"], self.params["n_envs"], self.ctx)
        self.learner, self.training, selection = train_offline(
            self.make_learner(split), self.data, self.budget, self.ctx.seed,
            Checkpointer(self.ctx, "offline", type(self)))
        self.diagnostics = {"environment": self.data.environment.describe(),
                            "validation_selection": selection.summary()}

    @abstractmethod
    def make_learner(self, split: Split) -> Learner:
        """The method's learner for `split` (``self.data`` is set); it also records the
        method's substitutes."""

    def score(self, users: Tensor, phase: str) -> Tensor:
        return self.learner.scores(self.data.history_context(users, phase))


# ----------------------------------------------------------------------------- storage
class ReplayBuffer:
    """A circular buffer of batched transitions (dicts of tensors with a leading batch
    dimension), sampled uniformly with torch's global generator."""

    def __init__(self, capacity: int, device: torch.device):
        self.capacity, self.device = capacity, device
        self.data: dict[str, Tensor] = {}
        self.position = self.size = 0

    def add(self, batch: dict[str, Tensor]) -> None:
        n = len(next(iter(batch.values())))
        if not self.data:
            self.data = {key: torch.zeros((self.capacity, *value.shape[1:]), dtype=value.dtype, device=self.device)
                         for key, value in batch.items()}
        index = (self.position + torch.arange(n, device=self.device)) % self.capacity
        for key, value in batch.items():
            self.data[key][index] = value
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def __len__(self) -> int:
        return self.size

    def sample(self, n: int) -> dict[str, Tensor]:
        index = torch.randint(self.size, (n,), device=self.device)
        return {key: value[index] for key, value in self.data.items()}

    def __getstate__(self) -> dict[str, Any]:
        # A checkpoint (imrl/checkpoint.py) stores the filled rows only (copies: torch.save of
        # a view would store the whole allocation); until the buffer is full they are the
        # first `size` rows, and the rest is re-allocated on load.
        return {**vars(self), "data": {key: value[: self.size].clone() for key, value in self.data.items()}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self.data = {key: torch.cat([value, value.new_zeros((self.capacity - len(value), *value.shape[1:]))])
                     for key, value in state["data"].items()}


class EpisodeBuffer:
    """On-policy storage for episodic learners on a batched environment that restarts
    finished users in place: per step, the batch's data, rewards ([B], or [B, k] per
    slot of a slate) and episode ends. ``pop_complete`` hands over the steps of every
    finished episode with their discounted returns and keeps the rest: G_t = R_t + gamma
    G_{t+1} (0 after an episode's last step) with R_t the step's total reward; a slot's
    return is its own reward plus gamma G_{t+1}."""

    def __init__(self, gamma: float):
        self.gamma = gamma
        self.steps: list[dict[str, Tensor]] = []
        self.rewards: list[Tensor] = []
        self.ended: list[Tensor] = []
        self.pending: list[Tensor] = []   # rows not handed over yet

    def add(self, data: dict[str, Tensor], rewards: Tensor, ended: Tensor) -> None:
        self.steps.append(data)
        self.rewards.append(rewards.float())
        self.ended.append(ended.bool())
        self.pending.append(torch.ones_like(self.ended[-1]))

    @property
    def n_complete(self) -> int:
        """Finished episodes not handed over yet."""
        if not self.ended:
            return 0
        return int((torch.stack(self.ended) & torch.stack(self.pending)).sum())

    def pop_complete(self) -> tuple[dict[str, Tensor], Tensor]:
        """(data of the finished episodes' steps [M, ...], their returns [M] or [M, k])."""
        rewards, ended, pending = torch.stack(self.rewards), torch.stack(self.ended), torch.stack(self.pending)
        totals = rewards.sum(2) if rewards.dim() == 3 else rewards               # R_t [T, B]
        returns = torch.zeros_like(rewards)
        later = torch.zeros_like(totals[0])                                      # G_{t+1}
        for t in reversed(range(len(self.steps))):
            later = later * (~ended[t]).float()
            returns[t] = rewards[t] + self.gamma * (later[:, None] if rewards.dim() == 3 else later)
            later = totals[t] + self.gamma * later
        # A step belongs to a finished episode when its user's episode ended then or later.
        complete = pending & ended.flip(0).cummax(0).values.flip(0)
        data = {key: torch.stack([step[key] for step in self.steps])[complete] for key in self.steps[0]}
        for t in range(len(self.steps)):
            self.pending[t] = self.pending[t] & ~complete[t]
        while self.pending and not self.pending[0].any():   # drop steps with nothing left
            for storage in (self.steps, self.rewards, self.ended, self.pending):
                storage.pop(0)
        return data, returns[complete]


def with_availability(data: dict[str, Tensor], available: Tensor | None) -> dict[str, Tensor]:
    """An episode step's data plus the items the policy chose from, where they were
    restricted (an episodic learner learns the probability of what it drew under that mask)."""
    return data if available is None else {**data, "available": available}


# ----------------------------------------------------------------------------- online
def discrete_action_shape(space: gym.Space) -> tuple[int, int]:
    """(number of items, slate size) of a simulator's discrete action space: Discrete(n)
    is one item, MultiDiscrete([n] * k) a slate of k."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n), 1
    if isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1 and len(set(space.nvec.tolist())) == 1:
        return int(space.nvec[0]), len(space.nvec)
    raise ValueError(f"the RL baselines need a Discrete(n) or MultiDiscrete([n] * k) action space; got {space}")


ONLINE_STATE_NOTE = ("online: the state is the simulator's observation (standardised by running statistics), the "
                     "same for every method as in the IMRL paper; item windows are empty; a slate's reward is "
                     "shared equally by its slots unless the simulator shows which slot earned it")


class RunningStandardiser:
    """x -> (x - mean) / std with the mean and variance of every observation seen in
    training (batched Welford updates), clipped to [-10, 10], as gymnasium's
    NormalizeObservation does; simulators' observations mix counts, one-hots and scores."""

    def __init__(self, dim: int, device: torch.device):
        self.count = 0
        self.mean = torch.zeros(dim, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(dim, dtype=torch.float64, device=device)

    def update(self, batch: Tensor) -> None:
        batch = batch.double()
        n, batch_mean = len(batch), batch.mean(0)
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.m2 += ((batch - batch_mean) ** 2).sum(0) + delta ** 2 * self.count * n / total
        self.count = total

    def __call__(self, batch: Tensor) -> Tensor:
        if self.count < 2:
            return batch
        std = (self.m2 / (self.count - 1)).sqrt().clamp(min=1e-4)
        return ((batch.double() - self.mean) / std).clamp(-10.0, 10.0).float()


class RLOnlineAgent(OnlineAgent, ABC):
    """The thin adapter from a simulator to a method's ``Learner`` (module docstring,
    "Online protocol"). A subclass builds its learner in ``make_learner`` and names what it
    removes in ``online_removals``. The learner's items are the simulator's catalogue
    (``use_item_view``; until then, the identity: one item per action index)."""

    action_interface = "discrete"
    online_removals: tuple[str, ...] = ()

    def __init__(self, params: dict[str, Any], ctx: RunContext, observation_space: gym.Space,
                 action_space: gym.Space, n_envs: int):
        super().__init__(params, ctx, observation_space, action_space, n_envs)
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(f"{type(self).__name__}: expected a Box observation space; got {observation_space}")
        self.schedule = UpdateSchedule(rl_budget(ctx)["update_ratio"])
        self.n_actions, self.slate_size = discrete_action_shape(action_space)
        self.feature_dim = int(np.prod(observation_space.shape))
        self.standardise = RunningStandardiser(self.feature_dim, ctx.device)
        self.use_item_view(ItemView(self.n_actions))

    def use_item_view(self, view: ItemView) -> None:
        """Act on the view's catalogue (the learner is built over it when first used)."""
        if view.items_of is None and view.n_items != self.n_actions:
            raise ValueError(f"{type(self).__name__}: an identity item view needs one item per action; got "
                             f"{view.n_items} items for {self.n_actions} actions")
        if view.n_items < self.slate_size:
            raise ValueError(f"{type(self).__name__}: slates of {self.slate_size} need at least as many items; "
                             f"the catalogue has {view.n_items}")
        self.item_view, self.n_items = view, view.n_items
        # Item windows stay empty online (module docstring): one pad slot is all they need.
        self.empty_window = torch.full((1, 1), self.n_items, dtype=torch.int64, device=self.ctx.device)
        self._learner: Learner | None = None   # built on first use: the runner may still change the view
        self.substitutes = [ONLINE_STATE_NOTE, *([view.note] if view.note else []), *self.online_removals]
        self.chosen: tuple[np.ndarray, Tensor] | None = None   # the last act: (actions, items), until observed

    @property
    def learner(self) -> Learner:
        """The learner over the current item view, built from the run's seed when first used."""
        if self._learner is None:
            seed_torch(self.ctx)
            self._learner = self.make_learner()
        return self._learner

    @abstractmethod
    def make_learner(self) -> Learner:
        """The method's learner over ``self.n_items`` items, slates of ``self.slate_size``,
        ``self.feature_dim`` features."""

    def _observations(self, obs: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.ctx.device).reshape(len(obs), -1)

    def _context(self, obs: np.ndarray) -> Context:
        window = self.empty_window.expand(len(obs), -1)
        return Context(window, window, self.standardise(self._observations(obs)))

    def _action_items(self, obs: np.ndarray) -> Tensor:
        """int64 [B, n_actions]: the catalogue item each action index shows now."""
        return torch.as_tensor(self.item_view.items_of(obs), dtype=torch.int64, device=self.ctx.device)

    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        context = self._context(obs)
        if self.item_view.items_of is None:
            slate = self.learner.act(context, None, explore)
            actions = slate.cpu().numpy()
        else:
            action_items = self._action_items(obs)
            available = window_items(action_items, self.n_items)
            # Fewer distinct items on show than slots (a degenerate candidate set): every item
            # is offered, and one without an action index is shown by a spare index.
            available[available.sum(1) < self.slate_size] = True
            slate = self.learner.act(context, available, explore)
            actions = showing(slate, action_items).cpu().numpy()
        self.chosen = (actions, slate)
        return actions if isinstance(self.action_space, gym.spaces.MultiDiscrete) else actions[:, 0]

    def _items_shown(self, obs: np.ndarray, actions: np.ndarray) -> Tensor:
        """int64 [B, k]: the items the actions showed (those the learner chose, when they are
        this agent's own last actions: the same but in a degenerate candidate set)."""
        actions = np.asarray(actions, dtype=np.int64).reshape(len(obs), self.slate_size)
        chosen, self.chosen = self.chosen, None
        if chosen is not None and np.array_equal(chosen[0].reshape(actions.shape), actions):
            return chosen[1]
        slate = torch.as_tensor(actions, device=self.ctx.device)
        return slate if self.item_view.items_of is None else self._action_items(obs).gather(1, slate)

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        device, k = self.ctx.device, self.slate_size
        slate = self._items_shown(obs, actions)
        rewards = torch.as_tensor(np.asarray(rewards, dtype=np.float32), device=device)[:, None]
        shares = (torch.full((1, k), 1.0 / k, device=device) if self.item_view.slot_shares is None
                  else torch.as_tensor(self.item_view.slot_shares(next_obs), device=device))
        slot_rewards = rewards * shares
        self.standardise.update(self._observations(obs))
        self.learner.observe(self._context(obs), slate, slot_rewards, self._context(next_obs),
                             torch.as_tensor(np.asarray(terminated), device=device),
                             torch.as_tensor(np.asarray(truncated), device=device))

    def update(self) -> dict[str, float]:
        diagnostics: dict[str, float] = {}
        for _ in range(self.schedule.after(self.n_envs)):
            diagnostics.update(self.learner.update())
        return diagnostics


def showing(slate: Tensor, action_items: Tensor) -> Tensor:
    """Action indices [B, k] that show the items of `slate` [B, k]: each item's first index
    in `action_items` [B, n_actions]; an item that no index shows gets the first index not
    used by the slate (only in a degenerate candidate set)."""
    matches = action_items[:, None, :] == slate[:, :, None]                    # [B, k, n_actions]
    actions = matches.to(torch.uint8).argmax(dim=2)
    missing = ~matches.any(dim=2)
    for row, slot in missing.nonzero().tolist():
        used = set(actions[row][~missing[row]].tolist()) | set(actions[row, :slot].tolist())
        actions[row, slot] = next(index for index in range(action_items.shape[1]) if index not in used)
    return actions
