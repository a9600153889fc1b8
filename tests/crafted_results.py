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


#: A metric name for every way a name can look right and not be (superscript digit,
#: trailing space, capital letter, leading zero, trailing newline).
WRONG_METRIC_NAMES = {"superscript": "recall@\u00b2", "space": "recall@20 ", "capital": "Recall@20",
                      "zero": "recall@020", "newline": "recall@20\n"}


def hostile_submissions(dataset: str) -> dict[str, tuple[str, str]]:
    """File name -> (text, a part of the reason it must be rejected with): submissions
    that once took the whole report down, each otherwise a valid run of `dataset`."""
    def text(record: dict) -> str:
        return json.dumps(record)

    files = {}
    base = offline_record(dataset, "hostile", 0)
    files["deep.json"] = ('{"schema_version": 1, "config": ' + "[" * 100_000 + "]" * 100_000 + "}",
                          "not valid JSON: nested too deeply")
    for seed in range(2):   # two seeds whose mean would overflow to inf
        huge = offline_record(dataset, "huge", seed)
        huge["metrics"]["test"]["recall@20"] = 1e308
        files[f"huge{seed}.json"] = (text(huge), "metrics.test.recall@20: 1e+308 is not in [0, 1]")
    online = online_record(dataset, "huge-online", 0, [0.1, 0.2])
    online["metrics"]["train_ctr"] = 1e308
    files["huge_online.json"] = (text(online), "metrics.train_ctr: 1e+308 is greater than the maximum of 1")
    slow = copy.deepcopy(base)
    slow["provenance"]["wall_time_s"] = 12345.678
    files["wall_time_inf.json"] = (text(slow).replace("12345.678", "1e999"),
                                   "provenance.wall_time_s: inf is not a finite number")
    slow["provenance"]["wall_time_s"] = 1e12
    files["wall_time_huge.json"] = (text(slow), "provenance.wall_time_s: 1000000000000.0 is greater than the maximum")
    for label, name in WRONG_METRIC_NAMES.items():
        renamed = copy.deepcopy(base)
        renamed["metrics"]["test"][name] = renamed["metrics"]["test"].pop("recall@20")
        files[f"name_{label}.json"] = (text(renamed), f"metrics.test: {name!r} does not match")
    big_seed = copy.deepcopy(base)
    big_seed["seed"] = 10**30
    files["seed_int64.json"] = (text(big_seed), f"seed: {10**30} is greater than the maximum of {2**63 - 1}")
    surrogate = copy.deepcopy(base)
    surrogate["provenance"]["hardware"] = "\ud800 cpu"
    files["surrogate.json"] = (text(surrogate), "provenance.hardware: text '\\ud800 cpu' is not valid Unicode")
    environment = copy.deepcopy(base)
    environment["training"] = {"environment": ["user_model"]}
    files["environment.json"] = (text(environment), "training.environment: ['user_model'] is not of type 'object'")
    large = copy.deepcopy(base)
    large["substitutes"] = ["x" * 2_000_000]
    files["large.json"] = (text(large), "larger than the limit of 1000000 bytes per file")
    return files


def leaderboard_data(page: Path) -> dict:
    """The data embedded in reports/leaderboard.html."""
    html = Path(page).read_text(encoding="utf-8")
    start = html.index('id="leaderboard-data">') + len('id="leaderboard-data">')
    return json.loads(html[start:html.index("</script>", start)])
