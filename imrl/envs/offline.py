"""Log replay: a dataset split replayed as a gymnasium environment, in the style of DRR
(Liu et al., "Deep reinforcement learning based recommendation with explicit user-item
interactions modeling", 2018). It is the named alternative (``environment: {kind:
replay}``), not the IMRL paper's offline environment: the paper follows its reference
[32] (Chen et al. 2019), a user model learned from the logs, which is
``imrl.envs.user_model`` and the default. The spaces, observations, action interfaces and
batched machinery below are shared by both.

Episode. One user, drawn uniformly from ``users`` with the environment's RNG (or forced:
``reset(options={"user": u})``; the batched form takes ``{"users": [...]}``). The user's
training log (``split.train`` in interaction order; every row is a positive, since
preprocessing binarised the split) is cut in two:

- the *initial items*: the first ``min(initial_items, n_u - 1)`` rows (``initial_items``
  defaults to ``history_len``). They fill the history window at reset and count as
  consumed, so every user with a train item keeps at least one item to discover;
- the *targets*: the distinct items of the rest of the log that are not initial items.
  Users without a target are never drawn.

Step. The agent shows a slate of ``slate_size`` (k) items. Slot j is a *hit* when its item
is a target not yet consumed and not a repeat of an earlier slot of the same slate. The
reward is the number of hits (at most k: ``max_reward``, IMRL's T_max). Hit items become
consumed and enter the history window in slate order; the window holds the last
``history_len`` (N) positives, oldest first, newest in the last slot. The distinct slate
items that did not hit enter the *skipped* window the same way. Every shown item is
remembered. The episode terminates when all targets are consumed and is truncated after
``max_steps`` steps (both may hold on the same step, as with gymnasium's TimeLimit).

Action interfaces (``action_interface=``):

- ``"discrete"``: ``MultiDiscrete([n_items] * k)``, the slate's item ids. Repeats and
  already shown items are allowed; they earn nothing.
- ``"continuous"``: ``Box(-1, 1, (d,))``, a vector ``a`` in item-embedding space. Item i
  scores ``E[i] . a``; the slate is the k highest-scoring items among those neither shown
  nor initial in this episode (ties go to the lower id), ordered by score, then id. This
  needs ``n_items >= initial_items + k * max_steps`` so that a slate can always be filled.

Item embedding table ``E`` [n_items, d] (``item_embeddings``), built deterministically from
the training interactions only. X is the binary user x item matrix of ``split.train`` (1
where the item is in the user's train log; repeats count once). The item factors are
``V S``, with V the top-d right singular vectors of X and S their singular values (equal to
``X^T U``: the items' coordinates on the top-d left singular vectors). They come from an
exact symmetric eigendecomposition of the Gram matrix of X's smaller side (``X^T X`` or
``X X^T``) when that side has at most ``EXACT_GRAM_MAX`` rows, otherwise from ARPACK ``svds``
with a fixed start vector. Each factor column's sign is set so that its largest-magnitude
entry is positive; columns beyond the rank are zero. Finally each row is L2-normalised
(an item without train interactions keeps a zero row), so every entry lies in [-1, 1]. A
precomputed table may be passed instead (``item_embeddings=``, shape [n_items, d]).

Observations (``observation=``):

- ``"vector"`` (default): float32, length ``N * d + f``; the composition form IMRL uses.
  Component ``history_j`` (j = 0 oldest .. N-1 newest) is ``E[item in slot j]``, zeros for
  an empty slot (slots fill from the newest end, so empty slots come first); then
  ``user_features`` (``f = split.user_features.shape[1]``; absent when the split has
  none). ``env.components`` maps each component's name to its slice.
- ``"ids"``: ``Dict(history=MultiDiscrete([n_items + 1] * N), skipped=MultiDiscrete([n_items
  + 1] * N), user=Discrete(n_users))``: both windows as item ids (``n_items`` pads an empty
  slot; same alignment) and the user id, for item-level methods (DEERS reads the positive
  and the skipped sequences). User features are ``split.user_features[user]``.

Info. ``reset``: ``user``. ``step``: ``user``, ``slate`` (int64 [k], the items shown),
``hits`` (bool [k], per slot), ``n_remaining`` (targets still to discover).

``OfflineRecEnv`` plays one user at a time and is written plainly; ``BatchedOfflineRecEnv``
plays ``num_envs`` users at once with torch array operations and is tested against it. It
is a gymnasium ``VectorEnv`` with SAME_STEP autoreset (``metadata["autoreset_mode"]``):
when sub-environment i's episode ends, ``obs[i]`` is already the first observation of its
next episode (a new user) while ``info["final_obs"][i]`` is the true final observation of
the ended one, and ``info["_final_obs"][i]`` is True. ``info["final_obs"]`` is a full batch
(rows of the other sub-environments equal ``obs``), so it is the true next observation of
every transition. The other info arrays describe the step just taken (``user``: who
acted); ``episode_users`` gives the users of the current episodes. For ranking at
evaluation time, ``last_items`` builds windows from ``split.history(phase)`` and
``setup.observe`` turns them into vector observations.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from imrl.data.split import Split

ACTION_INTERFACES = ("discrete", "continuous")
OBSERVATIONS = ("vector", "ids")
#: Largest smaller side of X whose Gram matrix is eigendecomposed exactly (else ARPACK).
EXACT_GRAM_MAX = 512


def item_embedding_table(split: Split, dim: int) -> np.ndarray:
    """The environment's item embedding table E [n_items, dim] (float32); see the module
    docstring for the construction."""
    indptr, items = split.csr("train")
    owners = np.repeat(np.arange(split.n_users), np.diff(indptr))
    interactions = scipy.sparse.csr_matrix((np.ones(len(items)), (owners, items)),
                                           shape=(split.n_users, split.n_items))
    interactions.data[:] = 1.0   # the conversion summed repeats; binary again
    rank = min(dim, *interactions.shape)
    factors = _item_factors(interactions, rank)
    largest = factors[np.argmax(np.abs(factors), axis=0), np.arange(rank)]
    factors *= np.where(largest < 0, -1.0, 1.0)
    table = np.zeros((split.n_items, dim))
    table[:, :rank] = factors
    norms = np.linalg.norm(table, axis=1, keepdims=True)
    np.divide(table, norms, out=table, where=norms > 0)
    return table.astype(np.float32)


def _item_factors(interactions: scipy.sparse.csr_matrix, rank: int) -> np.ndarray:
    """V S [n_items, rank] of the top-`rank` singular triplets, largest first."""
    n_users, n_items = interactions.shape
    if min(n_users, n_items) <= EXACT_GRAM_MAX:
        items_side = n_items <= n_users
        gram = (interactions.T @ interactions if items_side else interactions @ interactions.T).toarray()
        size = gram.shape[0]
        eigenvalues, eigenvectors = scipy.linalg.eigh(gram, subset_by_index=[size - rank, size - 1])
        eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
        if items_side:   # eigenvectors are V, eigenvalues S^2
            return eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
        return np.asarray(interactions.T @ eigenvectors)   # eigenvectors are U: X^T U = V S
    # ARPACK finds at most min(shape) - 1 triplets; the rest stay zero columns.
    n_found = min(rank, min(n_users, n_items) - 1)
    start = np.full(min(n_users, n_items), 1.0 / np.sqrt(min(n_users, n_items)))
    _, singular_values, right_vectors = scipy.sparse.linalg.svds(interactions, k=n_found, v0=start, solver="arpack")
    order = np.argsort(-singular_values, kind="stable")
    factors = np.zeros((n_items, rank))
    factors[:, :n_found] = right_vectors[order].T * singular_values[order]
    return factors


def _segments(indptr: np.ndarray, values: np.ndarray, users: np.ndarray):
    """The CSR rows of `users`, concatenated: (owner = position in `users`, offset in the
    row, row lengths, values)."""
    starts = indptr[users]
    lengths = indptr[users + 1] - starts
    owner = np.repeat(np.arange(len(users)), lengths)
    offset = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, offset, lengths, values[starts[owner] + offset]


def last_items(indptr: np.ndarray, items: np.ndarray, users: np.ndarray, length: int, pad: int) -> np.ndarray:
    """Windows [len(users), length] int64 of each user's last `length` items of a CSR (e.g.
    ``split.history("test")``), oldest first, right-aligned, empty slots = `pad`."""
    users = np.asarray(users, dtype=np.int64)
    owner, offset, lengths, values = _segments(indptr, items, users)
    slot = offset - (lengths[owner] - length)
    kept = slot >= 0
    windows = np.full((len(users), length), pad, dtype=np.int64)
    windows[owner[kept], slot[kept]] = values[kept]
    return windows


def _episode_plan(split: Split, initial_items: int):
    """Per user, as CSR (indptr, items): the initial items and the targets."""
    indptr, items = split.csr("train")
    counts = np.diff(indptr)
    n_initial = np.minimum(initial_items, np.maximum(counts - 1, 0))
    owners = np.repeat(np.arange(split.n_users), counts)
    is_initial = np.arange(len(items)) - indptr[owners] < n_initial[owners]
    keys = owners * np.int64(split.n_items) + items   # one key per (user, item)
    candidate_rows = np.flatnonzero(~is_initial & ~np.isin(keys, keys[is_initial]))
    _, first = np.unique(keys[candidate_rows], return_index=True)
    target_rows = candidate_rows[np.sort(first)]   # first occurrence, log order
    initial_ptr = np.concatenate([[0], np.cumsum(n_initial)])
    target_ptr = np.concatenate([[0], np.cumsum(np.bincount(owners[target_rows], minlength=split.n_users))])
    return initial_ptr, items[is_initial], target_ptr, items[target_rows]


def _int_at_least(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


class OfflineRecSetup:
    """What both environments share: every user's episode plan, the item embedding table,
    the spaces, the observation layout and the checks of actions and forced users.
    Arguments: as ``OfflineRecEnv``."""

    def __init__(self, split: Split, users: np.ndarray | None = None, history_len: int = 10,
                 slate_size: int = 10, action_interface: str = "continuous", embedding_dim: int = 32,
                 max_steps: int = 50, initial_items: int | None = None, observation: str = "vector",
                 item_embeddings: np.ndarray | None = None):
        if action_interface not in ACTION_INTERFACES:
            raise ValueError(f"action_interface must be one of {ACTION_INTERFACES}; got {action_interface!r}")
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}; got {observation!r}")
        self.n_users, self.n_items = split.n_users, split.n_items
        self.history_len = _int_at_least("history_len", history_len)
        self.slate_size = _int_at_least("slate_size", slate_size)
        self.embedding_dim = _int_at_least("embedding_dim", embedding_dim)
        self.max_steps = _int_at_least("max_steps", max_steps)
        self.initial_items = _int_at_least("initial_items", self.history_len if initial_items is None else initial_items, 0)
        self.action_interface, self.observation = action_interface, observation
        self.max_reward = float(self.slate_size)
        if self.initial_items > self.history_len:
            raise ValueError(f"initial_items ({self.initial_items}) must be at most history_len ({self.history_len})")
        if self.slate_size > self.n_items:
            raise ValueError(f"slate_size ({self.slate_size}) exceeds the number of items ({self.n_items})")
        self.plan_episodes(split, users)
        self.item_embeddings = self._embedding_table(split, item_embeddings)
        #: E with one extra zero row at index n_items, the pad id: an empty slot embeds to zeros.
        self.padded_embeddings = np.vstack([self.item_embeddings, np.zeros((1, self.embedding_dim), np.float32)])
        self.user_features = self._features(split)
        self.components = self._components()
        self.observation_space = self._observation_space()
        if action_interface == "discrete":
            self.action_space = spaces.MultiDiscrete(np.full(self.slate_size, self.n_items, dtype=np.int64))
        else:
            self.action_space = spaces.Box(-1.0, 1.0, (self.embedding_dim,), np.float32)

    def plan_episodes(self, split: Split, users: np.ndarray | None) -> None:
        """Every user's initial items and targets, and the users episodes are drawn from."""
        needed = self.initial_items + self.slate_size * self.max_steps
        if self.action_interface == "continuous" and self.n_items < needed:
            raise ValueError(f"the continuous interface needs n_items >= initial_items + slate_size * max_steps "
                             f"= {needed} so that every slate can be filled with unshown items; split "
                             f"{split.name!r} has {self.n_items} items: lower max_steps or slate_size")
        self.initial_ptr, self.initial_item_ids, self.target_ptr, self.target_items = _episode_plan(split, self.initial_items)
        self.n_targets = np.diff(self.target_ptr)
        self.users = self._episode_users(users, split.name)

    def _episode_users(self, users: np.ndarray | None, where: str) -> np.ndarray:
        if users is None:
            users = np.flatnonzero(self.n_targets > 0)
            if len(users) == 0:
                raise ValueError(f"split {where!r}: no user has a train item left to discover "
                                 f"(initial_items={self.initial_items})")
            return users
        return self.check_users(users, where="users")

    def check_users(self, users: Any, where: str, count: int | None = None) -> np.ndarray:
        """`users` as int64, each a valid id with whom an episode can start."""
        users = np.asarray(users)
        if users.ndim != 1 or not np.issubdtype(users.dtype, np.integer) or len(users) == 0:
            raise ValueError(f"{where}: expected a non-empty 1-d array of integer user ids; got {users!r}")
        if count is not None and len(users) != count:
            raise ValueError(f"{where}: expected {count} user ids; got {len(users)}")
        out_of_range = users[(users < 0) | (users >= self.n_users)]
        if len(out_of_range):
            raise ValueError(f"{where}: user ids {out_of_range[:5].tolist()} are outside [0, {self.n_users})")
        unplayable = users[~self.playable(users)]
        if len(unplayable):
            raise ValueError(f"{where}: users {unplayable[:5].tolist()} {self.why_unplayable()}")
        return users.astype(np.int64)

    def playable(self, users: np.ndarray) -> np.ndarray:
        """bool per user: whether an episode can start with them."""
        return self.n_targets[users] > 0

    def why_unplayable(self) -> str:
        return f"have no train item left to discover after their {self.initial_items} initial items"

    def _embedding_table(self, split: Split, table: np.ndarray | None) -> np.ndarray:
        if table is None:
            return item_embedding_table(split, self.embedding_dim)
        table = np.asarray(table, dtype=np.float32)
        if table.shape != (self.n_items, self.embedding_dim):
            raise ValueError(f"item_embeddings has shape {table.shape}; expected (n_items, embedding_dim) "
                             f"= {(self.n_items, self.embedding_dim)}")
        if not np.isfinite(table).all() or np.abs(table).max() > 1.0:
            raise ValueError("item_embeddings must be finite and within [-1, 1]")
        return table

    def _features(self, split: Split) -> np.ndarray | None:
        if split.user_features is None:
            return None
        features = np.asarray(split.user_features, dtype=np.float32)
        if features.ndim != 2 or features.shape[0] != self.n_users:
            raise ValueError(f"split {split.name!r}: user_features has shape {features.shape}; "
                             f"expected (n_users={self.n_users}, f)")
        return features

    def _components(self) -> dict[str, slice]:
        if self.observation != "vector":
            return {}
        d = self.embedding_dim
        components = {f"history_{j}": slice(j * d, (j + 1) * d) for j in range(self.history_len)}
        if self.user_features is not None:
            components["user_features"] = slice(self.history_len * d, self.history_len * d + self.user_features.shape[1])
        return components

    def _observation_space(self) -> spaces.Space:
        window = spaces.MultiDiscrete(np.full(self.history_len, self.n_items + 1, dtype=np.int64))
        if self.observation == "ids":
            return spaces.Dict({"history": window, "skipped": window, "user": spaces.Discrete(self.n_users)})
        n_features = 0 if self.user_features is None else self.user_features.shape[1]
        n_history = self.history_len * self.embedding_dim
        low = np.concatenate([np.full(n_history, -1.0), np.full(n_features, -np.inf)]).astype(np.float32)
        return spaces.Box(low, -low, dtype=np.float32)

    def observe(self, users: np.ndarray, history: np.ndarray) -> np.ndarray:
        """Vector observations [len(users), N*d + f] of history windows [len(users), N]
        (right-aligned, padded with n_items, as ``last_items`` makes them)."""
        parts = [self.padded_embeddings[history].reshape(len(users), -1)]
        if self.user_features is not None:
            parts.append(self.user_features[users])
        return np.concatenate(parts, axis=1)

    def check_action(self, action: Any, batch_shape: tuple[int, ...] = ()) -> np.ndarray:
        """The action as int64 item ids or float32 scores vector(s); ValueError when invalid."""
        if isinstance(action, torch.Tensor):
            action = action.detach().cpu().numpy()
        action = np.asarray(action)
        expected = (*batch_shape, *self.action_space.shape)
        if action.shape != expected:
            raise ValueError(f"{self.action_interface} action has shape {action.shape}; expected {expected}")
        if self.action_interface == "discrete":
            if not np.issubdtype(action.dtype, np.integer):
                raise ValueError(f"discrete action must hold integer item ids; got dtype {action.dtype}")
            bad = np.argwhere((action < 0) | (action >= self.n_items))
            if len(bad):
                raise ValueError(f"discrete action holds item id {action[tuple(bad[0])]} at index {tuple(bad[0].tolist())}; "
                                 f"item ids are in [0, {self.n_items})")
            return action.astype(np.int64)
        if not (np.issubdtype(action.dtype, np.floating) or np.issubdtype(action.dtype, np.integer)):
            raise ValueError(f"continuous action must be numeric; got dtype {action.dtype}")
        bad = np.argwhere(~np.isfinite(action) | (np.abs(action) > 1.0))
        if len(bad):
            raise ValueError(f"continuous action holds {action[tuple(bad[0])]} at index {tuple(bad[0].tolist())}; "
                             f"expected finite values in [-1, 1] (clip the action)")
        return action.astype(np.float32)


class OfflineRecEnv(gym.Env):
    """One user's replayed log per episode. Arguments:

    split: the dataset split (its train part is the replayed log).
    users: ids episodes are drawn from (default: every user with a target).
    history_len (N), slate_size (k), embedding_dim (d), max_steps, initial_items,
    action_interface ("discrete" | "continuous"), observation ("vector" | "ids"),
    item_embeddings (optional [n_items, d] table), seed (of the user draws).
    """

    metadata = {"render_modes": []}

    def __init__(self, split: Split, users: np.ndarray | None = None, history_len: int = 10,
                 slate_size: int = 10, action_interface: str = "continuous", embedding_dim: int = 32,
                 max_steps: int = 50, initial_items: int | None = None, observation: str = "vector",
                 item_embeddings: np.ndarray | None = None, seed: int | None = None):
        self.setup = OfflineRecSetup(split, users, history_len, slate_size, action_interface, embedding_dim,
                                     max_steps, initial_items, observation, item_embeddings)
        self.observation_space = self.setup.observation_space
        self.action_space = self.setup.action_space
        self.components = self.setup.components
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._user: int | None = None
        self._ended = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        setup = self.setup
        if options and "user" in options:
            user = int(setup.check_users([options["user"]], where='options["user"]')[0])
        else:
            user = int(setup.users[self.np_random.integers(len(setup.users))])
        initial = setup.initial_item_ids[setup.initial_ptr[user]:setup.initial_ptr[user + 1]]
        self._user = user
        self._history = initial.tolist()   # oldest first
        self._skipped: list[int] = []
        self._targets = set(setup.target_items[setup.target_ptr[user]:setup.target_ptr[user + 1]].tolist())
        self._shown = np.zeros(setup.n_items, dtype=bool)
        self._shown[initial] = True
        self._steps = 0
        self._ended = False
        return self._observation(), {"user": user}

    def step(self, action):
        if self._user is None or self._ended:
            raise RuntimeError("call reset() first: no episode is running")
        setup = self.setup
        action = setup.check_action(action)
        slate = action if setup.action_interface == "discrete" else self._best_unshown(action)
        hits = np.zeros(setup.slate_size, dtype=bool)
        in_slate: set[int] = set()
        for slot, item in enumerate(slate.tolist()):
            if item in in_slate:
                continue   # a repeat in the same slate earns nothing and is no new skip
            in_slate.add(item)
            if item in self._targets:
                hits[slot] = True
                self._targets.remove(item)
                self._history.append(item)
            else:
                self._skipped.append(item)
        self._shown[slate] = True
        self._history = self._history[-setup.history_len:]
        self._skipped = self._skipped[-setup.history_len:]
        self._steps += 1
        terminated = not self._targets
        truncated = self._steps >= setup.max_steps
        self._ended = terminated or truncated
        info = {"user": self._user, "slate": slate, "hits": hits, "slot_rewards": hits.astype(np.float32),
                "n_remaining": len(self._targets)}
        return self._observation(), float(hits.sum()), terminated, truncated, info

    def _best_unshown(self, action: np.ndarray) -> np.ndarray:
        """The k unshown items of highest E[i] . a, by score then lower id."""
        scores = self.setup.item_embeddings @ action
        candidates = np.flatnonzero(~self._shown)
        order = np.lexsort((candidates, -scores[candidates]))
        return candidates[order[:self.setup.slate_size]]

    def _window(self, items: list[int]) -> np.ndarray:
        window = np.full(self.setup.history_len, self.setup.n_items, dtype=np.int64)
        if items:
            window[-len(items):] = items
        return window

    def _observation(self):
        history = self._window(self._history)
        if self.setup.observation == "vector":
            return self.setup.observe(np.array([self._user]), history[None])[0]
        return {"history": history, "skipped": self._window(self._skipped), "user": np.int64(self._user)}


class BatchedOfflineRecEnv(VectorEnv):
    """``num_envs`` copies of ``OfflineRecEnv``'s dynamics stepped together with torch
    array operations on ``device``; SAME_STEP autoreset with ``info["final_obs"]`` (see
    the module docstring). Other arguments: as ``OfflineRecEnv``."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, split: Split, num_envs: int, users: np.ndarray | None = None, history_len: int = 10,
                 slate_size: int = 10, action_interface: str = "continuous", embedding_dim: int = 32,
                 max_steps: int = 50, initial_items: int | None = None, observation: str = "vector",
                 item_embeddings: np.ndarray | None = None, seed: int | None = None,
                 device: str | torch.device = "cpu"):
        self._allocate(OfflineRecSetup(split, users, history_len, slate_size, action_interface, embedding_dim,
                                       max_steps, initial_items, observation, item_embeddings), num_envs, seed, device)

    def _allocate(self, setup: OfflineRecSetup, num_envs: int, seed: int | None, device: str | torch.device) -> None:
        """Spaces and the per-environment episode state, for `num_envs` copies of `setup`."""
        self.setup = setup
        self.num_envs = _int_at_least("num_envs", num_envs)
        self.single_observation_space = setup.observation_space
        self.single_action_space = setup.action_space
        self.observation_space = batch_space(setup.observation_space, self.num_envs)
        self.action_space = batch_space(setup.action_space, self.num_envs)
        self.components = setup.components
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self.device = torch.device(device)
        self._embeddings = torch.from_numpy(setup.padded_embeddings).to(self.device)
        self._item_matrix = self._embeddings[:-1].T.contiguous()   # [d, n_items], for scoring
        self._features = None if setup.user_features is None else torch.from_numpy(setup.user_features).to(self.device)
        shape, pad = (self.num_envs, setup.history_len), setup.n_items
        self._user = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self._history = torch.full(shape, pad, dtype=torch.int64, device=self.device)
        self._skipped = torch.full(shape, pad, dtype=torch.int64, device=self.device)
        self._targets = torch.zeros(self.num_envs, setup.n_items, dtype=torch.bool, device=self.device)
        #: 0 for items not shown in the episode, -inf for shown ones (initial items included).
        self._shown_bias = torch.zeros(self.num_envs, setup.n_items, device=self.device)
        self._remaining = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self._steps = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self._started = False

    def available(self) -> torch.Tensor:
        """bool [num_envs, n_items]: the items a slate may still earn something with (not
        shown in the episode; not an initial or consumed item)."""
        return self._shown_bias == 0

    @property
    def episode_users(self) -> np.ndarray:
        return self._user.cpu().numpy().copy()

    # The state that steps change (everything else follows from the constructor's arguments).
    _EPISODE_STATE = ("_user", "_history", "_skipped", "_targets", "_shown_bias", "_remaining", "_steps", "_started")

    def state_dict(self) -> dict[str, Any]:
        """Where every user's episode stands and the generator's state: with the same
        constructor arguments, ``load_state_dict`` continues exactly from here (resumable
        training, imrl/checkpoint.py)."""
        state = {name: getattr(self, name) for name in self._EPISODE_STATE}
        state["np_random"] = self.np_random.bit_generator.state
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self._EPISODE_STATE:
            value = state[name]
            setattr(self, name, value.to(self.device) if isinstance(value, torch.Tensor) else value)
        self.np_random.bit_generator.state = state["np_random"]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        starts = self._forced_starts(options) if options else None
        if starts is None:
            starts = self._draw_starts(self.num_envs)
        self._start(np.arange(self.num_envs), starts)
        self._started = True
        return self._observation(), {"user": self.episode_users}

    def _forced_starts(self, options: dict[str, Any]) -> np.ndarray | None:
        """The episode starts `reset`'s options ask for (here: ``{"users": [...]}``), or None."""
        if "users" not in options:
            return None
        return self.setup.check_users(options["users"], where='options["users"]', count=self.num_envs)

    def _slates(self, actions) -> torch.Tensor:
        """The slates [num_envs, k] that `actions` show: the item ids, or a continuous
        action's best unshown items."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = torch.from_numpy(self.setup.check_action(actions, (self.num_envs,))).to(self.device)
        return actions if self.setup.action_interface == "discrete" else self._best_unshown(actions)

    def step(self, actions):
        slate = self._slates(actions)
        first = first_in_slate(slate)
        hits = self._targets.gather(1, slate) & first
        rewards = hits.sum(dim=1)
        self._targets.scatter_(1, slate, False)          # hits are consumed; the rest were no targets
        self._shown_bias.scatter_(1, slate, -torch.inf)
        self._remaining -= rewards
        self._history = self._append(self._history, slate, hits)
        self._skipped = self._append(self._skipped, slate, first & ~hits)
        hits_np = hits.cpu().numpy()
        info = {"user": self.episode_users, "slate": slate.cpu().numpy(), "hits": hits_np,
                "slot_rewards": hits_np.astype(np.float32), "n_remaining": self._remaining.cpu().numpy().copy()}
        return self._end_step(rewards.to(torch.float32), self._remaining == 0, info)

    def _end_step(self, rewards: torch.Tensor, terminated: torch.Tensor, info: dict[str, Any]):
        """Count the step, truncate at max_steps, restart ended episodes in place (SAME_STEP
        autoreset: ``info["final_obs"]``), and return gymnasium's step tuple."""
        self._steps += 1
        terminated = terminated.cpu().numpy()
        truncated = (self._steps >= self.setup.max_steps).cpu().numpy()
        final_obs = self._observation()
        ended = terminated | truncated
        obs = final_obs
        if ended.any():
            rows = np.flatnonzero(ended)
            self._start(rows, self._draw_starts(len(rows)))
            obs = _with_rows(final_obs, rows, self._observation(torch.from_numpy(rows).to(self.device)))
        info["final_obs"], info["_final_obs"] = final_obs, ended
        return obs, rewards.cpu().numpy(), terminated, truncated, info

    def _draw_starts(self, count: int) -> np.ndarray:
        """Where `count` new episodes start (here: their users, drawn uniformly)."""
        return self.setup.users[self.np_random.integers(len(self.setup.users), size=count)]

    def _start(self, rows: np.ndarray, users: np.ndarray) -> None:
        """Begin new episodes of `users` in sub-environments `rows`."""
        setup, device = self.setup, self.device
        rows_t = torch.from_numpy(rows).to(device)
        windows = last_items(setup.initial_ptr, setup.initial_item_ids, users, setup.history_len, setup.n_items)
        self._history[rows_t] = torch.from_numpy(windows).to(device)
        self._skipped[rows_t] = setup.n_items
        self._shown_bias[rows_t] = 0.0
        self._targets[rows_t] = False
        owner, _, _, initial = _segments(setup.initial_ptr, setup.initial_item_ids, users)
        self._shown_bias[rows_t[torch.from_numpy(owner).to(device)], torch.from_numpy(initial).to(device)] = -torch.inf
        owner, _, _, targets = _segments(setup.target_ptr, setup.target_items, users)
        self._targets[rows_t[torch.from_numpy(owner).to(device)], torch.from_numpy(targets).to(device)] = True
        self._remaining[rows_t] = torch.from_numpy(setup.n_targets[users]).to(device)
        self._steps[rows_t] = 0
        self._user[rows_t] = torch.from_numpy(users).to(device)

    def _best_unshown(self, actions: torch.Tensor) -> torch.Tensor:
        """Per env, the k unshown items of highest E[i] . a, by score then lower id."""
        k = self.setup.slate_size
        scores = torch.addmm(self._shown_bias, actions, self._item_matrix)   # E a, -inf where shown
        top_scores, slate = scores.topk(min(k + 1, self.setup.n_items), dim=1)
        slate = slate[:, :k]
        if top_scores.shape[1] > k:   # the (k+1)-th best equals the k-th: ties at the boundary
            tied = top_scores[:, k] == top_scores[:, k - 1]
            if tied.any():
                slate[tied] = _lowest_ids_first(scores[tied], top_scores[tied, k - 1:k], k)
        slate = slate.sort(dim=1).values
        by_score = scores.gather(1, slate).sort(dim=1, descending=True, stable=True).indices
        return slate.gather(1, by_score)

    def _append(self, window: torch.Tensor, slate: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        """The window after appending the kept slate items in slot order (last N kept)."""
        pad = self.setup.n_items
        valid = torch.cat([window != pad, kept], dim=1)
        combined = torch.cat([window, slate], dim=1).masked_fill_(~valid, pad)
        order = valid.to(torch.uint8).sort(dim=1, stable=True).indices   # invalid first, order kept
        return combined.gather(1, order[:, -self.setup.history_len:])

    def _observation(self, rows: torch.Tensor | None = None):
        user, history = (self._user, self._history) if rows is None else (self._user[rows], self._history[rows])
        if self.setup.observation == "ids":
            skipped = self._skipped if rows is None else self._skipped[rows]
            return {"history": history.cpu().numpy().copy(), "skipped": skipped.cpu().numpy().copy(),
                    "user": user.cpu().numpy().copy()}
        parts = [self._embeddings.index_select(0, history.flatten()).view(len(history), -1)]
        if self._features is not None:
            parts.append(self._features.index_select(0, user))
        return torch.cat(parts, dim=1).cpu().numpy()


def first_in_slate(slate: torch.Tensor) -> torch.Tensor:
    """bool [B, k]: slot j holds an item that no earlier slot of its slate holds."""
    same = slate[:, :, None] == slate[:, None, :]   # [env, slot j, slot i]
    return ~same.tril(diagonal=-1).any(dim=2)


def _lowest_ids_first(scores: torch.Tensor, boundary: torch.Tensor, k: int) -> torch.Tensor:
    """Rows of k ids: every item above `boundary`, then the lowest ids at it."""
    above = scores > boundary
    at = scores == boundary
    room = k - above.sum(dim=1, keepdim=True)
    chosen = above | (at & (at.cumsum(dim=1) <= room))
    return chosen.nonzero()[:, 1].view(-1, k)


def _with_rows(batch, rows: np.ndarray, new):
    """A copy of a batched observation (array or dict of arrays) with `rows` replaced."""
    if isinstance(batch, dict):
        return {key: _with_rows(value, rows, new[key]) for key, value in batch.items()}
    out = batch.copy()
    out[rows] = new
    return out
