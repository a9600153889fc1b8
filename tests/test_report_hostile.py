"""The report always builds: each hostile submission or broken run file is listed as
rejected with its reason while the valid runs still render, and only the runs the
configuration names are read (a stale run of an earlier configuration is not pooled)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imrl.__main__ import main
from imrl.report import build
from imrl.report.leaderboard import load_submissions
from imrl.report.results import REJECTED, mean_std
from tests.conftest import REPO_ROOT
from tests.crafted_results import (hostile_submissions, leaderboard_data, learning_curve, offline_record,
                                   online_record, write_record)

CONFIG = {"name": "hostile", "datasets": ["synthetic"], "methods": ["top", "mid", "low"], "simulators": ["recsim"],
          "online_methods": ["imrl", "random"], "seeds": [0, 1, 2], "table_k": 20, "not_available": []}
RECALL = {"top": [0.30, 0.31, 0.305], "low": [0.10, 0.13, 0.09]}
OUTPUTS = ["table2.md", "table2.csv", "table2.tex", "table2_vs_paper.md", "table2_vs_paper.csv",
           "figure2.png", "figure2.pdf", "figure3.png", "figure3.pdf", "leaderboard.html"]


def results_tree(tmp_path: Path) -> Path:
    """results/ with valid runs of CONFIG ("mid" has one valid seed of three) and the paper's numbers."""
    runs = tmp_path / "results" / "runs"
    for method, recalls in RECALL.items():
        for seed, recall in enumerate(recalls):
            write_record(runs, offline_record("synthetic", method, seed, (recall, 0.02, 0.05 + 0.001 * seed)))
    write_record(runs, offline_record("synthetic", "mid", 0, (0.2, 0.02, 0.05)))
    for index, method in enumerate(CONFIG["online_methods"]):
        for seed in CONFIG["seeds"]:
            write_record(runs, online_record("recsim", method, seed, learning_curve(0.3 - 0.1 * index, seed)))
    shutil.copytree(REPO_ROOT / "results" / "reported", tmp_path / "results" / "reported")
    return runs


def table2_cell(reports: Path, method: str, metric: str = "recall") -> pd.Series:
    table = pd.read_csv(reports / "table2.csv")
    return table[(table["method"] == method) & (table["metric"] == metric)].iloc[0]


def section_row(data: dict, section: str, method: str, kind: str) -> dict:
    rows = next(s for s in data["sections"] if s["name"] == section)["rows"]
    return next(row for row in rows if row["method"] == method and row["kind"] == kind)


def test_hostile_submissions_and_broken_runs_are_rejected_and_the_rest_builds(tmp_path):
    runs = results_tree(tmp_path)
    # Broken run files of the configuration: a mid seed without Table II's K, one that
    # is not JSON, and an offline record where the configuration runs recsim online.
    write_record(runs, offline_record("synthetic", "mid", 1, k=10))
    (runs / "synthetic" / "mid" / "seed2.json").write_text("{")
    offline_in_recsim = offline_record("recsim", "random", 1)
    write_record(runs, offline_in_recsim)
    broken_runs = {runs / "synthetic" / "mid" / "seed1.json": "metrics.test: no 'recall@20', 'precision@20', "
                                                             "'ndcg@20' for Table II (has: ndcg@10",
                   runs / "synthetic" / "mid" / "seed2.json": "not valid JSON",
                   runs / "recsim" / "random" / "seed1.json": "setting: 'offline', but the configuration runs "
                                                            "'recsim' online"}
    submissions = tmp_path / "results" / "submissions"
    submissions.mkdir()
    (submissions / "theirs.json").write_text(json.dumps(offline_record("synthetic", "theirs", 0, (0.5, 0.1, 0.1))))
    hostile = hostile_submissions("synthetic")
    for name, (text, _) in hostile.items():
        (submissions / name).write_text(text)

    reports = tmp_path / "reports"
    main(["report", "--results", str(runs), "--out", str(reports), "--config", json.dumps(CONFIG)])

    for name in OUTPUTS:
        assert (reports / name).stat().st_size > 0, name
    data = leaderboard_data(reports / "leaderboard.html")
    reasons = {Path(item["path"]): item["reason"] for item in data["rejected"]}
    assert set(reasons) == {submissions / name for name in hostile} | set(broken_runs)
    for name, (_, expected) in hostile.items():
        assert reasons[submissions / name].startswith(f"{submissions / name}: ") and expected in reasons[
            submissions / name], name
    for path, expected in broken_runs.items():
        assert reasons[path].startswith(f"{path}: ") and expected in reasons[path], path
    # The page stays small: the 2 MB submission is not in it.
    assert (reports / "leaderboard.html").stat().st_size < 200_000

    # Valid runs and the valid submission render.
    assert section_row(data, "synthetic", "theirs", "submitted")["metrics"]["recall@20"]["mean"] == 0.5
    top = section_row(data, "synthetic", "top", "reproduced")
    assert top["metrics"]["recall@20"]["mean"] == pytest.approx(np.mean(RECALL["top"])) and top["n_seeds"] == 3
    assert section_row(data, "recsim", "imrl", "reproduced")["n_seeds"] == 3
    random = section_row(data, "recsim", "random", "reproduced")
    assert (random["n_seeds"], random["n_failed"], random["errors"]) == (2, 1, REJECTED)
    assert {row["method"] for s in data["sections"] for row in s["rows"]} & {"hostile", "huge", "huge-online"} == set()

    # Table II: a rejected run is a failed seed whose note gives the reason.
    mid = table2_cell(reports, "mid")
    assert (mid["n_ok"], mid["n_failed"], mid["seeds_failed"]) == (1, 2, "1;2")
    assert mid["cell"].startswith("20.000 ± n/a [1/3 seeds] [")
    markdown = (reports / "table2.md").read_text()
    assert "seed 1: rejected file:" in markdown and "seed 2: rejected file:" in markdown
    assert "mid/seed2.json: not valid JSON" in markdown
    assert table2_cell(reports, "top")["mean_percent"] == pytest.approx(100 * np.mean(RECALL["top"]))
    leaderboard = pd.read_csv(tmp_path / "results" / "leaderboard.csv")
    assert set(leaderboard["method"]) >= {"top", "mid", "low", "theirs", "imrl", "random"}


def test_submission_size_limit_is_configurable(tmp_path):
    large_text, _ = hostile_submissions("synthetic")["large.json"]
    (tmp_path / "large.json").write_text(large_text)
    accepted, rejected = load_submissions(tmp_path)
    assert accepted.empty and "larger than the limit of 1000000 bytes" in rejected[0].reason
    accepted, rejected = load_submissions(tmp_path, max_bytes=3_000_000)
    assert list(accepted["method"]) == ["hostile"] and not rejected


def test_stale_runs_outside_the_config_are_not_read(tmp_path):
    runs = results_tree(tmp_path)
    # Left by an earlier configuration with five seeds and another method: seed 5 would
    # lift low's mean and change its paired test; the broken files would be rejections.
    write_record(runs, offline_record("synthetic", "low", 5, (0.9, 0.9, 0.9)))
    (runs / "synthetic" / "low" / "seed4.json").write_text("{")
    write_record(runs, offline_record("synthetic", "retired", 0, (0.99, 0.9, 0.9)))
    (runs / "synthetic" / "summary.json").write_text("{}")
    write_record(runs, online_record("virtualtb", "imrl", 0, [0.1]))

    reports = tmp_path / "reports"
    seen = []
    build.build_reports(runs, reports, CONFIG,
                        builders=[build.table2_report, build.leaderboard_report, seen.append])
    context = seen[0]
    assert context.rejected_runs == ()
    assert set(zip(context.runs["dataset"], context.runs["method"])) == {
        ("synthetic", "top"), ("synthetic", "mid"), ("synthetic", "low"), ("recsim", "imrl"), ("recsim", "random")}
    assert sorted(context.runs.loc[context.runs["method"] == "low", "seed"]) == [0, 1, 2]

    low = table2_cell(reports, "low")
    assert (low["n_ok"], low["seeds_ok"]) == (3, "0;1;2")
    assert low["mean_percent"] == pytest.approx(100 * np.mean(RECALL["low"]))
    assert low["p_ttest"] == pytest.approx(stats.ttest_rel(RECALL["top"], RECALL["low"]).pvalue, rel=1e-6)
    data = leaderboard_data(reports / "leaderboard.html")
    assert data["rejected"] == []
    assert section_row(data, "synthetic", "low", "reproduced")["metrics"]["recall@20"]["n"] == 3
    assert "retired" not in {row["method"] for s in data["sections"] for row in s["rows"]}
    assert "virtualtb" not in {s["name"] for s in data["sections"]}


def test_report_config_must_name_its_seeds(tmp_path):
    with pytest.raises(ValueError, match="report config: no 'seeds'"):
        build.build_reports(results_tree(tmp_path), tmp_path / "reports",
                            {key: value for key, value in CONFIG.items() if key != "seeds"})


def test_mean_std_cannot_overflow_and_is_exact_for_ordinary_values():
    with np.errstate(over="ignore"):
        assert np.mean([1e308, 1e308]) == np.inf              # what a plain mean does
    assert mean_std([1e308, 1e308]) == (1e308, 0.0)
    mean, std = mean_std([1.7e308, 1.6e308, 1.7e308])
    assert mean == pytest.approx(5.0 / 3 * 1e308)
    assert std == pytest.approx(np.std([1.7, 1.6, 1.7], ddof=1) * 1e308)
    values = np.random.default_rng(0).uniform(0, 100, 7)
    assert mean_std(values) == (values.mean(), values.std(ddof=1))
    assert np.isnan(mean_std([0.3])[1]) and all(np.isnan(mean_std([])))
