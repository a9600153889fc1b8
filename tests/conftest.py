"""Shared fixtures: small generated datasets (never real data samples)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

SMALL_SYNTHETIC = {"n_users": 600, "n_items": 400, "n_clusters": 10, "min_length": 20, "max_length": 40}
SMALL_PREPROCESS = {"min_rating": 4, "kcore": 3, "valid_frac": 0.1, "test_frac": 0.1, "min_interactions": 3}


def small_split(seed: int = 0, **params):
    from imrl.data import preprocess, synthetic

    data = synthetic.generate({**SMALL_SYNTHETIC, **params}, seed=seed)
    return preprocess.build_split(data, SMALL_PREPROCESS, f"synthetic-small-{seed}")


@pytest.fixture(scope="session")
def split_small():
    return small_split(0)


#: A small user model (imrl/envs/user_model.py): enough to beat Popularity on these splits.
SMALL_USER_MODEL = {"epochs": 10, "dim": 16}
_user_models: dict = {}


def small_user_model(split):
    """The user model of a generated split, fitted once per split name (seed 0)."""
    from imrl.envs.user_model import fit_user_model

    if split.name not in _user_models:
        _user_models[split.name] = fit_user_model(split, SMALL_USER_MODEL, seed=0, log=lambda message: None)
    return _user_models[split.name]


def user_model_environment(split, **config):
    """The default offline environment (the user model) of a generated split."""
    from imrl.envs.environment import OfflineEnvironment

    return OfflineEnvironment.from_config({"kind": "user_model", **config}, small_user_model(split)[0])


def saved_user_model(split, directory: Path) -> Path:
    """The split's small user model written where the workflow writes it."""
    from imrl.envs.user_model import save_user_model

    save_user_model(directory, *small_user_model(split))
    return directory
