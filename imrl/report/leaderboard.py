"""The leaderboard: results/leaderboard.csv and reports/leaderboard.html.

One section per dataset and simulator. A row is one method's numbers of one kind:
- "reproduced": this suite's runs (results/runs), mean ± sample std over ok seeds;
- "submitted": external run files in results/submissions/*.json, each validated with
  ``imrl.schemas.validate_run`` (the same contract as the suite's own runs); a file
  that fails is rejected with its reason (on the page and in the log) and the rest
  still builds. Submitted runs are never pooled with reproduced ones;
- "reported by the paper": the IMRL paper's Table II (results/reported), as printed.
Every row carries its provenance (commits, config hashes, hardware, mean wall time per
seed, date of the last run) and the side-information substitutes its runs declared.

Significance: within the reproduced rows of a section, per metric, the best mean
against each other method (``imrl.report.significance``: paired t-test over matched
seeds, Holm-adjusted); submitted and reported rows are not tested (no shared seeds).

The page is one static file that works offline: inline CSS and JavaScript, no
network. The data goes in as JSON inside <script type="application/json"> with `<`,
`>`, `&` and the JavaScript line separators written as \\u escapes, and the script
builds the DOM with textContent only, so any string from a results file shows as text.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from imrl.io import atomic_write_text
from imrl.report.results import BASE_COLUMNS, PROVENANCE_COLUMNS, RunFileError, read_run, run_row
from imrl.report.significance import ALPHA, MARKER_LEGEND, compare_with_best

log = logging.getLogger(__name__)

REPRODUCED, SUBMITTED, REPORTED = "reproduced", "submitted", "reported by the paper"
KIND_ORDER = [REPRODUCED, SUBMITTED, REPORTED]
OFFLINE_PHASE = "test"
#: Shown in percent, like Table II; other metrics (CTR) as fractions.
PERCENT_METRICS = ("recall", "precision", "ndcg")
TEMPLATE = "report/leaderboard_page.html"
DATA_PLACEHOLDER = "/*LEADERBOARD_DATA*/"
JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


@dataclass(frozen=True)
class Rejected:
    path: str
    reason: str


# ---------------------------------------------------------------------------- inputs

def load_submissions(directory: str | Path) -> tuple[pd.DataFrame, list[Rejected]]:
    """Valid submitted runs (rows like ``load_runs``) and the rejected files with why.
    A missing directory means no submissions. Hidden files are skipped; a second file
    for the same (dataset, method, seed) is rejected."""
    directory = Path(directory)
    rows, rejected, seen = [], [], {}
    paths = sorted(p for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else []
    for path in paths:
        if any(part.startswith(".") for part in path.relative_to(directory).parts) or path.name == "README.md":
            continue
        try:
            if path.suffix != ".json":
                raise RunFileError(f"{path}: not a .json run file")
            record = read_run(path)
            key = (record["dataset"], record["method"], record["seed"])
            if key in seen:
                raise RunFileError(f"{path}: a second submission for dataset={key[0]!r}, method={key[1]!r}, "
                                   f"seed={key[2]} (first: {seen[key]})")
            seen[key] = path
            rows.append(run_row(record, path))
        except RunFileError as error:
            log.warning("submission rejected: %s", error)
            rejected.append(Rejected(str(path), str(error)))
    columns = BASE_COLUMNS + PROVENANCE_COLUMNS
    frame = pd.DataFrame(rows)
    return (frame if rows else pd.DataFrame(columns=columns)), rejected


# ---------------------------------------------------------------------------- rows

def metric_columns(runs: pd.DataFrame) -> dict[str, str]:
    """Column of ``load_runs`` -> leaderboard metric name: "test/recall@20" ->
    "recall@20" for offline runs, "ctr" for online ones."""
    names = {}
    for column in runs.columns:
        if column.startswith(f"{OFFLINE_PHASE}/"):
            names[column] = column.split("/", 1)[1]
        elif column == "ctr":
            names[column] = "ctr"
    return names


def _joined(values: pd.Series) -> str:
    return "; ".join(sorted({str(v) for v in values.dropna() if str(v)}))


def run_rows(runs: pd.DataFrame, kind: str) -> list[dict[str, Any]]:
    """One leaderboard row per (dataset, method) of `runs` (rows of ``load_runs``)."""
    metrics = metric_columns(runs)
    rows = []
    for (dataset, method), group in runs.groupby(["dataset", "method"], sort=False):
        ok = group[group["status"] == "ok"]
        values = {}
        for column, name in metrics.items():
            present = ok[ok[column].notna()] if column in ok else ok.iloc[0:0]
            if len(present):
                values[name] = {"mean": float(present[column].mean()),
                                "std": float(present[column].std(ddof=1)) if len(present) > 1 else None,
                                "n": len(present),
                                "per_seed": dict(zip(present["seed"].astype(int), present[column].astype(float)))}
        finished = ok["finished_at"].dropna()
        rows.append({
            "dataset": dataset, "setting": group["setting"].iloc[0], "kind": kind, "method": method,
            "n_seeds": len(ok), "n_failed": int((group["status"] == "failed").sum()),
            "metrics": values,
            "commit": _joined(ok["git_commit"]), "config_hash": _joined(ok["config_hash"]),
            "hardware": _joined(ok["hardware"].fillna(ok["device"])),
            "wall_time_s": float(ok["wall_time_s"].mean()) if len(ok) else None,
            "date": str(finished.max()) if len(finished) else "",
            "substitutes": sorted({s for subs in group["substitutes"] for s in subs}),
            "source": _joined(group["path"]) if kind == SUBMITTED else "results/runs",
            "errors": _joined(group["error_type"]),
        })
    return rows


def reported_rows(reported: pd.DataFrame, source: str) -> list[dict[str, Any]]:
    """One row per (dataset, method) of a reported-numbers table (percent -> fraction)."""
    rows = []
    for (dataset, method), group in reported.groupby(["dataset", "method"], sort=False):
        values = {f"{r.metric}@{r.k}": {"mean": r.mean_percent / 100.0, "std": r.std_percent / 100.0, "n": None}
                  for r in group.itertuples()}
        rows.append({
            "dataset": dataset, "setting": "offline", "kind": REPORTED, "method": method, "n_seeds": None,
            "n_failed": 0, "metrics": values, "commit": "", "config_hash": "", "hardware": "", "wall_time_s": None,
            "date": "", "substitutes": [], "source": source, "errors": "",
        })
    return rows


def mark_significance(rows: list[dict[str, Any]]) -> None:
    """Per section and metric, among reproduced rows: flag the best mean ("best") and
    each other row's Holm-adjusted paired t-test p against it ("p", "significant")."""
    sections: dict[str, list[dict]] = {}
    for row in rows:
        if row["kind"] == REPRODUCED:
            sections.setdefault(row["dataset"], []).append(row)
    for section in sections.values():
        for metric in {m for row in section for m in row["metrics"]}:
            having = [row for row in section if metric in row["metrics"]]
            best = max(having, key=lambda row: row["metrics"][metric]["mean"])
            comparisons = compare_with_best({row["method"]: row["metrics"][metric]["per_seed"] for row in having},
                                            best["method"])
            for row in having:
                cell = row["metrics"][metric]
                cell["best"] = row is best
                if row is not best:
                    comparison = comparisons[row["method"]]
                    cell["p"] = None if np.isnan(comparison.p_ttest_holm) else comparison.p_ttest_holm
                    cell["significant"] = comparison.significant


def _metric_order(name: str) -> tuple:
    base, _, k = name.partition("@")
    order = {"recall": 0, "precision": 1, "ndcg": 2, "ctr": 3}
    return (int(k) if k.isdigit() else 0, order.get(base, 9), base)


def build_leaderboard(runs: pd.DataFrame, submissions: pd.DataFrame, rejected: Sequence[Rejected],
                      reported: pd.DataFrame | None, reported_source: str,
                      order: Sequence[str] = ()) -> dict[str, Any]:
    """The page's data: sections (one per dataset/simulator; `order` first, then the
    rest sorted), their metrics and rows, the rejected submissions and the legend."""
    rows = run_rows(runs, REPRODUCED) + run_rows(submissions, SUBMITTED)
    if reported is not None:
        rows += reported_rows(reported, reported_source)
    mark_significance(rows)
    names = list(dict.fromkeys([*order, *sorted({row["dataset"] for row in rows})]))
    sections = []
    for name in names:
        section_rows = [row for row in rows if row["dataset"] == name]
        if not section_rows:
            continue
        section_rows.sort(key=lambda row: KIND_ORDER.index(row["kind"]))
        metrics = sorted({m for row in section_rows for m in row["metrics"]}, key=_metric_order)
        for row in section_rows:
            for cell in row["metrics"].values():
                cell.pop("per_seed", None)
        sections.append({
            "name": name, "setting": section_rows[0]["setting"],
            "metrics": [{"key": m, "label": m + (" (%)" if m.split("@")[0] in PERCENT_METRICS else ""),
                         "percent": m.split("@")[0] in PERCENT_METRICS} for m in metrics],
            "rows": section_rows,
        })
    return {
        "sections": sections,
        "rejected": [{"path": r.path, "reason": r.reason} for r in rejected],
        "legend": [
            "Mean ± sample standard deviation (ddof=1) over ok seeds; offline metrics on the test split, in percent; "
            "CTR as a fraction.",
            "Bold: best reproduced mean of its column. " + MARKER_LEGEND,
            f"Significance is computed among reproduced rows only (alpha = {ALPHA}); submitted and reported rows "
            "are never pooled with them or tested.",
            "Reported by the paper: numbers as printed in the IMRL paper's Table II; the paper does not give "
            "its number of seeds.",
        ],
    }


# ---------------------------------------------------------------------------- outputs

def leaderboard_csv(data: dict[str, Any]) -> str:
    """One line per row of every section; per metric mean, std, n, Holm p, significant."""
    lines = []
    metrics = sorted({m["key"] for section in data["sections"] for m in section["metrics"]}, key=_metric_order)
    for section in data["sections"]:
        for row in section["rows"]:
            line = {key: row[key] for key in ("dataset", "setting", "kind", "method", "n_seeds", "n_failed")}
            for metric in metrics:
                cell = row["metrics"].get(metric, {})
                line.update({f"{metric}_mean": cell.get("mean"), f"{metric}_std": cell.get("std"),
                             f"{metric}_n": cell.get("n"), f"{metric}_best": cell.get("best"),
                             f"{metric}_p_holm": cell.get("p"), f"{metric}_significant": cell.get("significant")})
            line.update({key: row[key] for key in ("commit", "config_hash", "hardware", "wall_time_s", "date",
                                                   "source", "errors")})
            line["substitutes"] = " | ".join(row["substitutes"])
            lines.append(line)
    return pd.DataFrame(lines).to_csv(index=False, float_format="%.6g")


def embed_json(data: Any) -> str:
    """JSON that is safe inside a <script> element (no `</script>`, no HTML comment or
    CDATA openers, no JavaScript line separators)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, sort_keys=True)
    return "".join(JSON_ESCAPES.get(char, char) for char in text)


def render_html(data: dict[str, Any]) -> str:
    template = resources.files("imrl").joinpath(TEMPLATE).read_text(encoding="utf-8")
    if template.count(DATA_PLACEHOLDER) != 1:
        raise ValueError(f"imrl/{TEMPLATE}: expected the placeholder {DATA_PLACEHOLDER} exactly once")
    return template.replace(DATA_PLACEHOLDER, embed_json(data))


def write_leaderboard(data: dict[str, Any], html_path: str | Path, csv_path: str | Path) -> dict[str, Path]:
    atomic_write_text(html_path, render_html(data))
    atomic_write_text(csv_path, leaderboard_csv(data))
    return {"html": Path(html_path), "csv": Path(csv_path)}
