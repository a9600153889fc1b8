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
