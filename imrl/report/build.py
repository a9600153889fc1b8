"""All reports of one configuration, from results/ alone (no training).

``build_reports`` loads the configuration's runs once (its datasets x methods and
simulators x online methods, its seeds; nothing else under results/runs, and a file
that fails to read is rejected, not fatal) and hands a ``ReportContext`` to each report
builder in turn (``DEFAULT_BUILDERS``: Table II with significance and its comparison
with the paper, Figures 2 and 3, the leaderboard). A report made from results/ joins by
adding a function of the context to that list, or is passed in ``builders``. Table I is
not one: it is made from data/processed (dataset statistics), by its own rule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from imrl.registry import PROJECT_ROOT
from imrl.report import figures, leaderboard
from imrl.report.links import repository_url
from imrl.report.reported import load_reported, write_comparison
from imrl.report.results import GridRun, Rejected, load_grid
from imrl.report.table2 import METRICS, build_table2, save_table2

log = logging.getLogger(__name__)

#: Paths relative to the results directory's parent (results/).
REPORTED_TABLE2 = "reported/imrl-paper-table2.csv"
SUBMISSIONS = "submissions"
LEADERBOARD_CSV = "leaderboard.csv"


@dataclass(frozen=True)
class ReportContext:
    """What every report builder gets.

    config: name, datasets and methods (display order, offline), simulators and
    online_methods (may be absent: online runs not configured), seeds, table_k,
    not_available. runs: every run of this configuration (``load_grid`` rows; a
    rejected file is a failed row), rejected_runs: those files and why."""
    runs: pd.DataFrame
    config: dict[str, Any]
    runs_dir: Path          # results/runs
    out_dir: Path           # reports/
    reported: Path          # the paper's Table II (results/reported/imrl-paper-table2.csv)
    submissions: Path       # results/submissions
    leaderboard_csv: Path   # results/leaderboard.csv
    rejected_runs: tuple[Rejected, ...] = ()
    max_submission_bytes: int = leaderboard.MAX_SUBMISSION_BYTES

    @property
    def online_methods(self) -> list[str]:
        return list(self.config.get("online_methods", []))

    @property
    def simulators(self) -> list[str]:
        return list(self.config.get("simulators", []))


Builder = Callable[[ReportContext], Any]


def table2_report(context: ReportContext) -> None:
    """reports/table2.{md,csv,tex} and reports/table2_vs_paper.{md,csv}."""
    config = context.config
    table = build_table2(context.runs, config["table_k"], config["datasets"], config["methods"],
                         not_available=config["not_available"])
    save_table2(table, context.out_dir)
    write_comparison(table, context.reported, context.out_dir)


def figures_report(context: ReportContext) -> None:
    """reports/figure2.{png,pdf} and reports/figure3.{png,pdf}."""
    figures.figure2(context.runs, context.online_methods, context.out_dir)
    figures.figure3(context.runs, context.simulators, context.out_dir)


def leaderboard_report(context: ReportContext) -> None:
    """reports/leaderboard.html and results/leaderboard.csv; commits and METHODS.md link
    to the web pages of this project's git remote when it has one."""
    submissions, rejected = leaderboard.load_submissions(context.submissions, context.max_submission_bytes)
    data = leaderboard.build_leaderboard(
        context.runs, submissions, [*context.rejected_runs, *rejected], load_reported(context.reported),
        f"IMRL paper, Table II ({context.reported.name})",
        order=[*context.config["datasets"], *context.simulators], repository=repository_url(PROJECT_ROOT))
    leaderboard.write_leaderboard(data, context.out_dir / "leaderboard.html", context.leaderboard_csv)


DEFAULT_BUILDERS: list[Builder] = [table2_report, figures_report, leaderboard_report]


def run_grid(report_config: dict[str, Any]) -> list[GridRun]:
    """Every run the configuration names: datasets x methods offline, simulators x
    online methods online, each with every seed."""
    if "seeds" not in report_config:
        raise ValueError("report config: no 'seeds' (the seeds whose runs the reports read)")
    seeds = report_config["seeds"]
    return ([(d, m, s, "offline") for d in report_config["datasets"] for m in report_config["methods"] for s in seeds]
            + [(d, m, s, "online") for d in report_config.get("simulators", [])
               for m in report_config.get("online_methods", []) for s in seeds])


def build_reports(results_dir: str | Path, out_dir: str | Path, report_config: dict[str, Any],
                  builders: Sequence[Builder] | None = None, reported: str | Path | None = None,
                  submissions: str | Path | None = None, leaderboard_csv: str | Path | None = None,
                  max_submission_bytes: int | None = None) -> None:
    """`results_dir` is the runs tree (results/runs); the reported numbers, the
    submissions and the leaderboard CSV default to their places beside it in results/.
    `builders` default to DEFAULT_BUILDERS; `max_submission_bytes` to
    ``leaderboard.MAX_SUBMISSION_BYTES``."""
    runs, rejected = load_grid(results_dir, run_grid(report_config),
                               [f"{metric}@{report_config['table_k']}" for metric in METRICS])
    results = Path(results_dir).parent
    context = ReportContext(runs, report_config, Path(results_dir), Path(out_dir),
                            Path(reported or results / REPORTED_TABLE2), Path(submissions or results / SUBMISSIONS),
                            Path(leaderboard_csv or results / LEADERBOARD_CSV), tuple(rejected),
                            leaderboard.MAX_SUBMISSION_BYTES if max_submission_bytes is None else max_submission_bytes)
    for builder in builders if builders is not None else DEFAULT_BUILDERS:
        log.info("report: %s", builder.__name__)
        builder(context)
