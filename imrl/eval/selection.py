"""Validation-based selection for the RL methods, the rule the supervised methods follow
with early stopping: every ``every`` gradient updates (and once at the end) the policy
is scored on the validation split with the project's evaluator; the policy with the best
validation metric is kept and is the one tested. The test split is not read.

``ValidationSelection`` holds only data (it is checkpointed with its training loop); the
loop gives it the metric and a snapshot of the policy when it is due.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from imrl.data.split import Split
from imrl.eval.ranking import evaluate

#: Budget key: gradient updates between two validations of an RL method.
DEFAULT_EVERY = 500


@dataclass
class ValidationSelection:
    every: int
    metric: str = "recall@20"
    best: float = -math.inf
    best_updates: int = -1
    best_state: Any = None
    evaluations: list[dict[str, float]] = field(default_factory=list)
    next_at: int = 0

    def __post_init__(self):
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"budget: 'validate_every' = {self.every!r}, expected an integer >= 1 (gradient updates)")
        self.next_at = self.next_at or self.every

    def due(self, updates: int) -> bool:
        return updates >= self.next_at

    def record(self, updates: int, value: float, snapshot: Callable[[], Any]) -> None:
        """The validation `value` after `updates` updates; a new best takes ``snapshot()``."""
        self.evaluations.append({"updates": updates, self.metric: value})
        while self.next_at <= updates:
            self.next_at += self.every
        if value > self.best:
            self.best, self.best_updates, self.best_state = value, updates, snapshot()

    def summary(self) -> dict[str, Any]:
        return {"metric": self.metric, "every": self.every, "best": self.best, "best_updates": self.best_updates,
                "evaluations": self.evaluations}


def validation_metric(score: Callable[[torch.Tensor], torch.Tensor], split: Split, metric: str,
                      device: torch.device, modules: list[nn.Module] = ()) -> float:
    """`metric` (e.g. "recall@20") of ranking by ``score(users)`` on the validation split;
    `modules` are put back in the train/eval mode they were in (a scorer may switch them)."""
    modes = [[m.training for m in module.modules()] for module in modules]
    k = int(metric.split("@")[1])
    value = evaluate(score, split, "valid", ks=(k,), device=device, name="validation selection").as_dict()[metric]
    for module, flags in zip(modules, modes):
        for sub, flag in zip(module.modules(), flags):
            sub.train(flag)
    return value


def module_states(owner: Any) -> dict[str, dict[str, torch.Tensor]]:
    """Copies of the state of every ``nn.Module`` attribute of `owner` (its policy)."""
    return {name: copy.deepcopy(value.state_dict()) for name, value in vars(owner).items() if isinstance(value, nn.Module)}


def load_module_states(owner: Any, states: dict[str, dict[str, torch.Tensor]]) -> None:
    for name, state in states.items():
        getattr(owner, name).load_state_dict(state)
