"""Numbers a paper reported, beside the numbers reproduced here.

``results/reported/imrl-paper-table2.csv`` holds the IMRL paper's Table II, transcribed
once (its source is in ``results/reported/README.md``). ``compare_with_reported`` sets
each reported cell beside the reproduced Table II cell of the same (dataset, method,
measure, K), with the difference reproduced - reported in percentage points and
relative to the reported value. Only datasets present in both are compared; methods
missing on either side are listed with "–" on that side, so a gap is visible rather
than silently dropped. Written as reports/table2_vs_paper.md and .csv.
"""

from __future__ import annotations

from pathlib import Path
import numpy as np
import pandas as pd

from imrl.io import atomic_write_text
from imrl.report.table2 import DECIMALS, METRICS, Table2, escape_markdown

REPORTED_COLUMNS = ["dataset", "method", "metric", "k", "mean_percent", "std_percent", "marker_printed",
                    "paper_dataset", "paper_method"]
COMPARISON_COLUMNS = [
    "dataset", "method", "metric", "k", "reported_mean_percent", "reported_std_percent",
    "reproduced_mean_percent", "reproduced_std_percent", "reproduced_n_seeds",
    "difference_points", "difference_relative_percent",
]


class ReportedFileError(ValueError):
    """A reported-numbers file that breaks its format; the message names file, row, column."""


def load_reported(path: str | Path) -> pd.DataFrame:
    """Read and check a reported-numbers CSV (REPORTED_COLUMNS; one row per dataset,
    method, metric, k)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ReportedFileError(f"{path}: cannot read as CSV: {error}") from error
    missing = [column for column in REPORTED_COLUMNS if column not in table.columns]
    if missing:
        raise ReportedFileError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(REPORTED_COLUMNS)}")
    for column, kind in (("k", int), ("mean_percent", float), ("std_percent", float)):
        for row, text in enumerate(table[column], start=2):   # line 1 is the header
            try:
                kind(text)
            except ValueError:
                raise ReportedFileError(f"{path}: line {row}, column {column}: {text!r} is not a number") from None
    bad_metric = table.loc[~table["metric"].isin(list(METRICS)), "metric"]
    if len(bad_metric):
        raise ReportedFileError(f"{path}: line {bad_metric.index[0] + 2}, column metric: {bad_metric.iloc[0]!r}; "
                                f"expected one of {', '.join(METRICS)}")
    key = ["dataset", "method", "metric", "k"]
    duplicated = table.duplicated(key)
    if duplicated.any():
        raise ReportedFileError(f"{path}: line {int(np.flatnonzero(duplicated)[0]) + 2}: a second row for "
                                f"{tuple(table.loc[duplicated, key].iloc[0])}")
    return table.astype({"k": int, "mean_percent": float, "std_percent": float})


def compared_datasets(table: Table2, reported: pd.DataFrame) -> list[str]:
    """Datasets with at least one reproduced ok run and a reported number, in table order."""
    cells = table.cells
    reproduced = set(cells.loc[cells["n_ok"] > 0, "dataset"])
    return [d for d in table.datasets if d in reproduced and d in set(reported["dataset"])]


def compare_with_reported(table: Table2, reported: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, method, metric) over the compared datasets (COMPARISON_COLUMNS)."""
    reported = reported[reported["k"] == table.k]
    datasets = compared_datasets(table, reported)
    cells = table.cells.set_index(["dataset", "method", "metric"])
    paper = reported.set_index(["dataset", "method", "metric"])
    rows = []
    for dataset in datasets:
        methods = table.methods + [m for m in dict.fromkeys(reported.loc[reported["dataset"] == dataset, "method"])
                                   if m not in table.methods]
        for method in methods:
            for metric in METRICS:
                ours = cells.loc[(dataset, method, metric)] if (dataset, method, metric) in cells.index else None
                theirs = paper.loc[(dataset, method, metric)] if (dataset, method, metric) in paper.index else None
                if ours is not None and ours["n_ok"] == 0:
                    ours = None
                reported_mean = theirs["mean_percent"] if theirs is not None else np.nan
                reproduced_mean = ours["mean_percent"] if ours is not None else np.nan
                difference = reproduced_mean - reported_mean
                rows.append({
                    "dataset": dataset, "method": method, "metric": metric, "k": table.k,
                    "reported_mean_percent": reported_mean,
                    "reported_std_percent": theirs["std_percent"] if theirs is not None else np.nan,
                    "reproduced_mean_percent": reproduced_mean,
                    "reproduced_std_percent": ours["std_percent"] if ours is not None else np.nan,
                    "reproduced_n_seeds": int(ours["n_ok"]) if ours is not None else 0,
                    "difference_points": difference,
                    "difference_relative_percent": 100.0 * difference / reported_mean if reported_mean else np.nan,
                })
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def _mean_std(mean: float, std: float) -> str:
    if np.isnan(mean):
        return "–"
    return f"{mean:.{DECIMALS}f} ± " + (f"{std:.{DECIMALS}f}" if not np.isnan(std) else "n/a")


def _signed(value: float, suffix: str = "") -> str:
    return "–" if np.isnan(value) else f"{value:+.{DECIMALS}f}{suffix}"


def render_markdown(comparison: pd.DataFrame, table: Table2, reported: pd.DataFrame, source: str) -> str:
    out = [f"# Table II: reported by the paper vs reproduced here (top-{table.k}, percent)", ""]
    if comparison.empty:
        reproduced = sorted(set(table.cells.loc[table.cells["n_ok"] > 0, "dataset"]))
        out.append(f"No dataset is in both. Reproduced: {escape_markdown(', '.join(reproduced) or 'none')}; "
                   f"reported at top-{table.k}: "
                   f"{escape_markdown(', '.join(sorted(set(reported.loc[reported['k'] == table.k, 'dataset']))) or 'none')}.")
        out.append("")
    for dataset, rows in comparison.groupby("dataset", sort=False):
        out += [f"## {escape_markdown(dataset)}", "",
                "| Method | Measure | Reported | Reproduced | Seeds | Difference (points) | Difference (relative) |",
                "| :-- | :-- | --: | --: | --: | --: | --: |"]
        for row in rows.itertuples():
            out.append(" | ".join([
                f"| {escape_markdown(row.method)}", METRICS[row.metric],
                _mean_std(row.reported_mean_percent, row.reported_std_percent),
                _mean_std(row.reproduced_mean_percent, row.reproduced_std_percent),
                str(row.reproduced_n_seeds),
                _signed(row.difference_points), _signed(row.difference_relative_percent, " %")]) + " |")
        out.append("")
    out += [
        f"- Reported: {escape_markdown(source)}, transcribed as printed (mean ± the paper's ±).",
        "- Reproduced: this suite's runs, mean ± sample standard deviation (ddof=1) over ok seeds.",
        "- Difference: reproduced - reported, in percentage points and relative to the reported value. "
        "–: no number on that side.",
    ]
    return "\n".join(out) + "\n"


def write_comparison(table: Table2, reported_path: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """reports/table2_vs_paper.md and .csv (atomically)."""
    reported = load_reported(reported_path)
    comparison = compare_with_reported(table, reported)
    source = f"{Path(reported_path).name} (source: results/reported/README.md)"
    paths = {"md": Path(out_dir) / "table2_vs_paper.md", "csv": Path(out_dir) / "table2_vs_paper.csv"}
    atomic_write_text(paths["md"], render_markdown(comparison, table, reported, source))
    atomic_write_text(paths["csv"], comparison.to_csv(index=False, float_format="%.6f"))
    return paths

