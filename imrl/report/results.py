"""Reading and validating run records (results/runs/<dataset>/<method>/seed<k>.json).

Every record is checked against ``imrl/schemas/run.schema.json`` (JSON Schema draft
2020-12) plus the few rules a schema cannot say (an ``ok`` run has no error, a failed
one has one; rates lie in [0, 1]). ``validate_run`` is shared by the run writer, the
reports and leaderboard submissions, so all three accept exactly the same records.
Any bad file stops aggregation with a ``RunFileError`` naming the file and the key.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from imrl.schemas import RunRecordError as RunFileError
from imrl.schemas import flatten_metrics, validate_run

#: Layout of the runs tree below its root.
RUN_FILE = re.compile(r"^seed(0|[1-9]\d*)\.json$")

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


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON (write null or a finite number)")


def read_run(path: str | Path, root: str | Path | None = None) -> dict[str, Any]:
    """Parse and validate one run file. With `root`, also check that the file sits at
    ``<root>/<dataset>/<method>/seed<seed>.json`` as its content says."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except OSError as exc:
        raise RunFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, ValueError) as exc:   # JSONDecodeError is a ValueError
        raise RunFileError(f"{path}: not valid JSON: {exc}") from exc
    validate_run(record, path)
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
    rows = [run_row(read_run(path, root), path) for path in run_paths(root)]
    frame = pd.DataFrame(rows, columns=_columns(rows))
    return frame.sort_values(["dataset", "method", "seed"], ignore_index=True)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    fixed = BASE_COLUMNS + PROVENANCE_COLUMNS
    extra = sorted({name for row in rows for name in row} - set(fixed))
    return fixed + extra
