"""What the offline RL environment built from a split looks like, without building it
(no item embedding table is computed): the workflow writes it beside each split as
``env.json`` so that a dataset's resulting environment can be read before any run.

``environment`` says which environment the dataset's RL runs train in (its config) and,
for the user model, its validation quality beside Popularity's (from the fitted model's
``meta.json``). ``episodes`` describes log replay (``imrl.envs.offline``) with its
default settings (or those given): one episode per user with a train item left to
discover after the initial items; the reward of a step is the number of hits in the
slate (0..k).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from imrl.data.interactions import NO_TIMESTAMP
from imrl.data.split import Split
from imrl.envs.environment import DEFAULTS, EPISODE_DEFAULTS
from imrl.envs.offline import OfflineRecSetup, _episode_plan

ENV_DEFAULTS = {name: p.default for name, p in inspect.signature(OfflineRecSetup.__init__).parameters.items()
                if name in ("history_len", "slate_size", "embedding_dim", "max_steps", "initial_items")}


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {"mean": 0.0, "median": 0.0, "p90": 0.0, "max": 0.0}
    return {"mean": float(values.mean()), "median": float(np.median(values)),
            "p90": float(np.percentile(values, 90)), "max": float(values.max())}


def ordering(split: Split) -> dict[str, Any]:
    """How the chronological order of the train rows was decided: by time, by ties
    broken in file order, or (no timestamps) by file order alone."""
    stamps, users = split.train["timestamp"].to_numpy(), split.train["user"].to_numpy()
    same_user = users[1:] == users[:-1]
    pairs = int(same_user.sum())
    tied = int((same_user & (stamps[1:] == stamps[:-1]) & (stamps[1:] != NO_TIMESTAMP)).sum())
    missing = int((stamps == NO_TIMESTAMP).sum())
    return {"rows_without_timestamp": missing, "consecutive_pairs": pairs, "tied_pairs": tied,
            "order": "file order (no timestamps)" if missing == len(stamps)
            else "timestamp, ties by file order" if missing == 0 else "timestamp; rows without one follow the "
                                                                       "previous row of the user in file order"}


def _trained_in(config: dict[str, Any] | None, user_model_meta: dict[str, Any] | None) -> dict[str, Any]:
    """The environment the dataset's RL runs train in (its config), with the user model's quality."""
    config = {**DEFAULTS, **(config or {})}
    config = {**EPISODE_DEFAULTS[config["kind"]], **config}
    trained_in = {key: config[key] for key in ("kind", "gamma", "slate_size", "max_steps")}
    if config["kind"] == "user_model":
        meta = user_model_meta or {}
        trained_in.update(reward="expected click of the slate, P(click | slate) in [0, 1], under the user model",
                          episode_starts="a train prefix: a train row drawn uniformly, the user's items up to it",
                          user_model={"settings": meta.get("settings"), "valid": meta.get("valid"),
                                      "popularity_valid": meta.get("popularity_valid")})
    else:
        trained_in["reward"] = "hits: logged items of the user in the slate (see episodes)"
    return trained_in


def environment_summary(split: Split, environment: dict[str, Any] | None = None,
                        user_model_meta: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    env = {**ENV_DEFAULTS, **settings}
    unknown = sorted(set(settings) - set(ENV_DEFAULTS))
    if unknown:
        raise KeyError(f"unknown environment settings {unknown}; valid: {sorted(ENV_DEFAULTS)}")
    initial = env["history_len"] if env["initial_items"] is None else env["initial_items"]
    initial_ptr, _, target_ptr, _ = _episode_plan(split, initial)
    targets = np.diff(target_ptr)
    playable = targets > 0
    n_features = 0 if split.user_features is None else int(split.user_features.shape[1])
    categories = split.item_categories
    return {
        "dataset": split.name,
        "environment": _trained_in(environment, user_model_meta),
        "settings": env,
        "users": split.n_users,
        "items": split.n_items,
        "interactions": {part: len(split.part(part)) for part in ("train", "valid", "test")},
        "episodes": {"of": "log replay (environment kind replay)", "users_with_targets": int(playable.sum()), "users_without_targets": int((~playable).sum()),
                     "initial_items": _quantiles(np.diff(initial_ptr)[playable]),
                     "targets_per_episode": _quantiles(targets[playable])},
        "observation": {"vector_dim": env["history_len"] * env["embedding_dim"] + n_features,
                        "history_len": env["history_len"], "user_features": n_features},
        "actions": {"discrete": f"MultiDiscrete([{split.n_items}] * {env['slate_size']})",
                    "continuous": f"Box(-1, 1, ({env['embedding_dim']},))",
                    "continuous_feasible": split.n_items >= initial + env["slate_size"] * env["max_steps"]},
        "reward": f"hits among the slate's {env['slate_size']} items (0..{env['slate_size']})",
        "item_categories": None if categories is None else {
            "categories": int(categories.max()) + 1 if (categories >= 0).any() else 0,
            "items_with_category": int((categories >= 0).sum())},
        "side_info": dict(split.side_info),
        "ordering": ordering(split),
    }
