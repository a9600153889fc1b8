"""Table I of the paper (dataset statistics) beside what our pipeline really has.

Per dataset, three rows: the paper's users / items / interactions / density
(transcribed in ``results/reported/imrl-paper-table1.csv``, whose README gives the
source; for a dataset the paper does not use, the publisher's counts, ``PUBLISHED``),
the counts the raw files hold
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

#: Datasets the paper does not use: the publisher's counts stand in its row (stage "published").
PUBLISHED = {
    "ml-100k": {"paper_dataset": "MovieLens-100K", "users": 943, "items": 1682, "interactions": 100_000,
                "source": "GroupLens, ml-100k README",
                "gap": "Not in the paper; the README's counts (100,000 ratings from 943 users on 1,682 movies) "
                       "are those of u.data."},
    "ml-1m": {"paper_dataset": "MovieLens-1M", "users": 6040, "items": 3706, "interactions": 1_000_209,
              "source": "GroupLens, ml-1m README",
              "gap": "Not in the paper; the README gives 1,000,209 ratings by 6,040 users of 'approximately 3,900 "
                     "movies' (the 3,883 rows of movies.dat), of which 3,706 are rated: the count shown."},
}
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


def reference_row(dataset: str, paper: dict[str, str] | None) -> dict[str, Any]:
    """The first row of a dataset: the paper's, or the publisher's where the paper has none."""
    if paper is not None:
        return {"dataset": dataset, "stage": "paper", "users": int(paper["users"]), "items": int(paper["items"]),
                "interactions": int(paper["interactions"]), "density_percent": paper["density_printed"].rstrip("%"),
                "source": PAPER_SOURCE, "note": paper["gap"]}
    published = PUBLISHED[dataset]
    return {"dataset": dataset, "stage": "published", "users": published["users"], "items": published["items"],
            "interactions": published["interactions"],
            "density_percent": f"{_density(published['interactions'], published['users'], published['items']):.4g}",
            "source": published["source"], "note": published["gap"]}


def dataset_rows(dataset: str, processed: Path, paper: dict[str, str] | None) -> list[dict[str, Any]]:
    meta = _load(processed / dataset / "meta.json")
    reader = _load(processed / dataset / "reader.json")
    split = _load(processed / dataset / "split" / "meta.json")
    evidence = "; ".join(f"{key.replace('_', ' ')} {value:,}" for key, value in reader.get("counts", {}).items())
    skipped = sum(reader.get("skipped", {}).values())
    if skipped:
        evidence += f"; skipped lines {skipped:,} ({', '.join(f'{k}: {v:,}' for k, v in reader['skipped'].items())})"
    kept = sum(split["n_interactions"].values())
    return [
        reference_row(dataset, paper),
        {"dataset": dataset, "stage": "raw", "users": meta["n_users"], "items": meta["n_items"],
         "interactions": meta["n_interactions"],
         "density_percent": f"{_density(meta['n_interactions'], meta['n_users'], meta['n_items']):.4g}",
         "source": meta["source"], "note": evidence},
        {"dataset": dataset, "stage": "preprocessed", "users": split["n_users"], "items": split["n_items"],
         "interactions": kept, "density_percent": f"{_density(kept, split['n_users'], split['n_items']):.4g}",
         "source": "split/meta.json", "note": preprocessing_note(split, meta["n_interactions"])},
    ]


def display_name(dataset: str, paper: dict[str, dict[str, str]]) -> str:
    return paper[dataset]["paper_dataset"] if dataset in paper else PUBLISHED[dataset]["paper_dataset"]


def render_markdown(rows: list[dict[str, Any]], paper: dict[str, dict[str, str]]) -> str:
    lines = ["# Table I: dataset statistics, the paper's beside ours", "",
             "Paper: as printed in the paper. Published: the publisher's counts, for a dataset the paper does "
             "not use. Raw: what the raw files hold, as our reader parsed them. "
             "Preprocessed: after the per-dataset protocol (PROTOCOL.md).", "",
             "| Dataset | Stage | # Users | # Items | # Inter. | Density |",
             "|---|---|---:|---:|---:|---:|"]
    notes = []
    for row in rows:
        name = display_name(row["dataset"], paper)
        lines.append(f"| {name} | {row['stage']} | {row['users']:,} | {row['items']:,} | {row['interactions']:,} "
                     f"| {row['density_percent']}% |")
        label = {"paper": "paper vs raw", "published": "published vs raw", "raw": "raw file counts",
                 "preprocessed": "raw vs preprocessed"}
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
    unknown = [d for d in datasets if d not in paper and d not in PUBLISHED]
    if unknown:
        raise KeyError(f"Table I has no paper or published row for {unknown}; it covers "
                       f"{', '.join([*paper, *PUBLISHED])}")
    rows = [row for dataset in datasets for row in dataset_rows(dataset, Path(processed), paper.get(dataset))]
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "table1.csv", render_csv(rows))
    atomic_write_text(out_dir / "table1.md", render_markdown(rows, paper))
    return rows
