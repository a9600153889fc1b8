"""All reports of one configuration, from results/ alone (no training)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imrl.report.results import load_runs
from imrl.report.table2 import write_table2


def build_reports(results_dir: str | Path, out_dir: str | Path, report_config: dict[str, Any]) -> None:
    """`report_config`: name, datasets and methods (in display order), table_k, and
    not_available (names the config gave that have no implementation yet)."""
    runs = load_runs(results_dir)
    # Only this configuration's grid: other files in results/ are left alone.
    runs = runs[runs["dataset"].isin(report_config["datasets"]) & runs["method"].isin(report_config["methods"])]
    write_table2(runs, out_dir, report_config["table_k"], report_config["datasets"], report_config["methods"],
                 not_available=report_config["not_available"])
