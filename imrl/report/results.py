"""Reading and validating run records (results/runs/<dataset>/<method>/seed<k>.json).

Every record is checked against ``imrl/schemas/run.schema.json`` (JSON Schema draft
2020-12) plus the few rules a schema cannot say (an ``ok`` run has no error, a failed
one has one; rates lie in [0, 1]). ``validate_run`` is shared by the run writer, the
reports and leaderboard submissions, so all three accept exactly the same records.
Any bad file stops aggregation with a ``RunFileError`` naming the file and the key.
"""

from __future__ import annotations

import functools
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import pandas as pd

#: Metric names that are rates and must lie in [0, 1].
RATE_METRIC = re.compile(r"^(recall|precision|ndcg)@\d+$|^ctr$")
#: Layout of the runs tree below its root.
RUN_FILE = re.compile(r"^seed(0|[1-9]\d*)\.json$")
#: Longest part of a schema message kept (messages quote the offending value).
MAX_MESSAGE = 300

#: Columns every frame from ``load_runs`` has, before the flattened metric and
#: ``n_users/<phase>`` columns.
BASE_COLUMNS = [
    "path", "dataset", "method", "seed", "setting", "status",
    "error_type", "error_message", "error_traceback",
    "substitutes", "curve", "config",
]
PROVENANCE_COLUMNS = [
    "git_commit", "git_dirty", "config_hash", "packages", "python", "platform",
    "hardware", "device", "wall_time_s", "started_at", "finished_at", "resumed",
]


class RunFileError(ValueError):
    """A run record that is unreadable or breaks the results contract."""


@functools.cache
def run_validator() -> jsonschema.Draft202012Validator:
    text = resources.files("imrl").joinpath("schemas/run.schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _key(path: Any) -> str:
    return ".".join(str(part) for part in path)


def validate_run(record: Any, where: str | Path) -> None:
    """Raise ``RunFileError("<where>: <key>: <problem>")`` unless `record` is a valid run."""
    errors = list(run_validator().iter_errors(record))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        key = _key(error.absolute_path)
        more = f" (and {len(errors) - 1} more schema error(s))" if len(errors) > 1 else ""
        raise RunFileError(f"{where}: {key + ': ' if key else ''}{_shorten(error.message)}{more}")

    if record["status"] == "failed" and not record.get("error"):
        raise RunFileError(f"{where}: error: a failed run must record its error {{type, message}}")
    if record["status"] == "ok" and record.get("error"):
        raise RunFileError(f"{where}: error: an ok run must have error null, got {record['error']!r}")
    for key, value in _flatten_metrics(record["metrics"]).items():
        if not math.isfinite(value):
            raise RunFileError(f"{where}: metrics.{key.replace('/', '.')}: {value!r} is not finite")
        if RATE_METRIC.match(key.rsplit("/", 1)[-1]) and not 0.0 <= value <= 1.0:
            raise RunFileError(f"{where}: metrics.{key.replace('/', '.')}: {value!r} is not in [0, 1]")


def _flatten_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """{"test": {"recall@20": x}, "ctr": y} -> {"test/recall@20": x, "ctr": y}."""
    flat: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, Mapping):
            flat.update({f"{name}/{inner}": v for inner, v in value.items()})
        else:
            flat[name] = value
    return flat


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
    }
    row.update({name: provenance.get(name) for name in PROVENANCE_COLUMNS})
    row.update(_flatten_metrics(record["metrics"]))
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
