"""The user-model environment: the offline environment of the IMRL paper. Its Section
IV-A1 turns the offline datasets into environments with "the same strategy in previous
work [32]": Chen et al., "Generative Adversarial User Model for Reinforcement Learning
Based Recommendation System" (ICML 2019), where a *user model learned from the logs*
plays the user. PROTOCOL.md, section "Offline environments", sets [32]'s definitions
beside ours.

User model ([32], Section 4: the user picks one item of the displayed set, or none, by
a softmax over a learned utility; the state is the user's history). Ours:

    h(s)      = GRU over the embeddings of the last N history items (+ W_f x_u, the
                user's features where the dataset has them)
    u(s, i)   = h(s) . e_i + b_i                       utility of item i
    u(s, 0)   = log sum_i exp u(s, i)                  utility of "no click"
    P(i | s, A) = exp u(s, i) / (exp u(s, 0) + sum_{j in A} exp u(s, j)),  i in A or i = 0

It is fitted on the train split only: every train interaction is a choice of the next
item given the items before it (the full catalogue as the displayed set, since logs do
not record what was displayed; cross-entropy), with early stopping on the validation
split's recall@20 from the project's evaluator; the test split is never read. The
"no click" utility is the log-partition over the catalogue: the user clicks a slate item
with the probability that it is what they would have picked from the whole catalogue,
against the alternative of everything else (so P(click | A) = q / (1 + q) with q the
slate's share of the catalogue softmax); [32] learns its own no-click utility from
displayed sets, which logs without impressions cannot provide.

Environment. An episode starts at a random train prefix: a train row drawn uniformly,
the user's items up to and including it are the history (the last N fill the window;
all of them count as consumed and are never clicked again). Each step the agent shows a
slate A of k items; the reward is the slate's expected click ``P(click | A) = sum_{i in
A} P(i | s, A)`` in [0, 1] (dense: a sampled click as the reward learns far less, as
the issue that brought this environment measured); the user then clicks one item or
none, drawn from that distribution with the environment's generator; a clicked item
enters the history window and is consumed, the other slate items enter the skipped
window. Episodes end after ``max_steps`` steps (the horizon; truncation, never
termination). Repeats within a slate and consumed items have no utility (they cannot be
clicked). The continuous interface ranks unshown, unconsumed items by ``E[i] . a`` with
E the user model's item embeddings e_i, L2-normalised (the paper leaves the table free).
Observations, spaces and the SAME_STEP autoreset are ``imrl.envs.offline``'s.

The fitted model is a workflow artefact (``data/processed/<dataset>/user_model/``:
``model.pt``, then ``meta.json`` with its settings and its validation quality), fitted
once per dataset and shared by every RL method and seed.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from imrl.data.split import Split
from imrl.envs.offline import BatchedOfflineRecEnv, OfflineRecSetup, first_in_slate, last_items
from imrl.eval.ranking import evaluate
from imrl.io import atomic_path, atomic_write_json

#: The user model's settings (config ``environment.user_model``).
FIT_DEFAULTS: dict[str, Any] = {
    "history_len": 10,     # N: items of history the model (and the environment's window) reads
    "dim": 32,             # embedding size; the continuous action's size
    "epochs": 40, "patience": 3, "batch_size": 256, "lr": 0.003, "dropout": 0.2,
}
MODEL_FILE, META_FILE = "model.pt", "meta.json"


class UserModel(nn.Module):
    """u(s, i) = h(s) . e_i + b_i with h a GRU over the history window (module docstring)."""

    def __init__(self, n_items: int, dim: int, history_len: int, n_features: int = 0, dropout: float = 0.0):
        super().__init__()
        self.n_items, self.dim, self.history_len, self.n_features = n_items, dim, history_len, n_features
        self.items = nn.Embedding(n_items + 1, dim, padding_idx=n_items)   # row n_items: the empty slot
        nn.init.normal_(self.items.weight, std=dim ** -0.5)
        with torch.no_grad():
            self.items.weight[n_items].zero_()
        self.encoder = nn.GRU(dim, dim, batch_first=True)
        self.features = nn.Linear(n_features, dim) if n_features else None
        self.bias = nn.Parameter(torch.zeros(n_items))
        self.dropout = nn.Dropout(dropout)

    def config(self) -> dict[str, int]:
        return {"n_items": self.n_items, "dim": self.dim, "history_len": self.history_len,
                "n_features": self.n_features}

    def utilities(self, history: Tensor, features: Tensor | None) -> Tensor:
        """u(s, i) [B, n_items] for history windows [B, N] (right-aligned, pad n_items)."""
        _, last = self.encoder(self.dropout(self.items(history)))
        state = last[0]
        if self.features is not None:
            state = state + self.features(features)
        return state @ self.items.weight[:-1].T + self.bias

    @torch.no_grad()
    def item_table(self) -> np.ndarray:
        """e_i with unit L2 norm [n_items, dim] (float32): the environment's item table."""
        table = self.items.weight[:-1].detach().cpu().double()
        return (table / table.norm(dim=1, keepdim=True).clamp(min=1e-12)).float().numpy()


def training_examples(split: Split, history_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every train interaction after a user's first: (windows of the N items before it
    [M, N], the item [M], the user [M])."""
    indptr, items = split.csr("train")
    owners = np.repeat(np.arange(split.n_users), np.diff(indptr))
    rows = np.flatnonzero(np.arange(len(items)) > indptr[owners])   # not a user's first row
    before = rows[:, None] - history_len + np.arange(history_len)
    windows = np.where(before >= indptr[owners[rows]][:, None], items[before.clip(min=0)], split.n_items)
    return windows.astype(np.int64), items[rows], owners[rows]


def _feature_rows(split: Split, users: Tensor, device: torch.device) -> Tensor | None:
    if split.user_features is None:
        return None
    return torch.as_tensor(split.user_features, dtype=torch.float32, device=device)[users]


def fit_user_model(split: Split, params: dict[str, Any] | None = None, seed: int = 0,
                   device: str | torch.device = "cpu", log: Callable[[str], None] = print
                   ) -> tuple[UserModel, dict[str, Any]]:
    """Fit the user model on ``split.train`` (early stopping on ``split.valid``); the model
    with the best validation recall@20, and a report of its quality."""
    unknown = sorted(set(params or {}) - set(FIT_DEFAULTS))
    if unknown:
        raise ValueError(f"user model: unknown setting(s) {unknown}; valid: {sorted(FIT_DEFAULTS)}")
    p = {**FIT_DEFAULTS, **(params or {})}
    device = torch.device(device)
    started = time.perf_counter()
    windows, targets, owners = (torch.from_numpy(a).to(device) for a in training_examples(split, p["history_len"]))
    if len(targets) == 0:
        raise ValueError(f"split {split.name!r}: no user has two train interactions; the user model has nothing to fit")
    n_features = 0 if split.user_features is None else int(split.user_features.shape[1])
    with torch.random.fork_rng(devices=[]):   # initialisation, shuffles and dropout follow `seed` alone
        torch.manual_seed(seed)
        model = UserModel(split.n_items, p["dim"], p["history_len"], n_features, p["dropout"]).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=p["lr"])
        best, history = _fit_epochs(model, optimiser, split, windows, targets, owners, p, device)
    model.load_state_dict(best.pop("state"))
    model.eval()
    report = {"settings": p, "seed": seed, "train_examples": int(len(targets)), "epochs_run": len(history),
              "best_epoch": best.pop("epoch"), "valid": best, "popularity_valid": popularity_quality(split),
              "history": history, "seconds": time.perf_counter() - started}
    log(f"user model: {len(history)} epochs, best valid recall@20 {report['valid']['recall@20']:.4f} "
        f"(popularity {report['popularity_valid']['recall@20']:.4f}), "
        f"log-likelihood {report['valid']['log_likelihood']:.3f}")
    return model, report


def _fit_epochs(model: UserModel, optimiser: torch.optim.Optimizer, split: Split, windows: Tensor, targets: Tensor,
                owners: Tensor, p: dict[str, Any], device: torch.device) -> tuple[dict[str, Any], list[dict]]:
    """Epochs of cross-entropy on the next train item until validation recall@20 has not
    improved for `patience` epochs; the best epoch (its weights under "state") and the log."""
    best: dict[str, Any] = {"recall@20": -1.0, "epoch": -1, "state": None}
    history = []
    for epoch in range(p["epochs"]):
        model.train()
        total = 0.0
        for index in torch.randperm(len(targets), device=device).split(p["batch_size"]):
            logits = model.utilities(windows[index], _feature_rows(split, owners[index], device))
            loss = nn.functional.cross_entropy(logits, targets[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(index)
        quality = validation_quality(model, split, device)
        history.append({"epoch": epoch, "train_loss": total / len(targets), **quality})
        if quality["recall@20"] > best["recall@20"]:
            best = {**quality, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        elif epoch - best["epoch"] >= p["patience"]:
            break
    return best, history


@torch.no_grad()
def validation_quality(model: UserModel, split: Split, device: torch.device) -> dict[str, float]:
    """recall@20 and nDCG@20 of ranking by u(s, .) on the validation split (history:
    train), and the mean log-likelihood of each user's first validation item."""
    model.eval()
    indptr, items = split.history("valid")

    def utilities(users: Tensor) -> Tensor:
        windows = last_items(indptr, items, users.cpu().numpy(), model.history_len, split.n_items)
        return model.utilities(torch.from_numpy(windows).to(device), _feature_rows(split, users, device))

    result = evaluate(utilities, split, "valid", ks=(20,), device=device, name="user model").as_dict()
    valid_ptr, valid_items = split.csr("valid")
    users = np.flatnonzero(np.diff(valid_ptr) > 0)
    log_p = torch.log_softmax(utilities(torch.from_numpy(users).to(device)), dim=1)
    first = torch.from_numpy(valid_items[valid_ptr[users]]).to(device)
    return {"recall@20": result["recall@20"], "ndcg@20": result["ndcg@20"],
            "log_likelihood": float(log_p.gather(1, first[:, None]).mean())}


def popularity_quality(split: Split) -> dict[str, float]:
    """recall@20 and nDCG@20 of the train-popularity ranking on the validation split: the
    bar a user model must clear."""
    counts = torch.from_numpy(np.bincount(split.csr("train")[1], minlength=split.n_items).astype(np.float32))
    result = evaluate(lambda users: counts.expand(len(users), -1).clone(), split, "valid", ks=(20,),
                      name="popularity").as_dict()
    return {"recall@20": result["recall@20"], "ndcg@20": result["ndcg@20"]}


def save_user_model(directory: str | Path, model: UserModel, report: dict[str, Any]) -> None:
    """``model.pt`` then ``meta.json`` (written last: it marks the model complete), atomically."""
    directory = Path(directory)
    with atomic_path(directory / MODEL_FILE) as tmp:
        torch.save({"config": model.config(), "state_dict": model.state_dict()}, tmp)
    atomic_write_json(directory / META_FILE, {**report, "model": model.config()})


def load_user_model(directory: str | Path, split: Split, device: str | torch.device = "cpu") -> UserModel:
    """The fitted model of `split` (its item count and features checked), in eval mode."""
    directory = Path(directory)
    meta_path, model_path = directory / META_FILE, directory / MODEL_FILE
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path}: not found (the user model was not fitted, or fitting did not finish)")
    saved = torch.load(model_path, map_location="cpu", weights_only=True)
    config = saved["config"]
    n_features = 0 if split.user_features is None else int(split.user_features.shape[1])
    if config["n_items"] != split.n_items or config["n_features"] != n_features:
        raise ValueError(f"{model_path}: fitted for {config['n_items']} items and {config['n_features']} user "
                         f"features; split {split.name!r} has {split.n_items} and {n_features}: refit it")
    model = UserModel(**config)
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()


def read_meta(directory: str | Path) -> dict[str, Any]:
    return json.loads((Path(directory) / META_FILE).read_text())


# ----------------------------------------------------------------------------- environment
class UserModelSetup(OfflineRecSetup):
    """``OfflineRecSetup`` with episodes that start at train prefixes and the user model's
    window, item table and reward scale (the expected click: at most 1)."""

    def __init__(self, split: Split, user_model: UserModel, users: np.ndarray | None = None, slate_size: int = 10,
                 action_interface: str = "continuous", max_steps: int = 10, observation: str = "vector"):
        self.model = user_model.eval()
        super().__init__(split, users, user_model.history_len, slate_size, action_interface, user_model.dim,
                         max_steps, 0, observation, user_model.item_table())
        self.max_reward = 1.0

    def plan_episodes(self, split: Split, users: np.ndarray | None) -> None:
        self.train_ptr, self.train_items = split.csr("train")
        self.users = np.flatnonzero(np.diff(self.train_ptr) > 0) if users is None else \
            self.check_users(users, where="users")
        if len(self.users) == 0:
            raise ValueError(f"split {split.name!r}: no user has a train interaction to start an episode from")
        # Start rows: a prefix ends at each train row of the episode users, but the continuous
        # interface needs k * max_steps unconsumed items left to show.
        room = self.n_items - self.slate_size * self.max_steps if self.action_interface == "continuous" else self.n_items
        self.row_owner = np.repeat(np.arange(self.n_users), np.diff(self.train_ptr))
        prefix_length = np.arange(len(self.train_items)) - self.train_ptr[self.row_owner] + 1
        episode_user = np.zeros(self.n_users, dtype=bool)
        episode_user[self.users] = True
        self.start_rows = np.flatnonzero(episode_user[self.row_owner] & (prefix_length <= room))
        if len(self.start_rows) == 0:
            raise ValueError(f"split {split.name!r}: {self.n_items} items leave no room for {self.max_steps} slates "
                             f"of {self.slate_size} unshown items: lower max_steps or slate_size")

    def playable(self, users: np.ndarray) -> np.ndarray:
        return np.diff(self.train_ptr)[users] > 0

    def why_unplayable(self) -> str:
        return "have no train interaction to start an episode from"


class BatchedUserModelEnv(BatchedOfflineRecEnv):
    """``num_envs`` users played by the user model at once (module docstring), on
    ``device``; SAME_STEP autoreset as ``BatchedOfflineRecEnv``. ``reset`` accepts
    ``options={"users": [...], "cuts": [...]}``: each user's episode starts after their
    first ``cut`` train items (1 <= cut <= their number of train items)."""

    def __init__(self, split: Split, num_envs: int, user_model: UserModel, users: np.ndarray | None = None,
                 slate_size: int = 10, action_interface: str = "continuous", max_steps: int = 10,
                 observation: str = "vector", seed: int | None = None, device: str | torch.device = "cpu"):
        setup = UserModelSetup(split, user_model, users, slate_size, action_interface, max_steps, observation)
        self._allocate(setup, num_envs, seed, device)
        self.model = user_model.to(self.device)
        self._consumed = torch.zeros(self.num_envs, setup.n_items, dtype=torch.bool, device=self.device)

    _EPISODE_STATE = (*BatchedOfflineRecEnv._EPISODE_STATE, "_consumed")

    def _forced_starts(self, options: dict[str, Any]) -> np.ndarray | None:
        if "users" not in options:
            return None
        setup = self.setup
        users = setup.check_users(options["users"], where='options["users"]', count=self.num_envs)
        cuts = np.asarray(options.get("cuts", np.diff(setup.train_ptr)[users]))
        lengths = np.diff(setup.train_ptr)[users]
        if cuts.shape != users.shape or not np.issubdtype(cuts.dtype, np.integer) or ((cuts < 1) | (cuts > lengths)).any():
            raise ValueError(f'options["cuts"]: expected {len(users)} integers, each in [1, the user\'s number of '
                             f"train items {lengths.tolist()}]; got {cuts!r}")
        return setup.train_ptr[users] + cuts - 1

    def _draw_starts(self, count: int) -> np.ndarray:
        """Train rows that end the starting prefixes, drawn uniformly."""
        return self.setup.start_rows[self.np_random.integers(len(self.setup.start_rows), size=count)]

    def _start(self, rows: np.ndarray, starts: np.ndarray) -> None:
        setup, device = self.setup, self.device
        users = setup.row_owner[starts]
        cuts = starts - setup.train_ptr[users] + 1
        prefix_ptr = np.concatenate([[0], np.cumsum(cuts)])
        prefix_items = setup.train_items[np.concatenate([np.arange(setup.train_ptr[u], r + 1) for u, r in zip(users, starts)])]
        rows_t = torch.from_numpy(rows).to(device)
        windows = last_items(prefix_ptr, prefix_items, np.arange(len(rows)), setup.history_len, setup.n_items)
        self._history[rows_t] = torch.from_numpy(windows).to(device)
        self._skipped[rows_t] = setup.n_items
        owner = torch.from_numpy(np.repeat(rows, cuts)).to(device)
        self._consumed[rows_t] = False
        self._consumed[owner, torch.from_numpy(prefix_items).to(device)] = True
        self._shown_bias[rows_t] = torch.where(self._consumed[rows_t], -torch.inf, 0.0)
        self._steps[rows_t] = 0
        self._user[rows_t] = torch.from_numpy(users).to(device)

    @torch.no_grad()
    def click_probabilities(self, slate: Tensor) -> Tensor:
        """P(i | s, A) [B, k] of each slot of the slates [B, k] in the current states (a
        repeated or consumed item: 0)."""
        features = None if self._features is None else self._features.index_select(0, self._user)
        utilities = self.model.utilities(self._history, features)
        no_click = utilities.logsumexp(dim=1, keepdim=True)                       # u(s, 0)
        clickable = first_in_slate(slate) & ~self._consumed.gather(1, slate)
        logits = utilities.gather(1, slate).masked_fill(~clickable, -torch.inf)
        return torch.softmax(torch.cat([no_click, logits], dim=1), dim=1)[:, 1:]

    def step(self, actions):
        setup = self.setup
        slate = self._slates(actions)
        probabilities = self.click_probabilities(slate)
        rewards = probabilities.sum(dim=1)                                        # P(click | A)
        # The click: slot j when the draw falls in its share of the cumulative distribution.
        draws = torch.from_numpy(self.np_random.random(self.num_envs)).to(self.device, probabilities.dtype)
        slot = (probabilities.cumsum(dim=1) <= draws[:, None]).sum(dim=1)         # k: no click
        clicks = nn.functional.one_hot(slot, setup.slate_size + 1)[:, :-1].bool() & (probabilities > 0)
        first = first_in_slate(slate)
        self._consumed |= torch.zeros_like(self._consumed).scatter_(1, slate, clicks)
        self._shown_bias.scatter_(1, slate, -torch.inf)
        self._history = self._append(self._history, slate, clicks)
        self._skipped = self._append(self._skipped, slate, first & ~clicks)
        info = {"user": self.episode_users, "slate": slate.cpu().numpy(), "clicks": clicks.cpu().numpy(),
                "slot_rewards": probabilities.cpu().numpy()}
        return self._end_step(rewards, torch.zeros(self.num_envs, dtype=torch.bool, device=self.device), info)


class UserModelEnv(gym.Env):
    """One user at a time: ``BatchedUserModelEnv`` with one sub-environment and no
    autoreset (``reset(options={"user": u, "cut": c})`` forces the start)."""

    metadata = {"render_modes": []}

    def __init__(self, split: Split, user_model: UserModel, seed: int | None = None, **settings: Any):
        self.batched = BatchedUserModelEnv(split, 1, user_model, seed=seed, **settings)
        self.setup = self.batched.setup
        self.observation_space = self.setup.observation_space
        self.action_space = self.setup.action_space
        self._running = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        forced = None
        if options and "user" in options:
            forced = {"users": [options["user"]], **({"cuts": [options["cut"]]} if "cut" in options else {})}
        obs, info = self.batched.reset(seed=seed, options=forced)
        self._running = True
        return _row(obs), {"user": int(info["user"][0])}

    def step(self, action):
        if not self._running:
            raise RuntimeError("call reset() first: no episode is running")
        action = np.asarray(action)[None]
        _, rewards, terminated, truncated, info = self.batched.step(action)
        self._running = not (terminated[0] or truncated[0])
        row = {key: value[0] for key, value in info.items() if key not in ("final_obs", "_final_obs")}
        return _row(info["final_obs"]), float(rewards[0]), bool(terminated[0]), bool(truncated[0]), row


def _row(batch):
    return {key: value[0] for key, value in batch.items()} if isinstance(batch, dict) else batch[0]
