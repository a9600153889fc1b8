"""The results JSON schema (run.schema.json): the contract between running and
reporting, and the leaderboard's submission format."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

RUN_SCHEMA_PATH = Path(__file__).resolve().parent / "run.schema.json"


class RunRecordError(ValueError):
    """A run record does not follow the schema; the message names the file and the key."""


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(RUN_SCHEMA_PATH.read_text()))


def validate_run(record: Any, where: str) -> None:
    errors = sorted(_validator().iter_errors(record), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        details = "; ".join(f"{'.'.join(map(str, e.absolute_path)) or '<top level>'}: {e.message}" for e in errors[:5])
        raise RunRecordError(f"{where}: not a valid run record: {details}")
