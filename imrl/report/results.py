"""Reading and validating run records (results/runs/<dataset>/<method>/seed<k>.json).

Every record is checked against ``imrl/schemas/run.schema.json`` (JSON Schema draft
2020-12) plus the few rules a schema cannot say (an ``ok`` run has no error, a failed
one has one; rates lie in [0, 1]). ``validate_run`` is shared by the run writer, the
reports and leaderboard submissions, so all three accept exactly the same records.
Reading adds what only a file can break: JSON nested too deep, numbers that are not
finite, text that is not valid Unicode, a curve whose arrays disagree, a submission
over its size limit.

``load_runs`` reads a whole runs tree and stops at the first bad file with a
``RunFileError`` naming the file and the key. ``load_grid`` reads only the runs a
configuration names and rejects a bad file with its reason (any exception), so one
broken file never takes the reports down.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from imrl.schemas import RunRecordError as RunFileError
from imrl.schemas import flatten_metrics, validate_run

log = logging.getLogger(__name__)

#: Layout of the runs tree below its root.
RUN_FILE = re.compile(r"^seed(0|[1-9]\d*)\.json$")
#: Longest value quoted in a reading error.
MAX_QUOTE = 60
#: ``error_type`` of the failed row that stands for a rejected run file in the reports.
REJECTED = "rejected file"

#: Columns every frame from ``load_runs`` has, before the flattened metric and
#: ``n_users/<phase>`` columns.
BASE_COLUMNS = [
    "path", "dataset", "method", "seed", "setting", "status",
    "error_type", "error_message", "error_traceback",
    "substitutes", "curve", "config", "environment",
]
PROVENANCE_COLUMNS = [
    "git_commit", "git_dirty", "config_hash", "packages", "python", "platform",
    "hardware", "device", "wall_time_s", "started_at", "finished_at", "resumed",
]


@dataclass(frozen=True)
class Rejected:
    """A run or submission file left out of the reports, and why."""
    path: str
    reason: str


def rejection(path: str | Path, error: Exception) -> Rejected:
    """`error` raised while reading `path`, as a rejection; a ``RunFileError`` already
    names the file, anything else is named by its type."""
    if isinstance(error, RunFileError):
        return Rejected(str(path), str(error))
    return Rejected(str(path), f"{path}: {type(error).__name__}: {_quoted(str(error))}")


def _quoted(text: str) -> str:
    return text if len(text) <= MAX_QUOTE else text[: MAX_QUOTE - 3] + "..."


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON (write null or a finite number)")


def _check_values(record: Any, where: str | Path) -> None:
    """Every number finite (Python reads 1e999 as inf) and every string writable as
    UTF-8 (a \\ud800 escape reads as a lone surrogate). Iterative, so that no depth of
    nesting can exhaust the stack."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), record)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict):
            for name, inner in value.items():
                stack.append(((*key, name), inner))
                _check_text(name, key, where)
        elif isinstance(value, list):
            stack.extend(((*key, str(index)), inner) for index, inner in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, key, where)
        elif isinstance(value, float) and not math.isfinite(value):
            raise RunFileError(f"{where}: {'.'.join(key)}: {value!r} is not a finite number")


def _check_text(text: str, key: tuple[str, ...], where: str | Path) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RunFileError(f"{where}: {'.'.join(key) or 'record'}: text {ascii(_quoted(text))} is not valid "
                           f"Unicode (a lone surrogate)") from None


def _check_curve(record: Mapping[str, Any], where: str | Path) -> None:
    curve = record.get("curve") or {}
    episode, ctr = curve.get("episode", []), curve.get("ctr", [])
    if len(episode) != len(ctr):
        raise RunFileError(f"{where}: curve: {len(episode)} episodes but {len(ctr)} CTR values")
    if len(set(episode)) != len(episode):
        raise RunFileError(f"{where}: curve.episode: repeated episode numbers")


def read_run(path: str | Path, root: str | Path | None = None, max_bytes: int | None = None) -> dict[str, Any]:
    """Parse and validate one run file. With `root`, also check that the file sits at
    ``<root>/<dataset>/<method>/seed<seed>.json`` as its content says; with `max_bytes`,
    refuse a larger file without reading the rest of it."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(-1 if max_bytes is None else max_bytes + 1)
    except OSError as exc:
        raise RunFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if max_bytes is not None and len(data) > max_bytes:
        raise RunFileError(f"{path}: larger than the limit of {max_bytes} bytes per file")
    try:
        record = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise RunFileError(f"{path}: not valid JSON: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:   # JSONDecodeError is a ValueError
        raise RunFileError(f"{path}: not valid JSON: {exc}") from exc
    _check_values(record, path)
    validate_run(record, path)
    _check_curve(record, path)
    if root is not None:
        expected = (record["dataset"], record["method"], f"seed{record['seed']}.json")
        try:
            actual = path.relative_to(root).parts
        except ValueError:
            raise RunFileError(f"{path}: not under the runs directory {root}") from None
        if actual != expected:
            raise RunFileError(
                f"{path}: file location {'/'.join(actual)} does not match its content "
                f"(dataset={record['dataset']!r}, method={record['method']!r}, seed={record['seed']}); "
                f"expected {'/'.join(expected)}")
    return record


def run_paths(root: str | Path) -> list[Path]:
    """Every run file under `root`, sorted. Hidden files (unfinished atomic writes) are
    skipped; any other JSON file outside the layout is an error, never ignored."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: results directory not found (expected {root}/<dataset>/<method>/seed<k>.json)")
    paths = []
    for path in sorted(root.rglob("*.json")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if len(relative.parts) != 3 or not RUN_FILE.match(relative.name):
            raise RunFileError(f"{path}: not a run file; expected {root}/<dataset>/<method>/seed<k>.json")
        paths.append(path)
    return paths


def run_row(record: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
    """One flat row of ``load_runs``: identity, status, error, metrics ("test/recall@20",
    online "ctr"), users per phase ("n_users/test"), curve, substitutes, provenance."""
    error = record.get("error") or {}
    provenance = record["provenance"]
    row: dict[str, Any] = {
        "path": str(path),
        "dataset": record["dataset"],
        "method": record["method"],
        "seed": record["seed"],
        "setting": record["setting"],
        "status": record["status"],
        "error_type": error.get("type"),
        "error_message": error.get("message"),
        "error_traceback": error.get("traceback"),
        "substitutes": list(record.get("substitutes", [])),
        "curve": record.get("curve"),
        "config": record["config"],
        # The offline environment an RL run trained in ("user_model", "replay", ...); None otherwise.
        "environment": ((record.get("training") or {}).get("environment") or {}).get("kind"),
    }
    row.update({name: provenance.get(name) for name in PROVENANCE_COLUMNS})
    row.update(flatten_metrics(record["metrics"]))
    row.update({f"n_users/{phase}": n for phase, n in record.get("n_users", {}).items()})
    return row


def load_runs(root: str | Path) -> pd.DataFrame:
    """One row per run file under `root` (see ``run_row``), sorted by dataset, method,
    seed. Raises ``RunFileError`` naming the first malformed file."""
    return _frame([run_row(read_run(path, root), path) for path in run_paths(root)])


#: One run a configuration names: (dataset or simulator, method, seed, setting).
GridRun = tuple[str, str, int, str]


def load_grid(root: str | Path, grid: Sequence[GridRun],
              offline_metrics: Sequence[str] = ()) -> tuple[pd.DataFrame, list[Rejected]]:
    """The runs of `grid`, read from ``<root>/<dataset>/<method>/seed<seed>.json``;
    nothing else under `root` is read, so a run left by another configuration is never
    pooled. A missing file is no run. A file that raises anything while it is read or
    checked (its setting must be the grid's, and an ok offline run must have every one
    of `offline_metrics` on the test split) is rejected with the reason and stands in
    the frame as a failed run whose error is the reason."""
    if grid and not Path(root).is_dir():   # a mistyped --results would otherwise read as "no runs"
        raise FileNotFoundError(f"{root}: results directory not found (expected {root}/<dataset>/<method>/seed<k>.json)")
    rows, rejected, missing = [], [], []
    for dataset, method, seed, setting in grid:
        path = Path(root) / dataset / method / f"seed{seed}.json"
        try:
            if not path.exists():
                missing.append(path)
                continue
            record = read_run(path, root)
            _check_in_grid(record, path, setting, offline_metrics)
            rows.append(run_row(record, path))
        except Exception as error:   # whatever one file breaks, the others still report
            rejected.append(rejection(path, error))
            log.warning("run rejected: %s", rejected[-1].reason)
            rows.append(_rejected_row(path, dataset, method, seed, setting, rejected[-1].reason))
    if missing:
        log.warning("%d run(s) of the configuration not found (shown as no run), e.g. %s", len(missing), missing[0])
    return _frame(rows), rejected


def _check_in_grid(record: Mapping[str, Any], path: Path, setting: str, offline_metrics: Sequence[str]) -> None:
    if record["setting"] != setting:
        raise RunFileError(f"{path}: setting: {record['setting']!r}, but the configuration runs "
                           f"{record['dataset']!r} {setting}")
    if setting == "offline" and record["status"] == "ok":
        test = record["metrics"].get("test", {})
        absent = [name for name in offline_metrics if name not in test]
        if absent:
            raise RunFileError(f"{path}: metrics.test: no {', '.join(map(repr, absent))} for Table II "
                               f"(has: {', '.join(sorted(test)) or 'nothing'})")


def _rejected_row(path: Path, dataset: str, method: str, seed: int, setting: str, reason: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(BASE_COLUMNS + PROVENANCE_COLUMNS)
    row.update(path=str(path), dataset=dataset, method=method, seed=seed, setting=setting, status="failed",
               error_type=REJECTED, error_message=reason, substitutes=[])
    return row


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    fixed = BASE_COLUMNS + PROVENANCE_COLUMNS
    extra = sorted({name for row in rows for name in row} - set(fixed))
    frame = pd.DataFrame(rows, columns=fixed + extra)
    return frame.sort_values(["dataset", "method", "seed"], ignore_index=True)


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN below two values, both NaN for
    none) that no sum can overflow: computed on the values divided by a power of two
    at their largest magnitude, which leaves ordinary values' results bit for bit."""
    values = np.asarray(list(values), dtype=float)
    if not len(values):
        return math.nan, math.nan
    scale = math.ldexp(1.0, math.frexp(float(np.abs(values).max()))[1] - 1)
    scaled = values / scale
    std = float(scaled.std(ddof=1)) * scale if len(values) > 1 else math.nan
    return float(scaled.mean()) * scale, std
