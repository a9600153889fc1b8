"""Table II of the paper: top-K recommendation on the offline datasets.

Rows are methods, column groups are datasets x (Recall, Precision, nDCG); a cell is
the mean ± sample standard deviation (ddof=1) over seeds of the test-phase metric, in
percent with three decimals as in the paper. The best value of each column is bold
and the second best marked `*`. Written as reports/table2.md, .csv (tidy: one row per
method x dataset x metric) and .tex (booktabs).

Conventions, also printed under the table:
- Ranks compare the displayed (rounded) means, so what looks equal is equal: tied
  values share their rank (all bold) and `*` marks the next distinct value.
- With one seed the standard deviation is undefined and shown as "n/a", not 0.
- Failed runs are shown, never dropped: a (method, dataset) whose every seed failed
  reads "failed [i]" with the error in note i; when only some seeds failed the cell is
  the mean over the ok seeds marked "[k/n seeds]" and a note. A run file the report
  rejected (``imrl.report.results.load_grid``) counts as a failed seed whose note is
  the reason. A cell with no run reads "–". A cell whose seed count differs from the table's usual one is marked
  "[k seeds]".
- Seeds of one cell that ran on different kinds of device (CPU and GPU, whose kernels
  give different numbers) are pooled in its mean and said so in a note.

The tidy ``Table2.cells`` frame is the single source of all three renderings, so
later additions (significance markers, reported-versus-reproduced columns) extend it
and the renderers rather than recomputing anything.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from imrl.io import atomic_write_text
from imrl.report.results import RunFileError, load_runs, mean_std
from imrl.report.significance import MARKER_LEGEND, compare_with_best

#: Table II's measures, in the paper's column order: metric key -> column label.
METRICS = {"recall": "Recall", "precision": "Precision", "ndcg": "nDCG"}
PHASE = "test"
DECIMALS = 3
#: The paper prints two datasets per block of columns.
DATASETS_PER_BLOCK = 2
#: Longest error message kept in a note.
MAX_ERROR = 160

CSV_COLUMNS = [
    "method", "dataset", "metric", "k", "mean_percent", "std_percent", "n_ok", "n_failed",
    "seeds_ok", "seeds_failed", "rank", "note", "errors",
    # Significance of the column's best method against this one (imrl.report.significance).
    "best_method", "n_paired", "mean_difference_percent", "p_ttest", "p_ttest_holm", "p_wilcoxon",
    "significant", "test_note", "cell",
]
SIGNIFICANCE_COLUMNS = CSV_COLUMNS[CSV_COLUMNS.index("best_method"):-1]


@dataclass
class Table2:
    cells: pd.DataFrame          # one row per (method, dataset, metric); CSV_COLUMNS but "cell"
    methods: list[str]           # row order
    datasets: list[str]          # column-group order
    k: int
    notes: list[str]             # failure and device notes; a cell's "note" is its 1-based index here
    usual_seeds: int | None      # seeds per cell in most cells; others are marked
    not_available: list[str] = field(default_factory=list)  # named by the config, not implemented yet
    environments: dict[str, list[str]] = field(default_factory=dict)  # dataset -> the RL runs' environments


# ---------------------------------------------------------------------------- numbers

def build_table2(runs: pd.DataFrame, k: int = 20, datasets: Sequence[str] | None = None,
                 methods: Sequence[str] | None = None, not_available: Sequence[str] = ()) -> Table2:
    """Aggregate the offline runs of ``load_runs`` into Table II's cells. `methods` and
    `datasets` fix the order (config or registry order) and which are shown; by default
    every method and dataset with an offline run, sorted."""
    offline = runs[runs["setting"] == "offline"]
    methods = list(methods) if methods is not None else sorted(offline["method"].unique())
    datasets = list(datasets) if datasets is not None else sorted(offline["dataset"].unique())
    notes: list[str] = []
    rows = []
    per_seed: dict[tuple[str, str, str], dict[int, float]] = {}   # (method, dataset, metric) -> seed -> value
    for method in methods:
        for dataset in datasets:
            group = offline[(offline["method"] == method) & (offline["dataset"] == dataset)]
            ok = group[group["status"] == "ok"]
            failed = group[group["status"] == "failed"]
            errors = _failure_summary(failed)
            mixed = _device_mixture(ok)
            if errors or mixed:
                notes.append(f"{method} on {dataset}: " + "; ".join(filter(None, (errors, mixed))))
            for metric in METRICS:
                percent = 100.0 * _metric_values(ok, f"{metric}@{k}")
                per_seed[method, dataset, metric] = dict(zip(ok["seed"], percent))
                mean, std = mean_std(percent)
                rows.append({
                    "method": method, "dataset": dataset, "metric": metric, "k": k,
                    "mean_percent": mean, "std_percent": std,
                    "n_ok": len(ok), "n_failed": len(failed),
                    "seeds_ok": _seed_list(ok), "seeds_failed": _seed_list(failed),
                    "note": len(notes) if errors or mixed else None,
                    "errors": errors or None,
                })
    cells = pd.DataFrame(rows, columns=[c for c in CSV_COLUMNS if c not in ("rank", "cell", *SIGNIFICANCE_COLUMNS)])
    cells["note"] = cells["note"].astype("Int64")
    cells["rank"] = _ranks(cells)
    cells = cells.join(_significance(cells, per_seed))
    totals = [n for n in cells["n_ok"] + cells["n_failed"] if n > 0]
    usual = Counter(totals).most_common(1)[0][0] if totals else None
    return Table2(cells, methods, datasets, k, notes, usual, list(not_available), _environments(offline, datasets))


ENVIRONMENT_NAMES = {"user_model": "the user model fitted on the train split (the paper's, its [32])",
                     "replay": "log replay (DRR-style, not the paper's)",
                     "knowledge_graph": "PGPR's own knowledge-graph walks"}


def _environments(offline: pd.DataFrame, datasets: Sequence[str]) -> dict[str, list[str]]:
    """Per dataset, the offline environments its RL runs trained in (as their results say)."""
    column = offline["environment"] if "environment" in offline else pd.Series(dtype=object)
    order = list(ENVIRONMENT_NAMES)
    found = {dataset: sorted(set(column[(offline["dataset"] == dataset) & column.notna()]),
                             key=lambda kind: (order.index(kind) if kind in order else len(order), kind))
             for dataset in datasets}
    return {dataset: kinds for dataset, kinds in found.items() if kinds}


def _metric_values(ok_runs: pd.DataFrame, name: str) -> np.ndarray:
    """The test-phase metric of every ok run; a run without it is a bad file, named."""
    column = f"{PHASE}/{name}"
    values = ok_runs[column] if column in ok_runs else pd.Series(np.nan, index=ok_runs.index)
    for index in values.index[values.isna()]:
        run = ok_runs.loc[index]
        present = sorted(c.split("/", 1)[1] for c in run.index
                         if c.startswith(f"{PHASE}/") and pd.notna(run[c]))
        raise RunFileError(f"{run['path']}: metrics.{PHASE}: no {name!r} for Table II "
                           f"(has: {', '.join(present) or 'nothing'})")
    return values.to_numpy(dtype=float)


def _seed_list(runs: pd.DataFrame) -> str:
    return ";".join(str(seed) for seed in sorted(runs["seed"]))


def _failure_summary(failed: pd.DataFrame) -> str:
    """"seeds 0, 2: ValueError: first line of the message"; one part per distinct error."""
    by_error: dict[str, list[int]] = {}
    for run in failed.itertuples():
        lines = str(run.error_message or "").strip().splitlines() or [""]
        message = lines[0] if len(lines[0]) <= MAX_ERROR else lines[0][: MAX_ERROR - 3] + "..."
        by_error.setdefault(f"{run.error_type}: {message}".rstrip(": "), []).append(run.seed)
    parts = []
    for error, seeds in by_error.items():
        label = "seed" if len(seeds) == 1 else "seeds"
        parts.append(f"{label} {', '.join(map(str, sorted(seeds)))}: {error}")
    return "; ".join(parts)


def _device_mixture(ok: pd.DataFrame) -> str:
    """"seeds ran on different devices (cpu: seed 0; cuda: seeds 1, 2), pooled in the mean"
    when the ok seeds of one cell ran on more than one kind of device; "" otherwise (CPU and
    GPU kernels give different numbers: the mean should not hide that)."""
    if "device" not in ok:
        return ""
    kinds = ok["device"].fillna("unknown").astype(str).str.split(":").str[0]
    if kinds.nunique() < 2:
        return ""
    parts = []
    for kind in sorted(kinds.unique()):
        seeds = sorted(ok["seed"][kinds == kind])
        parts.append(f"{kind}: {'seed' if len(seeds) == 1 else 'seeds'} {', '.join(map(str, seeds))}")
    return f"seeds ran on different devices ({'; '.join(parts)}), pooled in the mean"


def _displayed(mean: float) -> float:
    return float(f"{mean:.{DECIMALS}f}")


def _ranks(cells: pd.DataFrame) -> pd.Series:
    """1 = best, 2 = second best per (dataset, metric), higher is better, on displayed
    values: ties share a rank and 2 goes to the next distinct value."""
    ranks = pd.Series(pd.NA, index=cells.index, dtype="Int64")
    for _, column in cells.groupby(["dataset", "metric"], sort=False):
        shown = column["mean_percent"].dropna().map(_displayed)
        distinct = sorted(set(shown), reverse=True)[:2]
        for rank, value in enumerate(distinct, start=1):
            ranks[shown.index[shown == value]] = rank
    return ranks


def _significance(cells: pd.DataFrame, per_seed: dict[tuple[str, str, str], dict[int, float]]) -> pd.DataFrame:
    """Per cell: the column's best method (first rank-1 method in row order) against
    this cell's method over matched seeds; empty for the best's own cell."""
    out = pd.DataFrame(index=cells.index, columns=SIGNIFICANCE_COLUMNS, dtype=object)
    for (dataset, metric), column in cells.groupby(["dataset", "metric"], sort=False):
        best_rows = column[column["rank"] == 1]
        if best_rows.empty:
            continue
        best = best_rows["method"].iloc[0]
        comparisons = compare_with_best({m: per_seed[m, dataset, metric] for m in column["method"]}, best)
        for index, method in column["method"].items():
            out.at[index, "best_method"] = best
            if method == best:
                continue
            comparison = comparisons[method]
            out.loc[index, SIGNIFICANCE_COLUMNS[1:]] = [
                comparison.n, comparison.mean_difference, comparison.p_ttest, comparison.p_ttest_holm,
                comparison.p_wilcoxon, comparison.significant, comparison.reason]
    return out


# ---------------------------------------------------------------------------- text

@dataclass(frozen=True)
class Markup:
    escape: Callable[[str], str]
    plus_minus: str
    best: Callable[[str], str]
    second: Callable[[str], str]
    no_run: str
    significant: str     # appended to a cell significantly below its column's best


def escape_markdown(text: str) -> str:
    """Text safe in a Markdown table cell: one line, no HTML, no table or emphasis syntax."""
    text = " ".join(str(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join("\\" + char if char in "\\`*_[]|" else char for char in text)


LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
    "[": "{[}", "]": "{]}",   # a "[" right after a row break would be read as its argument
    "±": r"$\pm$", "–": "--",
}


def escape_latex(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(char, char) for char in " ".join(str(text).split()))


MARKDOWN = Markup(escape_markdown, " ± ", lambda s: f"**{s}**", lambda s: s + "\\*", "–", "†")
LATEX = Markup(escape_latex, r" $\pm$ ", lambda s: rf"\textbf{{{s}}}", lambda s: s + "*", "--", r"$^\dagger$")
PLAIN = Markup(str, " ± ", str, str, "–", "")  # CSV: rank and significance have their own columns


def format_cell(cell: pd.Series, markup: Markup, usual_seeds: int | None) -> str:
    n_ok, n_failed = int(cell["n_ok"]), int(cell["n_failed"])
    if n_ok == 0:
        text = "failed" if n_failed else markup.no_run
    else:
        std = f"{cell['std_percent']:.{DECIMALS}f}" if n_ok > 1 else "n/a"
        text = f"{cell['mean_percent']:.{DECIMALS}f}{markup.plus_minus}{std}"
        rank = cell["rank"]
        if pd.notna(rank):
            text = markup.best(text) if rank == 1 else markup.second(text)
        if pd.notna(cell["significant"]) and bool(cell["significant"]):
            text += markup.significant
        if n_failed:
            text += f" [{n_ok}/{n_ok + n_failed} seeds]"
        elif n_ok != usual_seeds:
            text += f" [{n_ok} seed{'s' if n_ok > 1 else ''}]"
    if pd.notna(cell["note"]):
        text += f" [{cell['note']}]"
    return text


def legend(table: Table2) -> list[str]:
    """Plain-text notes under the table: conventions that apply, then the failures."""
    cells = table.cells
    lines = [
        f"Top-{table.k} recommendation, {PHASE} split. Values in percent: mean ± sample "
        f"standard deviation (ddof=1) over seeds"
        + (f", {table.usual_seeds} seed(s) per cell unless marked [k seeds] or [k/n seeds] "
           f"(k ok of n run)." if table.usual_seeds else "."),
        "Bold: best in its column; *: second best. Ranks compare the displayed values: "
        "ties share a rank and * goes to the next distinct value.",
        MARKER_LEGEND + " The p-values (t-test raw and Holm-adjusted; Wilcoxon signed-rank from "
        "6 matched seeds on) are in table2.csv.",
    ]
    if (cells["n_ok"] == 1).any():
        lines.append("± n/a: a single ok seed, so no standard deviation.")
    if ((cells["n_ok"] == 0) & (cells["n_failed"] == 0)).any():
        lines.append("–: no run.")
    if table.environments:
        lines.append("The offline RL runs trained in: " + "; ".join(
            f"{dataset}: {', '.join(ENVIRONMENT_NAMES.get(kind, kind) for kind in kinds)}"
            for dataset, kinds in table.environments.items())
            + " (PROTOCOL.md, \"Offline environments\").")
    if table.not_available:
        lines.append("Named by the configuration but not available in this run (not implemented yet, or missing input), "
                     "so not run: " + ", ".join(table.not_available) + ".")
    if table.notes:
        lines.append("[i]: note i below: the runs that failed there, which are in no mean (failed: "
                     "every seed failed), or seeds that ran on different devices (CPU and GPU).")
    return lines + [f"[{number}] {note}" for number, note in enumerate(table.notes, start=1)]


def _blocks(datasets: list[str], size: int) -> list[list[str]]:
    return [datasets[i:i + size] for i in range(0, len(datasets), size)] or [[]]


def _row_cells(table: Table2, method: str, datasets: Iterable[str], markup: Markup) -> list[str]:
    cells = table.cells
    return [format_cell(cells[(cells["method"] == method) & (cells["dataset"] == dataset)
                              & (cells["metric"] == metric)].iloc[0], markup, table.usual_seeds)
            for dataset in datasets for metric in METRICS]


def render_markdown(table: Table2, datasets_per_block: int = DATASETS_PER_BLOCK) -> str:
    out = [f"# Table II: top-{table.k} recommendation on the offline datasets", ""]
    for block in _blocks(table.datasets, datasets_per_block):
        header = ["Method"] + [f"{escape_markdown(d)}: {label} (%)" for d in block for label in METRICS.values()]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join([" :-- "] + [" --: "] * (len(header) - 1)) + "|")
        for method in table.methods:
            row = [escape_markdown(method)] + _row_cells(table, method, block, MARKDOWN)
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    if not table.methods:
        out += ["No offline runs found.", ""]
    out += [f"- {escape_markdown(line)}" for line in legend(table)]
    return "\n".join(out) + "\n"


def render_latex(table: Table2, datasets_per_block: int = DATASETS_PER_BLOCK) -> str:
    out = [
        "% Table II, generated by imrl.report.table2 from results/runs; needs \\usepackage{booktabs}.",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{Top-{table.k} recommendation on the offline datasets ({PHASE} split), in percent: "
        "mean $\\pm$ sample standard deviation over seeds. Best in bold, second best marked *.}",
        "\\label{tab:table2}",
    ]
    width = len(METRICS)
    for number, block in enumerate(_blocks(table.datasets, datasets_per_block)):
        if number:
            out.append("\\par\\medskip")
        out.append(f"\\begin{{tabular}}{{l{'r' * width * len(block)}}}")
        out.append("\\toprule")
        out.append(" & ".join(["Dataset"] + [f"\\multicolumn{{{width}}}{{c}}{{{escape_latex(d)}}}" for d in block])
                   + " \\\\")
        out.append("".join(f"\\cmidrule(lr){{{2 + i * width}-{1 + (i + 1) * width}}}" for i in range(len(block))))
        out.append(" & ".join(["Measure (\\%)"] + list(METRICS.values()) * len(block)) + " \\\\")
        out.append("\\midrule")
        for method in table.methods:
            out.append(" & ".join([escape_latex(method)] + _row_cells(table, method, block, LATEX)) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}"]
    out += ["", "\\par\\smallskip", "{\\footnotesize"]
    out += [escape_latex(line) + "\\par" for line in legend(table)]
    out += ["}", "\\end{table}"]
    return "\n".join(out) + "\n"


def render_csv(table: Table2) -> str:
    cells = table.cells.copy()
    cells["cell"] = [format_cell(cell, PLAIN, table.usual_seeds) for _, cell in cells.iterrows()]
    return cells[CSV_COLUMNS].to_csv(index=False, float_format="%.6f")


# ---------------------------------------------------------------------------- files

def write_table2(runs_df: pd.DataFrame, out_dir: str | Path, metric_k: int = 20,
                 datasets: Sequence[str] | None = None, methods: Sequence[str] | None = None,
                 datasets_per_block: int = DATASETS_PER_BLOCK, not_available: Sequence[str] = ()) -> dict[str, Path]:
    """Write table2.md, table2.csv and table2.tex into `out_dir`, each atomically;
    return their paths by extension."""
    return save_table2(build_table2(runs_df, metric_k, datasets, methods, not_available), out_dir, datasets_per_block)


def save_table2(table: Table2, out_dir: str | Path, datasets_per_block: int = DATASETS_PER_BLOCK) -> dict[str, Path]:
    out_dir = Path(out_dir)
    texts = {
        "md": render_markdown(table, datasets_per_block),
        "csv": render_csv(table),
        "tex": render_latex(table, datasets_per_block),
    }
    paths = {}
    for extension, text in texts.items():
        paths[extension] = out_dir / f"table2.{extension}"
        atomic_write_text(paths[extension], text)
    return paths


def table2_from_results(runs_root: str | Path, out_dir: str | Path,
                        datasets: Sequence[str] | None = None, methods: Sequence[str] | None = None,
                        k: int = 20) -> dict[str, Path]:
    """Table II from a runs tree (``results/runs``: <dataset>/<method>/seed<k>.json)."""
    return write_table2(load_runs(runs_root), out_dir, k, datasets, methods)
