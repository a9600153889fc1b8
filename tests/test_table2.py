"""Run records (reading, validation, errors naming the file) and the Table II generator
(values, markers, failures, escaping), on crafted results trees."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from imrl.report.results import RunFileError, load_runs, read_run, validate_run
from imrl.report.table2 import build_table2, table2_from_results, write_table2
from tests.crafted_results import PROVENANCE


def run_record(dataset="synthetic", method="popularity", seed=0, test=(0.1, 0.01, 0.05), *,
               status="ok", error=None, setting="offline", k=20):
    """A valid run record; `test` = (recall, precision, ndcg) at `k` as fractions."""
    record = {
        "schema_version": 1, "dataset": dataset, "method": method, "seed": seed,
        "setting": setting, "status": status, "error": error, "metrics": {},
        "n_users": {"valid": 100, "test": 90}, "curve": None, "substitutes": [],
        "config": {"method": {"name": method}}, "provenance": copy.deepcopy(PROVENANCE),
    }
    if status == "failed":
        record["error"] = error or {"type": "RuntimeError", "message": "boom\nsecond line", "traceback": "Traceback ..."}
    elif setting == "offline":
        names = [f"{name}@{k}" for name in ("recall", "precision", "ndcg")]
        record["metrics"] = {"valid": dict(zip(names, test)), "test": dict(zip(names, test))}
    else:
        record["metrics"] = {"ctr": test[0]}
        record["curve"] = {"episode": [0, 10], "ctr": [0.0, test[0]]}
    return record


def write_run(results: Path, record: dict, text: str | None = None) -> Path:
    path = results / "runs" / record["dataset"] / record["method"] / f"seed{record['seed']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record) if text is None else text)
    return path


def md_cells(line: str) -> list[str]:
    """Cells of a Markdown table row, split on unescaped pipes."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def md_row(markdown: str, method_cell: str) -> list[str]:
    rows = [md_cells(line) for line in markdown.splitlines() if line.startswith("| ")]
    return next(row for row in rows if row[0] == method_cell)


def csv_cell(csv_path: Path, method: str, dataset: str, metric: str) -> pd.Series:
    table = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
    match = table[(table["method"] == method) & (table["dataset"] == dataset) & (table["metric"] == metric)]
    assert len(match) == 1
    return match.iloc[0]


# ----------------------------------------------------------------------------- reading

def test_load_runs_flattens_offline_and_online_records(tmp_path):
    write_run(tmp_path, run_record(method="random", seed=1, test=(0.2, 0.02, 0.1)))
    write_run(tmp_path, run_record(method="random", seed=0))
    write_run(tmp_path, run_record(dataset="recsim", method="random", setting="online", test=(0.3, 0, 0)))
    write_run(tmp_path, run_record(method="popularity", status="failed"))
    # An unfinished atomic write (hidden temp file) is not a run.
    (tmp_path / "runs" / "synthetic" / "random" / ".seed2.json.x.tmp").write_text("{")

    runs = load_runs(tmp_path / "runs")

    assert list(zip(runs["dataset"], runs["method"], runs["seed"])) == [
        ("recsim", "random", 0), ("synthetic", "popularity", 0), ("synthetic", "random", 0), ("synthetic", "random", 1)]
    offline = runs.iloc[3]
    assert offline["test/recall@20"] == 0.2 and offline["valid/ndcg@20"] == 0.1
    assert offline["n_users/test"] == 90 and offline["git_commit"] == "abc123" and offline["wall_time_s"] == 1.5
    assert offline["path"] == str(tmp_path / "runs" / "synthetic" / "random" / "seed1.json")
    online = runs.iloc[0]
    assert online["setting"] == "online" and online["ctr"] == 0.3 and online["curve"]["ctr"] == [0.0, 0.3]
    failed = runs.iloc[1]
    assert failed["status"] == "failed" and failed["error_type"] == "RuntimeError"
    assert failed["error_message"].startswith("boom") and pd.isna(failed["test/recall@20"])


def test_empty_results_tree_gives_empty_frame_and_missing_tree_is_named(tmp_path):
    (tmp_path / "runs").mkdir()
    assert load_runs(tmp_path / "runs").empty
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_runs(tmp_path / "nowhere")


def test_malformed_json_names_the_file(tmp_path):
    path = write_run(tmp_path, run_record(), text='{"schema_version": 1,')
    with pytest.raises(RunFileError, match=rf"^{re.escape(str(path))}: not valid JSON"):
        load_runs(tmp_path / "runs")


def test_schema_violation_names_the_file_and_key(tmp_path):
    record = run_record()
    record["metrics"]["test"]["recall@20"] = "x"
    path = write_run(tmp_path, record)
    with pytest.raises(RunFileError) as caught:
        load_runs(tmp_path / "runs")
    assert str(caught.value) == f"{path}: metrics.test.recall@20: 'x' is not of type 'number'"


@pytest.mark.parametrize("break_record, expected", [
    (lambda r: r["provenance"].pop("config_hash"), r"provenance: 'config_hash' is a required property"),
    (lambda r: r.update(seed=-1), r"seed: -1 is less than the minimum of 0"),
    (lambda r: r.update(extra=1), r"Additional properties are not allowed"),
    (lambda r: r["metrics"]["test"].update({"ndcg@20": 1.5}), r"metrics\.test\.ndcg@20: 1\.5 is not in \[0, 1\]"),
    (lambda r: r.update(status="failed"), r"error: a failed run must record its error"),
    (lambda r: r.update(error={"type": "E", "message": "m"}), r"error: an ok run must have error null"),
])
def test_validate_run_rejects_contract_breaks(break_record, expected):
    record = run_record()
    validate_run(record, "submitted.json")      # the helper's record is valid
    break_record(record)
    with pytest.raises(RunFileError, match=rf"^submitted\.json: .*{expected}"):
        validate_run(record, "submitted.json")


def test_nan_in_a_file_is_rejected(tmp_path):
    path = write_run(tmp_path, run_record(), text=json.dumps(run_record()).replace("0.05", "NaN", 1))
    with pytest.raises(RunFileError, match=rf"^{re.escape(str(path))}: not valid JSON: NaN"):
        read_run(path)


def test_file_location_must_match_content(tmp_path):
    record = run_record(seed=3)
    path = tmp_path / "runs" / "synthetic" / "popularity" / "seed1.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    with pytest.raises(RunFileError, match=rf"^{re.escape(str(path))}: file location .*seed=3.*popularity/seed3\.json"):
        load_runs(tmp_path / "runs")


def test_stray_json_in_runs_tree_is_an_error(tmp_path):
    write_run(tmp_path, run_record())
    stray = tmp_path / "runs" / "synthetic" / "summary.json"
    stray.write_text("{}")
    with pytest.raises(RunFileError, match=rf"^{re.escape(str(stray))}: not a run file"):
        load_runs(tmp_path / "runs")


# ----------------------------------------------------------------------------- table

def test_mean_std_in_percent_and_counts(tmp_path):
    for seed, recall in enumerate([0.1, 0.2, 0.3]):
        write_run(tmp_path, run_record(method="m", seed=seed, test=(recall, 0.05, 0.012345)))
    paths = table2_from_results(tmp_path / "runs", tmp_path / "reports")

    assert md_row(paths["md"].read_text(), "m")[1:4] == [
        "**20.000 ± 10.000**", "**5.000 ± 0.000**", "**1.234 ± 0.000**"]
    recall = csv_cell(paths["csv"], "m", "synthetic", "recall")
    assert recall["mean_percent"] == pytest.approx(20.0) and recall["std_percent"] == pytest.approx(10.0)
    assert (recall["n_ok"], recall["n_failed"], recall["seeds_ok"], recall["k"]) == (3, 0, "0;1;2", 20)
    assert "3 seed(s) per cell" in paths["md"].read_text()


def test_best_bold_second_star_with_ties(tmp_path):
    # recall: a and b tie for best, c second, d plain; precision: b and c differ only
    # below the displayed precision (10.0000001 vs 10.0000002 %), so they tie as well.
    values = {"a": (0.10, 0.09, 0.01), "b": (0.10, 0.100000001, 0.02), "c": (0.08, 0.100000002, 0.03),
              "d": (0.05, 0.01, 0.04)}
    for method, test in values.items():
        for seed in (0, 1):
            write_run(tmp_path, run_record(method=method, seed=seed, test=test))
    paths = write_table2(load_runs(tmp_path / "runs"), tmp_path / "reports", methods=["d", "c", "b", "a"])
    markdown = paths["md"].read_text()

    recall = {m: md_row(markdown, m)[1] for m in "abcd"}
    assert recall == {"a": "**10.000 ± 0.000**", "b": "**10.000 ± 0.000**", "c": "8.000 ± 0.000\\*",
                      "d": "5.000 ± 0.000"}
    precision = {m: md_row(markdown, m)[2] for m in "abcd"}
    assert precision == {"a": "9.000 ± 0.000\\*", "b": "**10.000 ± 0.000**", "c": "**10.000 ± 0.000**",
                         "d": "1.000 ± 0.000"}
    ndcg = {m: md_row(markdown, m)[3] for m in "abcd"}
    assert ndcg["d"].startswith("**") and ndcg["c"].endswith("\\*") and "*" not in ndcg["a"] + ndcg["b"]
    # Rows follow the order given (config order), not alphabetical.
    first_column = [md_cells(line)[0] for line in markdown.splitlines() if line.startswith("| ")]
    assert first_column[2:] == ["d", "c", "b", "a"]     # after the header and the alignment row
    assert csv_cell(paths["csv"], "c", "synthetic", "recall")["rank"] == 2
    tex = paths["tex"].read_text()
    assert r"b & \textbf{10.000 $\pm$ 0.000} & \textbf{10.000 $\pm$ 0.000}" in tex
    assert r"c & 8.000 $\pm$ 0.000* &" in tex


def test_failed_runs_are_shown_not_dropped(tmp_path):
    for seed in range(3):   # "broken" fails on every seed, "flaky" on seed 2 only
        write_run(tmp_path, run_record(method="broken", seed=seed, status="failed",
                                       error={"type": "MemoryError", "message": "out of memory\nat line 3"}))
        write_run(tmp_path, run_record(method="flaky", seed=seed, test=(0.1 * (seed + 1), 0.1, 0.1),
                                       status="failed" if seed == 2 else "ok"))
    paths = table2_from_results(tmp_path / "runs", tmp_path / "reports")
    markdown = paths["md"].read_text()

    assert md_row(markdown, "broken")[1:] == ["failed [1]"] * 3
    assert md_row(markdown, "flaky")[1] == "**15.000 ± 7.071** [2/3 seeds] [2]"
    assert "\\[1\\] broken on synthetic: seeds 0, 1, 2: MemoryError: out of memory" in markdown
    assert "\\[2\\] flaky on synthetic: seed 2: RuntimeError: boom" in markdown
    assert "at line 3" not in markdown     # only the first line of a message
    broken = csv_cell(paths["csv"], "broken", "synthetic", "ndcg")
    assert (broken["n_ok"], broken["n_failed"], broken["cell"]) == (0, 3, "failed [1]")
    assert pd.isna(broken["mean_percent"]) and pd.isna(broken["rank"])
    assert "failed [1]" in paths["tex"].read_text()


def test_single_seed_missing_cell_and_online_runs(tmp_path):
    write_run(tmp_path, run_record(method="solo", test=(0.5, 0.25, 0.125)))
    write_run(tmp_path, run_record(method="solo", dataset="other", seed=0))
    write_run(tmp_path, run_record(method="solo", dataset="other", seed=1))
    write_run(tmp_path, run_record(dataset="recsim", method="online-only", setting="online"))
    table = build_table2(load_runs(tmp_path / "runs"), methods=["solo", "never-ran"])
    paths = write_table2(load_runs(tmp_path / "runs"), tmp_path / "reports", methods=["solo", "never-ran"])
    markdown = paths["md"].read_text()

    assert table.datasets == ["other", "synthetic"]        # online simulators are not Table II
    assert md_row(markdown, "solo")[4:] == ["**50.000 ± n/a** [1 seed]", "**25.000 ± n/a** [1 seed]",
                                            "**12.500 ± n/a** [1 seed]"]
    assert md_row(markdown, "never-ran")[1:] == ["–"] * 6
    assert "± n/a: a single ok seed" in markdown and "–: no run." in markdown
    assert "online-only" not in markdown


def test_missing_test_metric_names_the_file(tmp_path):
    path = write_run(tmp_path, run_record(k=10))
    with pytest.raises(RunFileError, match=rf"^{re.escape(str(path))}: metrics\.test: no 'recall@20'.*recall@10"):
        table2_from_results(tmp_path / "runs", tmp_path / "reports", k=20)
    assert not (tmp_path / "reports").exists()


def test_names_are_escaped_in_markdown_and_latex(tmp_path):
    names = ["a|b", "x&y_z", "<script>"]
    for method in names:
        write_run(tmp_path, run_record(dataset="d_1&2", method=method))
    paths = table2_from_results(tmp_path / "runs", tmp_path / "reports", methods=names)
    markdown, tex = paths["md"].read_text(), paths["tex"].read_text()

    for escaped in ["a\\|b", "x&amp;y\\_z", "&lt;script&gt;"]:
        assert len(md_row(markdown, escaped)) == 4      # the pipe did not split the row
    assert "<script>" not in markdown and "d\\_1&amp;2: Recall (%)" in markdown
    for escaped in [r"a\textbar{}b & ", r"x\&y\_z & ", r"\textless{}script\textgreater{} & ",
                    r"\multicolumn{3}{c}{d\_1\&2}"]:
        assert escaped in tex
    rows = [line for line in tex.splitlines() if line.endswith("\\\\") and "multicolumn" not in line]
    assert all(len(re.findall(r"(?<!\\)&", row)) == 3 for row in rows)
    assert pd.read_csv(paths["csv"])["method"].tolist()[::3] == names   # CSV keeps the raw names


def test_outputs_are_written_whole(tmp_path):
    write_run(tmp_path, run_record())
    paths = table2_from_results(tmp_path / "runs", tmp_path / "reports")
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["table2.csv", "table2.md", "table2.tex"]
    assert paths["tex"].read_text().count("\\begin{tabular}") == paths["tex"].read_text().count("\\end{tabular}") == 1


def test_legend_names_the_environment_each_datasets_rl_runs_trained_in(tmp_path):
    for dataset, kind in (("synthetic", "user_model"), ("ml-100k", "replay")):
        write_run(tmp_path, run_record(dataset, "popularity"))
        for method, environment in (("imrl", kind), ("pgpr", "knowledge_graph")):
            record = run_record(dataset, method)
            record["training"] = {"environment": {"kind": environment}, "validation_selection": {}}
            write_run(tmp_path, record)
    paths = table2_from_results(tmp_path / "runs", tmp_path / "out")
    legend = paths["md"].read_text()
    assert ("synthetic: the user model fitted on the train split (the paper's, its \\[32\\]), PGPR's own "
            "knowledge-graph walks") in legend
    assert "ml-100k: log replay (DRR-style, not the paper's), PGPR's own knowledge-graph walks" in legend
