"""What the supervised sequential baselines share, and nothing else: left-padded item
windows cut from a Split's CSR arrays, training examples as index arithmetic on those
arrays, and one training loop (Adam, early stopping on the validation split, best
weights restored by the selection every RL method uses too, imrl/eval/selection.py)
that takes its seed, device, budget and progress bar from the run context. Each method file (sasrec, stamp, casr, causerec, cocorec) holds its network, its
loss and its scoring, and reads top to bottom.

Token convention: token = item id + 1, token 0 = padding. Scores cover tokens 1..n_items
only, so padding is never scored.
"""

from __future__ import annotations

import copy
import time
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from imrl.api import Method, OfflineMethod, RunContext
from imrl.checkpoint import Checkpointer
from imrl.data.split import Split
from imrl.eval.ranking import evaluate
from imrl.eval.selection import ValidationSelection

PAD = 0

#: Training-loop settings every sequential method accepts (each method adds its own).
LOOP_DEFAULTS: dict[str, Any] = {
    "epochs": 200,            # maximum; ctx.budget["epochs"] overrides it
    "patience": 10,           # epochs without improvement before stopping (RecBole's stopping_step)
    "valid_metric": "recall@20",
    "clip_grad_norm": None,
    "adam_betas": (0.9, 0.999),
}


def windows(items: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, max_len: int) -> torch.Tensor:
    """Tokens [B, max_len]: items[ends-max_len : ends] (ends exclusive), keeping only
    positions at or after `starts` (the owner's first position), left-padded with PAD."""
    positions = ends[:, None] + torch.arange(-max_len, 0, device=items.device)
    real = positions >= starts[:, None]
    return torch.where(real, items[positions.clamp(min=0)] + 1, PAD)


def random_subset(candidates: torch.Tensor, quota: torch.Tensor | int, generator: torch.Generator) -> torch.Tensor:
    """Per row, a uniformly random subset of min(quota, count) of the True entries of
    `candidates` [B, L] (quota: an int or a [B, 1] tensor)."""
    keys = torch.rand(candidates.shape, generator=generator, device=candidates.device)
    keys = keys.masked_fill(~candidates, 2.0)                  # non-candidates rank last
    rank = keys.argsort(dim=1).argsort(dim=1)
    return (rank < quota) & candidates


class Examples:
    """Training examples, nothing materialised: example k belongs to users[k] and its
    (last) target is the train item at global CSR position ends[k].

    mode "prefix": one target per example, predicted from the max_len items before it;
    mode "sequence": targets are the window's items shifted by one (every position of a
    window is trained, as in SASRec). Explicit examples (e.g. CASR's counterfactual
    sequences) can be appended; they are "prefix" examples given as tokens."""

    def __init__(self, items: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, users: torch.Tensor,
                 mode: str, max_len: int):
        if mode not in ("prefix", "sequence"):
            raise ValueError(f"unknown example mode {mode!r}; expected 'prefix' or 'sequence'")
        self.items, self.starts, self.ends, self.users = items, starts, ends, users
        self.mode, self.max_len = mode, max_len
        self.extra_inputs = self.extra_targets = self.extra_users = None

    @classmethod
    def from_split(cls, split: Split, mode: str, max_len: int, device: torch.device,
                   windows_per_user: str = "all") -> "Examples":
        """mode "prefix": every train item but a user's first is a target. mode "sequence":
        windows_per_user "last" keeps each user's latest window only (the SASRec paper),
        "all" cuts the whole train sequence into consecutive windows."""
        indptr, items = split.csr("train")
        first, last = indptr[:-1], indptr[1:] - 1          # last < first for users without train items
        if mode == "prefix":
            counts = np.maximum(last - first, 0)
            users = np.repeat(np.arange(split.n_users), counts)
            ends = np.repeat(first + 1, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        elif windows_per_user == "last":
            users = np.flatnonzero(last > first)
            ends = last[users]
        elif windows_per_user == "all":
            n_windows = np.where(last > first, np.ceil((last - first) / max_len), 0).astype(np.int64)
            users = np.repeat(np.arange(split.n_users), n_windows)
            back = np.arange(len(users)) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
            ends = last[users] - back * max_len
        else:
            raise ValueError(f"unknown windows_per_user {windows_per_user!r}; expected 'last' or 'all'")
        as_tensor = lambda a: torch.as_tensor(np.asarray(a, dtype=np.int64), device=device)  # noqa: E731
        return cls(as_tensor(items), as_tensor(first[users]), as_tensor(ends), as_tensor(users), mode, max_len)

    def add(self, inputs: torch.Tensor, targets: torch.Tensor, users: torch.Tensor) -> None:
        """Append explicit prefix examples: tokens [N, max_len], target tokens [N], users [N]."""
        if self.mode != "prefix" or inputs.shape[1] != self.max_len:
            raise ValueError("explicit examples must be prefix examples of the same max_len")
        self.extra_inputs, self.extra_targets, self.extra_users = inputs, targets, users

    def __len__(self) -> int:
        return len(self.ends) + (0 if self.extra_inputs is None else len(self.extra_inputs))

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs [B, L], targets [B] or [B, L], users [B]) for example ids `index`."""
        n_index = len(self.ends)
        own = index[index < n_index]
        starts, ends = self.starts[own], self.ends[own]
        inputs = windows(self.items, starts, ends, self.max_len)
        if self.mode == "prefix":
            targets = self.items[ends] + 1
        else:
            targets = windows(self.items, starts + 1, ends + 1, self.max_len)
        users = self.users[own]
        if self.extra_inputs is not None:
            extra = index[index >= n_index] - n_index
            inputs = torch.cat([inputs, self.extra_inputs[extra]])
            targets = torch.cat([targets, self.extra_targets[extra]])
            users = torch.cat([users, self.extra_users[extra]])
        return inputs, targets, users


class SequentialRecommender(OfflineMethod):
    """Base of the supervised sequential baselines. A subclass sets ``defaults`` (the
    paper's hyper-parameters plus LOOP_DEFAULTS) and implements ``build``, ``loss`` and
    ``scores``; ``fit`` and ``score`` are shared."""

    uses_gpu: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {}
    example_mode: ClassVar[str] = "prefix"

    def __init__(self, params: dict[str, Any], ctx: RunContext):
        super().__init__(params, ctx)          # merges params over `defaults`, rejects unknown keys
        self.device = torch.device(ctx.device)
        self.train_log: list[dict[str, float]] = []   # one row per epoch: loss, valid metric, seconds
        self.model: nn.Module | None = None

    # --- to implement -------------------------------------------------------------
    def build(self, split: Split) -> nn.Module:
        raise NotImplementedError

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, tokens: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """Scores [B, n_items] of the next item after the windows `tokens` [B, L]."""
        raise NotImplementedError

    def examples(self, split: Split) -> Examples:
        return Examples.from_split(split, self.example_mode, self.params["max_len"], self.device)

    def refresh(self) -> None:
        """Hook run before each epoch and after the best weights are restored (CoCoRec
        rebuilds its neighbour memory here)."""

    # --- shared ----------------------------------------------------------------------
    @property
    def max_epochs(self) -> int:
        return int(self.ctx.budget.get("epochs", self.params["epochs"]))

    def fit(self, split: Split) -> None:
        torch.manual_seed(self.ctx.seed)                   # initialisation and dropout
        self.split = split
        self._histories = {}
        self.model = self.build(split).to(self.device)
        self.train(self.examples(split))

    def train(self, examples: Examples) -> None:
        """Adam over shuffled mini-batches; after each epoch the valid metric decides
        early stopping; the best epoch's weights are restored. Between epochs the loop
        saves its state when a checkpoint is due and resumes from the last save."""
        hp = self.params
        checkpoint = Checkpointer(self.ctx, "offline", type(self))
        saved = checkpoint.restore()
        if saved is None:
            # The initial weights stay if no epoch validates (a NaN metric, no epoch at all).
            selection = ValidationSelection(every=1, metric=hp["valid_metric"],
                                            best_state=copy.deepcopy(self.model.state_dict()))
            loop = {"epoch": 0, "selection": selection,
                    "optimiser": torch.optim.Adam(self.model.parameters(), lr=hp["lr"], betas=tuple(hp["adam_betas"])),
                    "shuffle": self.ctx.generator(offset=1)}
        else:
            loop = saved["loop"]
            vars(self).update(saved["method"])
        model, optimiser, selection = self.model, loop["optimiser"], loop["selection"]
        bar = tqdm(range(loop["epoch"], self.max_epochs), desc=type(self).__name__, disable=not self.ctx.progress)
        for epoch in bar:
            started = time.perf_counter()
            self.refresh()
            model.train()
            order = torch.randperm(len(examples), generator=loop["shuffle"], device=self.device)
            total, n_batches = 0.0, 0
            for index in order.split(hp["batch_size"]):
                loss = self.loss(*examples.batch(index))
                optimiser.zero_grad()
                loss.backward()
                if hp["clip_grad_norm"]:
                    nn.utils.clip_grad_norm_(model.parameters(), hp["clip_grad_norm"])
                optimiser.step()
                total, n_batches = total + loss.item(), n_batches + 1
            train_seconds = time.perf_counter() - started
            metric = self.validate()
            self.train_log.append({"epoch": epoch, "loss": total / max(n_batches, 1), hp["valid_metric"]: metric,
                                   "train_seconds": train_seconds})
            bar.set_postfix(loss=f"{total / max(n_batches, 1):.4f}", **{hp["valid_metric"]: f"{metric:.4f}"})
            loop["epoch"] = epoch + 1
            selection.record(loop["epoch"], metric, lambda: copy.deepcopy(model.state_dict()))
            if loop["epoch"] - selection.best_updates >= hp["patience"]:   # epochs since the best
                break
            if loop["epoch"] < self.max_epochs and checkpoint.due():
                checkpoint.save({"where": f"epoch {loop['epoch']} of {self.max_epochs}", "loop": loop,
                                 "method": self.training_state()})
        model.load_state_dict(selection.best_state)
        self.diagnostics = {"validation_selection": selection.summary()}
        self.refresh()
        self.ctx.log(f"{type(self).__name__}: {len(self.train_log)} epochs, "
                     f"best valid {hp['valid_metric']} {selection.best:.4f}")

    def training_state(self) -> dict[str, Any]:
        """What training changes in the method's attributes (the model, logs, memories,
        generators): everything but the inputs that ``fit`` rebuilds from the split (the
        split, its caches, other methods trained before this one, e.g. CASR's anchor)."""
        return {name: value for name, value in vars(self).items()
                if name not in ("ctx", "params", "_histories") and not isinstance(value, (Split, Method))}

    def validate(self) -> float:
        """The valid metric (e.g. recall@20) from the project's evaluator."""
        k = int(self.params["valid_metric"].split("@")[1])
        result = evaluate(lambda users: self.score(users, "valid"), self.split, "valid", [k], device=self.device,
                          name=type(self).__name__)
        return result.as_dict()[self.params["valid_metric"]]

    def history_tokens(self, users: torch.Tensor, phase: str) -> torch.Tensor:
        """The last max_len items each user consumed before `phase`, as tokens [B, L]."""
        if phase not in self._histories:
            indptr, items = self.split.history(phase)
            with torch.inference_mode(False):   # a cache: not an inference tensor, even when built in evaluation
                self._histories[phase] = (torch.as_tensor(indptr, device=self.device),
                                          torch.as_tensor(items, device=self.device))
        indptr, items = self._histories[phase]
        users = users.to(self.device)
        return windows(items, indptr[users], indptr[users + 1], self.params["max_len"])

    @torch.no_grad()
    def score(self, users: torch.Tensor, phase: str) -> torch.Tensor:
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__}.score called before fit")
        was_training = self.model.training
        self.model.eval()
        out = self.scores(self.history_tokens(users, phase), users.to(self.device))
        self.model.train(was_training)
        return out
