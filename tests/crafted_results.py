"""Crafted run records for the report tests (valid against run.schema.json; nothing is
trained). Offline records carry test metrics, online ones a CTR curve."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Sequence

import numpy as np

PROVENANCE = {
    "git_commit": "abc123", "git_dirty": False, "config_hash": "cfg0", "packages": {"torch": "2.13.0"},
    "python": "3.11.7", "platform": "Linux", "hardware": "2 cpu", "device": "cpu",
    "wall_time_s": 1.5, "started_at": "2025-01-01T00:00:00Z", "finished_at": "2025-01-01T00:00:02Z",
}


def offline_record(dataset: str, method: str, seed: int, test: Sequence[float] = (0.1, 0.01, 0.05), *,
                   k: int = 20, status: str = "ok") -> dict:
    """`test` = (recall, precision, ndcg) at `k`, as fractions."""
    record = _base(dataset, method, seed, "offline", status)
    if status == "ok":
        names = [f"{name}@{k}" for name in ("recall", "precision", "ndcg")]
        record["metrics"] = {"valid": dict(zip(names, test)), "test": dict(zip(names, test))}
    return record


def online_record(simulator: str, method: str, seed: int, ctr: Sequence[float], *, test_every: int = 10,
                  status: str = "ok") -> dict:
    record = _base(simulator, method, seed, "online", status)
    if status == "ok":
        record["metrics"] = {"ctr": float(ctr[-1])}
        record["curve"] = {"episode": [test_every * (i + 1) for i in range(len(ctr))], "ctr": [float(c) for c in ctr]}
    return record


def learning_curve(final: float, seed: int, n: int = 60, start: float = 0.02, speed: float = 8.0) -> list[float]:
    """A saturating curve from `start` to about `final`, with seed noise."""
    noise = np.random.default_rng(seed).normal(0, 0.004, n)
    x = np.linspace(0, 1, n)
    return np.clip(start + (final - start) * (1 - np.exp(-speed * x)) + noise, 0, 1).tolist()


def _base(dataset: str, method: str, seed: int, setting: str, status: str) -> dict:
    record = {
        "schema_version": 1, "dataset": dataset, "method": method, "seed": seed, "setting": setting,
        "status": status, "error": None, "metrics": {}, "n_users": {"valid": 100, "test": 90} if setting == "offline" else {},
        "curve": None, "substitutes": [], "config": {"method": {"name": method}},
        "provenance": copy.deepcopy(PROVENANCE),
    }
    if status == "failed":
        record["error"] = {"type": "RuntimeError", "message": "boom", "traceback": "Traceback ..."}
    return record


def write_record(runs_root: Path, record: dict) -> Path:
    path = Path(runs_root) / record["dataset"] / record["method"] / f"seed{record['seed']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path
