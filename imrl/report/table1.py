"""Table I of the paper (dataset statistics) beside what our pipeline really has.

Per dataset, three rows: the paper's users / items / interactions / density
(transcribed in ``results/reported/imrl-paper-table1.csv``, whose README gives the
source), the counts the raw files hold
as our reader parsed them (``data/processed/<dataset>/meta.json``; the reader's line
counts from ``reader.json`` are quoted as evidence), and the counts after
preprocessing (``split/meta.json``). Each dataset gets a one-line explanation of the gap
between the paper and the raw files (the transcription's ``gap`` column, which says how
the paper's figure arises) and one of the gap between raw and preprocessed (the protocol:
binarisation threshold, k-core, minimum sequence length). Written as
``reports/table1.md`` and ``reports/table1.csv``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable

from imrl.io import atomic_write_text

PAPER_SOURCE = "IMRL paper, Section IV-A1, Table I"
CSV_COLUMNS = ["dataset", "stage", "users", "items", "interactions", "density_percent", "source", "note"]


def paper_rows(path: Path) -> dict[str, dict[str, str]]:
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: not found (the paper's Table I, transcribed)")
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["dataset"]: row for row in csv.DictReader(fh)}


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found (convert and split the dataset first)")
    return json.loads(path.read_text())


def _density(interactions: int, users: int, items: int) -> float:
    return 100.0 * interactions / max(1, users * items)


def preprocessing_note(split_meta: dict[str, Any], raw_interactions: int) -> str:
    cfg = split_meta.get("config", {}).get("preprocess", {})
    kept = sum(split_meta["n_interactions"].values())
    dropped = split_meta.get("config", {}).get("dropped", {})
    steps = ", ".join(f"{step} -{counts.get('interactions_dropped', 0):,}" for step, counts in dropped.items())
    threshold = cfg.get("min_rating")
    rule = "all ratings kept" if not threshold else f"ratings >= {threshold} kept"
    return (f"{rule}, {cfg.get('kcore', 0)}-core, users with >= {cfg.get('min_interactions', 3)} interactions: "
            f"{kept:,} of {raw_interactions:,} interactions remain ({steps})")


def dataset_rows(dataset: str, processed: Path, paper: dict[str, str]) -> list[dict[str, Any]]:
    meta = _load(processed / dataset / "meta.json")
    reader = _load(processed / dataset / "reader.json")
    split = _load(processed / dataset / "split" / "meta.json")
    evidence = "; ".join(f"{key.replace('_', ' ')} {value:,}" for key, value in reader.get("counts", {}).items())
    skipped = sum(reader.get("skipped", {}).values())
    if skipped:
        evidence += f"; skipped lines {skipped:,} ({', '.join(f'{k}: {v:,}' for k, v in reader['skipped'].items())})"
    kept = sum(split["n_interactions"].values())
    return [
        {"dataset": dataset, "stage": "paper", "users": int(paper["users"]), "items": int(paper["items"]),
         "interactions": int(paper["interactions"]), "density_percent": paper["density_printed"].rstrip("%"),
         "source": PAPER_SOURCE, "note": paper["gap"]},
        {"dataset": dataset, "stage": "raw", "users": meta["n_users"], "items": meta["n_items"],
         "interactions": meta["n_interactions"],
         "density_percent": f"{_density(meta['n_interactions'], meta['n_users'], meta['n_items']):.4g}",
         "source": meta["source"], "note": evidence},
        {"dataset": dataset, "stage": "preprocessed", "users": split["n_users"], "items": split["n_items"],
         "interactions": kept, "density_percent": f"{_density(kept, split['n_users'], split['n_items']):.4g}",
         "source": "split/meta.json", "note": preprocessing_note(split, meta["n_interactions"])},
    ]


def render_markdown(rows: list[dict[str, Any]], paper: dict[str, dict[str, str]]) -> str:
    lines = ["# Table I: dataset statistics, the paper's beside ours", "",
             "Paper: as printed in the paper. Raw: what the raw files hold, as our reader parsed them. "
             "Preprocessed: after the per-dataset protocol (PROTOCOL.md).", "",
             "| Dataset | Stage | # Users | # Items | # Inter. | Density |",
             "|---|---|---:|---:|---:|---:|"]
    notes = []
    for row in rows:
        name = paper[row["dataset"]]["paper_dataset"]
        lines.append(f"| {name} | {row['stage']} | {row['users']:,} | {row['items']:,} | {row['interactions']:,} "
                     f"| {row['density_percent']}% |")
        label = {"paper": "paper vs raw", "raw": "raw file counts", "preprocessed": "raw vs preprocessed"}
        notes.append(f"- **{name}**, {label[row['stage']]}: {row['note']}")
    return "\n".join(lines + ["", "## Gaps explained", "", *notes, ""])


def render_csv(rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_table1(datasets: list[str], processed: str | Path, out_dir: str | Path,
                 reported: str | Path) -> list[dict[str, Any]]:
    """`reported`: the paper's Table I as transcribed (results/reported/imrl-paper-table1.csv)."""
    paper = paper_rows(Path(reported))
    unknown = [d for d in datasets if d not in paper]
    if unknown:
        raise KeyError(f"Table I has no paper row for {unknown}; it covers {', '.join(paper)}")
    rows = [row for dataset in datasets for row in dataset_rows(dataset, Path(processed), paper[dataset])]
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "table1.csv", render_csv(rows))
    atomic_write_text(out_dir / "table1.md", render_markdown(rows, paper))
    return rows
