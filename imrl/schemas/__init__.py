"""The results JSON schema (run.schema.json): the contract between running and
reporting, and the leaderboard's submission format.

``validate_run`` checks a record against the schema plus the few rules a schema cannot
say (an ``ok`` run has no error, a failed one has one; metric values are finite and
rates lie in [0, 1]). The run writer, the reports and leaderboard submissions all use
it, so all three accept exactly the same records.
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

#: Metric names that are rates and must lie in [0, 1].
RATE_METRIC = re.compile(r"^(recall|precision|ndcg)@\d+$|^ctr$")
#: Longest part of a schema message kept (messages quote the offending value).
MAX_MESSAGE = 300


class RunRecordError(ValueError):
    """A run record that is unreadable or breaks the results contract; the message
    starts with the file, then the key, then what is wrong."""


@functools.cache
def run_validator() -> jsonschema.Draft202012Validator:
    text = resources.files("imrl").joinpath("schemas/run.schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def flatten_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """{"test": {"recall@20": x}, "ctr": y} -> {"test/recall@20": x, "ctr": y}."""
    flat: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, Mapping):
            flat.update({f"{name}/{inner}": v for inner, v in value.items()})
        else:
            flat[name] = value
    return flat


def validate_run(record: Any, where: str | Path) -> None:
    """Raise ``RunRecordError("<where>: <key>: <problem>")`` unless `record` is a valid run."""
    errors = list(run_validator().iter_errors(record))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        key = ".".join(str(part) for part in error.absolute_path)
        more = f" (and {len(errors) - 1} more schema error(s))" if len(errors) > 1 else ""
        raise RunRecordError(f"{where}: {key + ': ' if key else ''}{_shorten(error.message)}{more}")

    if record["status"] == "failed" and not record.get("error"):
        raise RunRecordError(f"{where}: error: a failed run must record its error {{type, message}}")
    if record["status"] == "ok" and record.get("error"):
        raise RunRecordError(f"{where}: error: an ok run must have error null, got {record['error']!r}")
    for key, value in flatten_metrics(record["metrics"]).items():
        if not math.isfinite(value):
            raise RunRecordError(f"{where}: metrics.{key.replace('/', '.')}: {value!r} is not finite")
        if RATE_METRIC.match(key.rsplit("/", 1)[-1]) and not 0.0 <= value <= 1.0:
            raise RunRecordError(f"{where}: metrics.{key.replace('/', '.')}: {value!r} is not in [0, 1]")
