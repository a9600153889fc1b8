"""Which offline environment a dataset's RL runs train in (config ``datasets.<name>.
environment``), and the one place that builds it.

- ``user_model`` (the default): the paper's environment, a user model learned from the
  train split plays the user (``imrl.envs.user_model``, the paper's reference [32]).
- ``replay``: the log replayed, DRR-style (``imrl.envs.offline``): a slate earns a hit
  per logged item of the user it contains.

``gamma`` is the task's discount, given to every RL method that does not set its own in
the config; ``slate_size`` and ``max_steps`` (the horizon) shape the episodes. A method's
own ``env`` parameters are passed on over these (a replay-only argument given to the user
model is an error naming it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from imrl.data.split import Split
from imrl.envs.offline import BatchedOfflineRecEnv
from imrl.envs.user_model import BatchedUserModelEnv, UserModel

KINDS = ("user_model", "replay")
#: The environment config's defaults (config/schemas/config.schema.yaml documents each).
DEFAULTS: dict[str, Any] = {"kind": "user_model", "gamma": 0.9}
#: Each kind's episode settings where the config gives none (replay: its 50 steps of old).
EPISODE_DEFAULTS = {"user_model": {"slate_size": 10, "max_steps": 10}, "replay": {"slate_size": 10, "max_steps": 50}}
#: Arguments a method's ``env`` parameters may set in each kind.
ARGUMENTS = {"user_model": ("slate_size", "max_steps"),
             "replay": ("history_len", "slate_size", "embedding_dim", "max_steps", "initial_items")}


@dataclass(frozen=True)
class OfflineEnvironment:
    """The kind, its episode settings, the task's discount and, for ``user_model``, the
    fitted model."""

    kind: str = "replay"
    settings: dict[str, Any] = field(default_factory=dict)
    gamma: float | None = None
    user_model: UserModel | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"environment kind must be one of {KINDS}; got {self.kind!r}")
        if self.kind == "user_model" and self.user_model is None:
            raise ValueError("the user_model environment needs a fitted user model")

    @staticmethod
    def kind_of(config: dict[str, Any] | None) -> str:
        return {**DEFAULTS, **(config or {})}["kind"]

    @classmethod
    def from_config(cls, config: dict[str, Any] | None, user_model: UserModel | None = None) -> OfflineEnvironment:
        config = {**DEFAULTS, **(config or {})}
        settings = {key: config.get(key, default) for key, default in EPISODE_DEFAULTS[config["kind"]].items()}
        return cls(config["kind"], settings, config["gamma"], user_model if config["kind"] == "user_model" else None)

    def describe(self) -> dict[str, Any]:
        """What a results record says of the environment its numbers come from."""
        described = {"kind": self.kind, **self.settings, "gamma": self.gamma}
        if self.kind == "user_model":
            described["user_model"] = self.user_model.config()
        return described

    def make(self, split: Split, num_envs: int, action_interface: str, observation: str, seed: int | None,
             device: str | torch.device = "cpu", **method_settings: Any) -> BatchedOfflineRecEnv:
        unknown = sorted(set(method_settings) - set(ARGUMENTS[self.kind]))
        if unknown:
            raise ValueError(f"env parameters {unknown} do not apply to the {self.kind} environment; "
                             f"valid: {list(ARGUMENTS[self.kind])}")
        settings = {**self.settings, **method_settings}
        if self.kind == "replay":
            return BatchedOfflineRecEnv(split, num_envs, action_interface=action_interface, observation=observation,
                                        seed=seed, device=device, **settings)
        return BatchedUserModelEnv(split, num_envs, self.user_model, action_interface=action_interface,
                                   observation=observation, seed=seed, device=device, **settings)
