"""Failed runs at the end of a workflow run: listed on the console, and set aside so that
running the workflow again retries them.

A run that raises still writes its record (status "failed") where the workflow expects
it, so that the report of the same workflow run shows "failed". Snakemake would then
count that record as up to date forever; moving it to ``results/failed/`` (same layout)
once the report is written makes the next run of the workflow retry exactly the failed
runs and leave the others alone. A record that is ok again removes its set-aside copy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

RUNS, FAILED, LOGS = Path("results/runs"), Path("results/failed"), Path("logs/train")


@dataclass(frozen=True)
class Failure:
    dataset: str        # or simulator
    method: str
    seed: str
    error: str          # the first line of the error
    record: Path        # where the failed record now is
    log: Path


def _error_line(path: Path) -> str | None:
    """The first line of the record's error; None when the run is ok. A record that
    cannot be read counts as failed (the report shows it so)."""
    try:
        record = json.loads(path.read_text())
        if record.get("status") == "ok":
            return None
        error = record.get("error") or {}
        text = f"{error.get('type', 'Error')}: {error.get('message', '')}"
    except (OSError, ValueError, AttributeError) as problem:
        text = f"unreadable record: {problem}"
    return (text.strip().splitlines() or ["(no message)"])[0]


def set_aside(run_paths: Iterable[str | Path]) -> list[Failure]:
    """Move each failed record among `run_paths` (``results/runs/<d>/<m>/seed<k>.json``,
    relative to the working directory) to ``results/failed/``; return them, in order."""
    failures = []
    for path in map(Path, run_paths):
        if not path.exists():
            continue
        relative = path.relative_to(RUNS)
        aside = FAILED / relative
        error = _error_line(path)
        if error is None:
            aside.unlink(missing_ok=True)
            continue
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, aside)
        dataset, method, name = relative.parts
        failures.append(Failure(dataset, method, name.removeprefix("seed").removesuffix(".json"), error, aside,
                                LOGS / relative.with_suffix(".log")))
    return failures


def summary(failures: list[Failure]) -> str:
    """The console summary: one line per failed run (method, dataset, seed, error, log)."""
    rows = [(f.method, f.dataset, f"seed {f.seed}", f.error, f"log: {f.log}") for f in failures]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + f"  {row[3]}  ({row[4]})"
             for row in rows]
    return (f"{len(failures)} run(s) FAILED (the tables show them as failed; their records are now in "
            f"{FAILED}/). Run the same snakemake command again to retry exactly these:\n  " + "\n  ".join(lines))
