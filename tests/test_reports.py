"""Reports on crafted results: Table II markers and p-values, the paper side by side,
Figures 2 and 3, the leaderboard's data (submissions accepted and rejected), and the
report builders."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imrl.report import build
from imrl.report.figures import ablation_simulator, curve_band, figure2, figure3
from imrl.report.leaderboard import REPORTED, SUBMITTED, build_leaderboard, embed_json, load_submissions
from imrl.report.reported import ReportedFileError, compare_with_reported, load_reported
from imrl.report.results import RunFileError, load_runs
from imrl.report.table2 import build_table2, write_table2
from tests.conftest import REPO_ROOT
from tests.crafted_results import learning_curve, offline_record, online_record, write_record

REPORTED_CSV = REPO_ROOT / "results" / "reported" / "imrl-paper-table2.csv"
#: recall@20 per seed: "top" is best; "near" is below it by a varying small margin
#: (not significant with 3 seeds), "low" far below (significant).
RECALL = {"top": [0.300, 0.310, 0.305], "near": [0.299, 0.306, 0.305 - 0.0045], "low": [0.100, 0.130, 0.090]}


def md_row(markdown: str, method: str) -> list[str]:
    rows = [[c.strip() for c in line.strip().split(" | ")] for line in markdown.splitlines() if line.startswith("| ")]
    return next(row for row in rows if row[0].lstrip("| ") == method)


@pytest.fixture
def crafted(tmp_path) -> Path:
    runs = tmp_path / "results" / "runs"
    for method, recalls in RECALL.items():
        for seed, recall in enumerate(recalls):
            write_record(runs, offline_record("amazon-cd", method, seed, (recall, 0.02, 0.05 + 0.001 * seed)))
    return runs


# ----------------------------------------------------------------------------- Table II

def test_table2_bold_star_and_significance_marker(crafted, tmp_path):
    paths = write_table2(load_runs(crafted), tmp_path / "out", methods=["top", "near", "low"])
    markdown = paths["md"].read_text()
    assert md_row(markdown, "top")[1] == "**30.500 ± 0.500**"
    assert md_row(markdown, "near")[1].endswith("\\*")            # second, not significantly below
    assert md_row(markdown, "low")[1].endswith("†")               # significantly below the best
    assert "two-sided paired t-test" in markdown
    tex = paths["tex"].read_text()
    assert r"$^\dagger$" in tex and r"\textbf{30.500 $\pm$ 0.500}" in tex

    table = pd.read_csv(paths["csv"])
    recall = table[table["metric"] == "recall"].set_index("method")
    expected = {m: stats.ttest_rel(RECALL["top"], RECALL[m]).pvalue for m in ("near", "low")}
    assert recall.loc["low", "p_ttest"] == pytest.approx(expected["low"], rel=1e-5)
    assert recall.loc["near", "p_ttest"] == pytest.approx(expected["near"], rel=1e-5)
    # Holm over the column's two comparisons.
    assert recall.loc["low", "p_ttest_holm"] == pytest.approx(2 * expected["low"], rel=1e-5)
    assert recall.loc["near", "p_ttest_holm"] == pytest.approx(max(expected["near"], 2 * expected["low"]), rel=1e-5)
    assert bool(recall.loc["low", "significant"]) and not bool(recall.loc["near", "significant"])
    assert recall.loc["low", "best_method"] == "top" and recall.loc["low", "n_paired"] == 3
    assert pd.isna(recall.loc["top", "p_ttest"]) and pd.isna(recall.loc["low", "p_wilcoxon"])   # n < 6
    # precision is the same for everyone on every seed: no test, and it says why.
    precision = table[table["metric"] == "precision"].set_index("method")
    assert precision["p_ttest"].isna().all() and precision.loc["low", "test_note"] == "identical on every matched seed"


# ----------------------------------------------------------------------------- the paper

def test_reported_file_is_complete_and_matches_the_paper_text():
    reported = load_reported(REPORTED_CSV)
    assert len(reported) == 9 * 6 * 3
    assert set(reported["dataset"]) == {"amazon-cd", "librarything", "book-crossing", "goodreads", "ml-20m", "netflix"}
    row = reported[(reported["dataset"] == "ml-20m") & (reported["method"] == "imrl") & (reported["metric"] == "recall")]
    assert (row["mean_percent"].item(), row["std_percent"].item()) == (17.798, 0.231)
    assert (reported["marker_printed"] == "*").sum() == 17


def test_comparison_with_the_paper(crafted, tmp_path):
    table = build_table2(load_runs(crafted), datasets=["amazon-cd", "synthetic"], methods=["top", "near"])
    reported = load_reported(REPORTED_CSV)
    reported.loc[(reported["dataset"] == "amazon-cd") & (reported["method"] == "sasrec"), "method"] = "top"
    comparison = compare_with_reported(table, reported).set_index(["method", "metric"])
    assert set(comparison["dataset"]) == {"amazon-cd"}                     # synthetic is not in the paper
    top = comparison.loc[("top", "recall")]
    assert top["reported_mean_percent"] == 5.129 and top["reproduced_mean_percent"] == pytest.approx(30.5)
    assert top["difference_points"] == pytest.approx(30.5 - 5.129)
    assert top["difference_relative_percent"] == pytest.approx(100 * (30.5 - 5.129) / 5.129)
    assert np.isnan(comparison.loc[("near", "recall"), "reported_mean_percent"])      # ours only
    assert comparison.loc[("imrl", "recall"), "reproduced_n_seeds"] == 0              # theirs only


def test_bad_reported_file_names_line_and_column(tmp_path):
    bad = tmp_path / "reported.csv"
    bad.write_text(REPORTED_CSV.read_text().replace("5.129", "five", 1))
    with pytest.raises(ReportedFileError, match=r"reported\.csv: line \d+, column mean_percent: 'five' is not a number"):
        load_reported(bad)


# ----------------------------------------------------------------------------- figures

def online_runs(tmp_path: Path, simulators=("virtualtb", "recsim"), methods=("imrl", "imrl-e", "random")) -> Path:
    runs = tmp_path / "results" / "runs"
    for simulator in simulators:
        for index, method in enumerate(methods):
            for seed in range(3):
                write_record(runs, online_record(simulator, method, seed, learning_curve(0.3 - 0.1 * index, seed)))
    return runs


def test_curve_band_is_mean_and_std_over_seeds(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs, online_record("recsim", "a", 0, [0.1, 0.2, 0.4]))
    write_record(runs, online_record("recsim", "a", 1, [0.3, 0.4]))        # a shorter curve
    band = curve_band(load_runs(runs))
    assert band.episode.tolist() == [10, 20, 30] and band.n_seeds == 2
    assert band.mean == pytest.approx([0.2, 0.3, 0.4])
    assert band.std[:2] == pytest.approx([np.std([0.1, 0.3], ddof=1)] * 2) and np.isnan(band.std[2])


def test_curve_with_mismatched_arrays_names_the_file(tmp_path):
    record = online_record("recsim", "a", 0, [0.1, 0.2])
    record["curve"]["ctr"].append(0.3)
    path = write_record(tmp_path / "runs", record)
    with pytest.raises(RunFileError, match=f"{path}: curve: 2 episodes but 3 CTR values"):
        load_runs(tmp_path / "runs")
    record["curve"] = {"episode": [10, 10], "ctr": [0.1, 0.2]}
    write_record(tmp_path / "runs", record)
    with pytest.raises(RunFileError, match=f"{path}: curve.episode: repeated episode numbers"):
        load_runs(tmp_path / "runs")


def test_figures_are_written_and_figure3_falls_back(tmp_path):
    runs = load_runs(online_runs(tmp_path, simulators=("recsim",)))
    paths = figure2(runs, ["imrl", "imrl-e", "random"], tmp_path / "out")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["pdf"].read_bytes()[:5] == b"%PDF-"
    assert ablation_simulator(runs, ["recogym", "recsim"]) == "recsim"     # no VirtualTB runs
    assert ablation_simulator(load_runs(online_runs(tmp_path / "b")), ["recsim"]) == "virtualtb"
    assert ablation_simulator(runs.iloc[0:0], ["recsim"]) is None
    figure3(runs, ["recsim"], tmp_path / "out")
    figure2(runs.iloc[0:0], [], tmp_path / "empty")                       # no online runs: still written
    assert (tmp_path / "empty" / "figure2.png").stat().st_size > 0
    # Same results, same bytes.
    first = (tmp_path / "out" / "figure3.pdf").read_bytes()
    figure3(runs, ["recsim"], tmp_path / "out")
    assert (tmp_path / "out" / "figure3.pdf").read_bytes() == first


# ----------------------------------------------------------------------------- leaderboard

def test_invalid_submission_is_rejected_with_reason_and_the_rest_builds(crafted, tmp_path, caplog):
    submissions = tmp_path / "results" / "submissions"
    submissions.mkdir()
    good = offline_record("amazon-cd", "theirs", 0, (0.5, 0.1, 0.1))
    (submissions / "good.json").write_text(json.dumps(good))
    (submissions / "again.json").write_text(json.dumps(good))             # same (dataset, method, seed)
    bad = offline_record("amazon-cd", "broken", 0)
    bad["metrics"]["test"]["recall@20"] = 1.5
    (submissions / "bad.json").write_text(json.dumps(bad))
    (submissions / "notes.txt").write_text("hello")

    with caplog.at_level(logging.WARNING):
        accepted, rejected = load_submissions(submissions)
    assert list(accepted["method"]) == ["theirs"]
    reasons = {Path(r.path).name: r.reason for r in rejected}
    assert "recall@20: 1.5 is not in [0, 1]" in reasons["bad.json"]
    assert "a second submission" in reasons["good.json"] and "again.json" in reasons["good.json"]
    assert "not a .json run file" in reasons["notes.txt"]
    assert "submission rejected" in caplog.text and "bad.json" in caplog.text

    data = build_leaderboard(load_runs(crafted), accepted, rejected, load_reported(REPORTED_CSV), "paper")
    section = next(s for s in data["sections"] if s["name"] == "amazon-cd")
    kinds = {(row["kind"], row["method"]) for row in section["rows"]}
    assert (SUBMITTED, "theirs") in kinds and (REPORTED, "imrl") in kinds and ("reproduced", "top") in kinds
    theirs = next(row for row in section["rows"] if row["method"] == "theirs")
    assert "significant" not in theirs["metrics"]["recall@20"]              # never tested with reproduced rows
    top = next(row for row in section["rows"] if row["method"] == "top" and row["kind"] == "reproduced")
    assert top["metrics"]["recall@20"]["best"] and top["metrics"]["recall@20"]["n"] == 3
    assert len(data["rejected"]) == 3


def test_embedded_json_cannot_close_its_script_element():
    text = embed_json({"m": "</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"m": "</script><!-- & \u2028"}


# ----------------------------------------------------------------------------- builders

def test_build_reports_writes_everything_and_takes_builders(tmp_path):
    runs = online_runs(tmp_path)
    for seed in range(2):
        write_record(runs, offline_record("synthetic", "random", seed, (0.1 + 0.01 * seed, 0.01, 0.02)))
    shutil.copytree(REPO_ROOT / "results" / "reported", tmp_path / "results" / "reported")
    config = {"name": "t", "datasets": ["synthetic"], "methods": ["random"], "simulators": ["recsim"],
              "online_methods": ["imrl", "imrl-e", "random"], "seeds": [0, 1, 2], "table_k": 20, "not_available": []}
    build.build_reports(runs, tmp_path / "reports", config)
    for name in ["table2.md", "table2.csv", "table2.tex", "table2_vs_paper.md", "table2_vs_paper.csv",
                 "figure2.png", "figure2.pdf", "figure3.png", "figure3.pdf", "leaderboard.html"]:
        assert (tmp_path / "reports" / name).stat().st_size > 0, name
    assert "No dataset is in both" in (tmp_path / "reports" / "table2_vs_paper.md").read_text()
    leaderboard = pd.read_csv(tmp_path / "results" / "leaderboard.csv")
    assert {"synthetic", "recsim", "ml-20m"} <= set(leaderboard["dataset"])
    assert "virtualtb" not in set(leaderboard["dataset"])                  # not configured: left alone

    seen = []
    build.build_reports(runs, tmp_path / "other", config, builders=[lambda context: seen.append(context)])
    context = seen[0]
    assert context.simulators == ["recsim"] and context.reported == tmp_path / "results/reported/imrl-paper-table2.csv"
    assert set(context.runs["dataset"]) == {"synthetic", "recsim"}
    assert not (tmp_path / "other").exists()
