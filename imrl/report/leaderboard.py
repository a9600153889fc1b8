"""The leaderboard: results/leaderboard.csv and reports/leaderboard.html.

One section per dataset and simulator. A row is one method's numbers of one kind:
- "reproduced": this suite's runs (results/runs), mean ± sample std over ok seeds;
- "submitted": external run files in results/submissions/*.json, each read like the
  suite's own runs (``imrl.report.results.read_run``: the same contract) and at most
  ``MAX_SUBMISSION_BYTES`` long; a file that fails in any way is rejected with its
  reason (on the page and in the log) and the rest still builds. Submitted runs are
  never pooled with reproduced ones;
- "reported by the paper": the IMRL paper's Table II (results/reported), as printed.
Every row carries its provenance (commits, config hashes, hardware, mean wall time per
seed, date of the last run) and the side-information substitutes its runs declared.

Significance: within the reproduced rows of a section, per metric, the best mean
against each other method (``imrl.report.significance``: paired t-test over matched
seeds, Holm-adjusted); submitted and reported rows are not tested (no shared seeds).

What the page adds to the rows: per metric a 95% interval (Student's t over the seeds),
the rank of every row in its section (1 = highest mean, ties share the best rank), the
paper's number beside a reproduced one of the same method, and per setting the mean rank
of each reproduced method over the sections it has (ties share the average rank). Online
rows carry their learning curve (Figure 2's line and band, ``figures.curve_band``).
Methods link to METHODS.md and their paper, commits to the repository
(``imrl.report.links``).

The page is one static file that works offline: inline CSS, JavaScript and SVG, no
network. The data goes in as JSON inside <script type="application/json"> with `<`,
`>`, `&` and the JavaScript line separators written as \\u escapes, and the script
builds the DOM with textContent only, so any string from a results file shows as text.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from imrl.io import atomic_write_text
from imrl.report import figures
from imrl.report.links import commit_link, method_links
from imrl.report.results import (BASE_COLUMNS, PROVENANCE_COLUMNS, Rejected, RunFileError, mean_std, read_run,
                                 rejection, run_row)
from imrl.report.significance import ALPHA, MARKER_LEGEND, compare_with_best

log = logging.getLogger(__name__)

REPRODUCED, SUBMITTED, REPORTED = "reproduced", "submitted", "reported by the paper"
KIND_ORDER = [REPRODUCED, SUBMITTED, REPORTED]
OFFLINE_PHASE = "test"
#: Shown in percent, like Table II; other metrics (CTR) as fractions.
PERCENT_METRICS = ("recall", "precision", "ndcg")
METRIC_NAMES = {"recall": "Recall", "precision": "Precision", "ndcg": "nDCG", "ctr": "Final CTR"}
#: The metric a section is ranked by until the reader picks another.
HEADLINE = {"offline": "ndcg@20", "online": "ctr"}
CONFIDENCE = 0.95
#: Points per learning curve on the page: enough for its shape, few enough to keep the page small.
CURVE_POINTS = 150
#: Figure 2's line styles as SVG dash patterns.
DASHES = {"-": "", "--": "7 4", "-.": "7 3 1.5 3", ":": "1.5 3"}
TEMPLATE = "report/leaderboard_page.html"
DATA_PLACEHOLDER = "/*LEADERBOARD_DATA*/"
JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
#: Largest submission file read (1 MB): the page embeds what it shows, so it stays small.
MAX_SUBMISSION_BYTES = 1_000_000


# ---------------------------------------------------------------------------- inputs

def load_submissions(directory: str | Path,
                     max_bytes: int = MAX_SUBMISSION_BYTES) -> tuple[pd.DataFrame, list[Rejected]]:
    """Valid submitted runs (rows like ``load_runs``) and the rejected files with why.
    A missing directory means no submissions. Hidden files are skipped; a file over
    `max_bytes` or a second file for the same (dataset, method, seed) is rejected."""
    directory = Path(directory)
    rows, rejected, seen = [], [], {}
    paths = sorted(p for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else []
    for path in paths:
        if any(part.startswith(".") for part in path.relative_to(directory).parts) or path.name == "README.md":
            continue
        try:
            if path.suffix != ".json":
                raise RunFileError(f"{path}: not a .json run file")
            record = read_run(path, max_bytes=max_bytes)
            key = (record["dataset"], record["method"], record["seed"])
            if key in seen:
                raise RunFileError(f"{path}: a second submission for dataset={key[0]!r}, method={key[1]!r}, "
                                   f"seed={key[2]} (first: {seen[key]})")
            row = run_row(record, path)
            seen[key] = path
            rows.append(row)
        except Exception as error:   # whatever one file breaks, the others still show
            rejected.append(rejection(path, error))
            log.warning("submission rejected: %s", rejected[-1].reason)
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
                mean, std = mean_std(present[column])
                values[name] = {"mean": mean, "std": std if len(present) > 1 else None,
                                "n": len(present), "ci": interval(mean, std, len(present)),
                                "per_seed": dict(zip(present["seed"].astype(int), present[column].astype(float)))}
        finished = ok["finished_at"].dropna()
        rows.append({
            "dataset": dataset, "setting": group["setting"].iloc[0], "kind": kind, "method": method,
            "n_seeds": len(ok), "n_failed": int((group["status"] == "failed").sum()),
            "metrics": values,
            "commit": _joined(ok["git_commit"]), "commits": sorted({str(c) for c in ok["git_commit"].dropna()}),
            "config_hash": _joined(ok["config_hash"]),
            "hardware": _joined(ok["hardware"].fillna(ok["device"])), "device": _joined(ok["device"]),
            "wall_time_s": mean_std(ok["wall_time_s"])[0] if len(ok) else None,
            "date": str(finished.max()) if len(finished) else "",
            "substitutes": sorted({s for subs in group["substitutes"] for s in subs}),
            "source": _joined(group["path"]) if kind == SUBMITTED else "results/runs",
            "errors": _joined(group["error_type"]),
            "curve": curve(ok),
        })
    return rows


def interval(mean: float, std: float, n: int) -> list[float] | None:
    """The CONFIDENCE interval of a mean over `n` seeds (Student's t); None below two seeds."""
    if n < 2:
        return None
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / np.sqrt(n)
    return [mean - half, mean + half]


def _rounded(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(f"{v:.5g}") for v in values]


def curve(ok: pd.DataFrame) -> dict[str, Any] | None:
    """Figure 2's line and band of one method's ok online runs: mean CTR per episode
    and its sample std (None where one seed has the episode), at most CURVE_POINTS
    evenly spaced points of it; None without curves."""
    if "curve" not in ok or not ok["curve"].map(bool).any():
        return None
    band = figures.thinned(figures.curve_band(ok), CURVE_POINTS)
    return {"episode": band.episode.tolist(), "mean": _rounded(band.mean), "std": _rounded(band.std),
            "n_seeds": band.n_seeds}


def reported_rows(reported: pd.DataFrame, source: str) -> list[dict[str, Any]]:
    """One row per (dataset, method) of a reported-numbers table (percent -> fraction)."""
    rows = []
    for (dataset, method), group in reported.groupby(["dataset", "method"], sort=False):
        values = {f"{r.metric}@{r.k}": {"mean": r.mean_percent / 100.0, "std": r.std_percent / 100.0, "n": None,
                                        "ci": None}
                  for r in group.itertuples()}
        rows.append({
            "dataset": dataset, "setting": "offline", "kind": REPORTED, "method": method, "n_seeds": None,
            "n_failed": 0, "metrics": values, "commit": "", "commits": [], "config_hash": "", "hardware": "",
            "device": "", "wall_time_s": None, "date": "", "substitutes": [], "source": source, "errors": "",
            "curve": None,
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


def attach_paper_numbers(rows: list[dict[str, Any]]) -> None:
    """Each reproduced cell with a reported number of the same dataset, method and
    metric gets it beside its own ("paper": mean and std)."""
    reported = {(row["dataset"], row["method"]): row["metrics"] for row in rows if row["kind"] == REPORTED}
    for row in rows:
        paper = reported.get((row["dataset"], row["method"]), {}) if row["kind"] == REPRODUCED else {}
        for metric, cell in row["metrics"].items():
            if metric in paper:
                cell["paper"] = {"mean": paper[metric]["mean"], "std": paper[metric]["std"]}


def mark_ranks(rows: list[dict[str, Any]], metrics: Sequence[str]) -> None:
    """Per metric, every row of one section that has it gets its "rank" (1 = highest
    mean; equal means share the better rank, as 1, 2, 2, 4)."""
    for metric in metrics:
        having = [row for row in rows if metric in row["metrics"]]
        ranks = stats.rankdata([-row["metrics"][metric]["mean"] for row in having], method="min")
        for row, rank in zip(having, ranks):
            row["metrics"][metric]["rank"] = int(rank)


def mean_ranks(sections: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Setting -> metric -> one entry per reproduced method: its rank among the
    reproduced rows of each section where it has the metric (equal means share the
    average rank), their mean and number; best mean rank first, then more sections."""
    ranks: dict[str, dict[str, dict[str, list]]] = {}
    for section in sections:
        for metric in (m["key"] for m in section["metrics"]):
            having = [row for row in section["rows"] if row["kind"] == REPRODUCED and metric in row["metrics"]]
            average = stats.rankdata([-row["metrics"][metric]["mean"] for row in having], method="average")
            for row, rank in zip(having, average):
                ranks.setdefault(section["setting"], {}).setdefault(metric, {}).setdefault(row["method"], []).append(
                    {"dataset": section["name"], "rank": float(rank), "of": len(having)})
    return {setting: {metric: sorted(({"method": method, "mean_rank": float(np.mean([r["rank"] for r in per])),
                                       "n": len(per), "ranks": per} for method, per in methods.items()),
                                     key=lambda entry: (entry["mean_rank"], -entry["n"], entry["method"]))
                      for metric, methods in by_metric.items()}
            for setting, by_metric in ranks.items()}


def _metric_info(key: str) -> dict[str, Any]:
    base, _, k = key.partition("@")
    percent = base in PERCENT_METRICS
    label = METRIC_NAMES.get(base, base) + (f"@{k}" if k else "") + (" (%)" if percent else "")
    return {"key": key, "label": label, "percent": percent}


def build_leaderboard(runs: pd.DataFrame, submissions: pd.DataFrame, rejected: Sequence[Rejected],
                      reported: pd.DataFrame | None, reported_source: str,
                      order: Sequence[str] = (), repository: str | None = None) -> dict[str, Any]:
    """The page's data: sections (one per dataset/simulator; `order` first, then the
    rest sorted) with their metrics, headline metric and rows, the mean ranks over
    sections, the metrics of each setting, links of the registered methods (to
    `repository`'s web pages when given), the rejected files (runs and submissions)
    and the legend."""
    rows = run_rows(runs, REPRODUCED) + run_rows(submissions, SUBMITTED)
    if reported is not None:
        rows += reported_rows(reported, reported_source)
    mark_significance(rows)
    attach_paper_numbers(rows)
    names = list(dict.fromkeys([*order, *sorted({row["dataset"] for row in rows})]))
    sections = []
    for name in names:
        section_rows = [row for row in rows if row["dataset"] == name]
        if not section_rows:
            continue
        section_rows.sort(key=lambda row: KIND_ORDER.index(row["kind"]))
        metrics = sorted({m for row in section_rows for m in row["metrics"]}, key=_metric_order)
        mark_ranks(section_rows, metrics)
        for index, row in enumerate(r for r in section_rows if r["curve"]):
            style = figures.line_style(index)
            row["curve"].update(color=style["color"], dash=DASHES[style["linestyle"]])
        for row in section_rows:
            row["commits"] = [commit_link(sha, repository) for sha in row["commits"]]
            for cell in row["metrics"].values():
                cell.pop("per_seed", None)
        setting = section_rows[0]["setting"]
        sections.append({
            "name": name, "setting": setting, "metrics": [_metric_info(m) for m in metrics],
            # None when every run of the section failed: its rows have no metric.
            "headline": HEADLINE[setting] if HEADLINE[setting] in metrics else next(iter(metrics), None),
            "rows": section_rows,
        })
    keys_of: dict[str, set[str]] = {}
    for section in sections:
        keys_of.setdefault(section["setting"], set()).update(m["key"] for m in section["metrics"])
    setting_metrics = {setting: sorted(keys, key=_metric_order) for setting, keys in keys_of.items() if keys}
    return {
        "sections": sections,
        "overall": mean_ranks(sections),
        "metrics": {setting: [_metric_info(m) for m in keys] for setting, keys in setting_metrics.items()},
        "headline": {setting: HEADLINE[setting] if HEADLINE[setting] in keys else keys[0]
                     for setting, keys in setting_metrics.items()},
        "methods": method_links({row["method"] for row in rows}, repository),
        "rejected": [{"path": r.path, "reason": r.reason} for r in rejected],
        "legend": [
            "Rank: position by the headline metric's mean among all rows of the section (ties share the better "
            "rank). Pick the headline metric of the offline datasets above the table; the simulators are ranked "
            "by their final CTR.",
            "Mean ± sample standard deviation (ddof=1) over ok seeds; offline metrics on the test split, in percent; "
            f"CTR as a fraction. {CONFIDENCE:.0%} interval: Student's t confidence interval of the mean over the "
            "seeds (none for one seed, nor for the paper's numbers, whose seeds are not given).",
            f"Chart: dot = mean, bar = its {CONFIDENCE:.0%} interval, hollow diamond = the paper's number, thin "
            "vertical line = the best reproduced mean; one axis per table (its range heads the chart column).",
            "Bold: best reproduced mean of the section. " + MARKER_LEGEND,
            f"Significance is computed among reproduced rows only (alpha = {ALPHA}); submitted and reported rows "
            "are never pooled with them or tested.",
            "Reported by the paper: numbers as printed in the IMRL paper's Table II; the paper does not give "
            "its number of seeds. \"paper\" under a reproduced number is the same method's reported number.",
            "Overall: each reproduced method's rank on every dataset (or simulator) where it ran, among the "
            "reproduced methods there (ties share the average rank), and their mean; fewer datasets make a mean "
            "rank less certain.",
            "Learning curves: mean test CTR over seeds after each block of training episodes, shaded ± one sample "
            "standard deviation (the data of Figure 2).",
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
