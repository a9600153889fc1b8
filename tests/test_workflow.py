"""The real workflow (Snakemake CLI) on a tiny config in a temporary directory: data,
splits, runs and Table II (a method that fails: tests/test_failures.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, SMALL_PREPROCESS

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile"),
             "--workflow-profile", "none"]


TINY_SYNTHETIC = {"n_users": 150, "n_items": 120, "n_clusters": 6, "min_length": 12, "max_length": 20}


def tiny_config(tmp_path: Path, methods: dict, seeds=(0, 1), generator=None) -> Path:
    config = {
        "name": "tiny",
        "seeds": list(seeds),
        "datasets": {"synthetic": {"params": {**TINY_SYNTHETIC, **(generator or {})},
                                   "preprocess": SMALL_PREPROCESS}},
        "methods": methods,
        "evaluation": {"ks": [5, 20], "table_k": 20},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(tmp_path: Path, config: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", str(config),
                           "--cores", "2", *extra], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("workflow")
    config = tiny_config(tmp_path, {"random": {}, "popularity": {}, "markov": {}})
    result = snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-4000:]
    return tmp_path, config, result


def test_runs_and_table(workflow_run):
    tmp_path, _, _ = workflow_run
    for method in ("random", "markov"):
        for seed in (0, 1):
            record = json.loads((tmp_path / f"results/runs/synthetic/{method}/seed{seed}.json").read_text())
            assert record["status"] == "ok"
            assert set(record["metrics"]) == {"valid", "test"}
            assert {"recall@20", "precision@20", "ndcg@20", "recall@5"} <= set(record["metrics"]["test"])
            assert record["provenance"]["config_hash"] and record["provenance"]["wall_time_s"] > 0
    table = (tmp_path / "reports/table2.md").read_text()
    assert "markov" in table and "random" in table
    for ext in ("csv", "tex"):
        assert (tmp_path / f"reports/table2.{ext}").stat().st_size > 0


def test_reports_figures_leaderboard_and_snakemake_report(workflow_run):
    tmp_path, config, _ = workflow_run
    for name in ("table2_vs_paper.md", "figure2.png", "figure2.pdf", "figure3.png", "figure3.pdf", "leaderboard.html"):
        assert (tmp_path / "reports" / name).stat().st_size > 0, name
    assert (tmp_path / "results/leaderboard.csv").stat().st_size > 0
    # A new leaderboard submission reruns the report rule (and only it).
    submission = json.loads((tmp_path / "results/runs/synthetic/markov/seed0.json").read_text())
    submission["method"] = "their-method"
    (tmp_path / "results/submissions").mkdir(exist_ok=True)
    (tmp_path / "results/submissions/theirs.json").write_text(json.dumps(submission))
    dry = snakemake(tmp_path, config, "-n")
    assert "rule report" in dry.stdout and "train_offline" not in dry.stdout
    assert snakemake(tmp_path, config).returncode == 0
    assert "their-method" in (tmp_path / "results/leaderboard.csv").read_text()
    # snakemake --report: one offline HTML file with the tables, figures and their captions.
    result = snakemake(tmp_path, config, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    for caption in ("Table II: top-K recommendation", "Figure 2: test CTR", "Figure 3: ablation study", "Leaderboard: one tab"):
        assert caption in html, caption
    assert not re.search(r"""<(script|img|link)[^>]+(src|href)=["']https?:""", html)   # nothing fetched


def test_rerun_is_a_no_op_and_a_config_change_reruns(workflow_run):
    tmp_path, config, _ = workflow_run
    result = snakemake(tmp_path, config, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr
    changed = yaml.safe_load(config.read_text())
    changed["methods"]["markov"] = None  # same params written differently: still nothing to do
    config.write_text(yaml.safe_dump(changed))
    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(snakemake(tmp_path, config, "-n"))
    changed["evaluation"]["ks"] = [10, 20]
    config.write_text(yaml.safe_dump(changed))
    dry = snakemake(tmp_path, config, "-n")
    assert "train_offline" in dry.stdout


def test_paper_dry_run_lists_the_grid():
    result = subprocess.run([*SNAKEMAKE, "-n", "--configfile", str(REPO_ROOT / "config/paper.yaml")],
                            capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    for rule in ("download_raw", "convert_raw", "split", "train_offline", "train_online", "report"):
        assert rule in result.stdout
    # Every training job asks the scheduler for its dataset's or simulator's memory and time.
    paper = yaml.safe_load((REPO_ROOT / "config/paper.yaml").read_text())
    entries = {**paper["datasets"], **paper["simulators"]}
    jobs = re.findall(r"rule train_\w+:.*?wildcards: (?:dataset|simulator)=([\w-]+),.*?\n\s+resources: ([^\n]+)",
                      result.stdout, flags=re.S)
    assert len(jobs) == result.stdout.count("rule train_")
    for name, resources in jobs:
        asked = dict(pair.split("=", 1) for pair in resources.split(", "))
        assert int(asked["mem_mb"]) == entries[name].get("mem_mb", paper["resources"]["mem_mb"]), name
        assert int(asked["runtime"]) == entries[name].get("runtime", paper["resources"]["runtime"]), name
    assert {name for name, _ in jobs} >= {"goodreads", "ml-20m", "recsim"}


def test_what_cannot_run_is_said_not_skipped_silently(tmp_path):
    """VirtualTB without its weights and download: false is left out, and said so;
    with strict: true it is an error."""
    config = tiny_config(tmp_path, {"random": {}})
    cfg = yaml.safe_load(config.read_text())
    cfg["simulators"] = {"virtualtb": {"download": False}}
    config.write_text(yaml.safe_dump(cfg))
    result = snakemake(tmp_path, config, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NOT AVAILABLE" in result.stderr and "virtualtb" in result.stderr
    assert "train_online" not in result.stdout
    cfg["strict"] = True
    config.write_text(yaml.safe_dump(cfg))
    result = snakemake(tmp_path, config, "-n")
    assert result.returncode != 0 and "strict" in result.stdout + result.stderr


def test_invalid_config_fails_naming_the_key(tmp_path):
    config = tiny_config(tmp_path, {"sasrek": {}})
    result = snakemake(tmp_path, config, "-n")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "methods.sasrek" in output and "sasrec" in output


def test_gpu_jobs_get_distinct_slots(tmp_path, monkeypatch):
    """`--resources gpu=2` with two fake devices: four GPU-flagged runs, two at a time,
    each holding one of the two slots. (That two holders never share a slot is
    tests/test_gpu_slots.py's: a run's started_at precedes its imports and the wait for
    a slot, so the records' intervals cannot show it.)"""
    monkeypatch.setenv("IMRL_GPU_SLOTS", "2")
    monkeypatch.setenv("IMRL_GPU_LOCK_DIR", str(tmp_path / "locks"))
    tiny = {"epochs": 1, "d": 8, "max_len": 5, "batch_size": 64}
    config = tiny_config(tmp_path, {"sasrec": tiny, "stamp": tiny})
    result = snakemake(tmp_path, config, "--resources", "gpu=2", "--cores", "4")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    runs = [json.loads(path.read_text()) for path in (tmp_path / "results/runs/synthetic").glob("*/seed*.json")]
    assert len(runs) == 4 and all(run["status"] == "ok" for run in runs)
    assert all(run["provenance"]["gpu_slot"] in (0, 1) for run in runs)
    assert all("torch.cuda.is_available() is False" in run["provenance"]["cpu_reason"] for run in runs)
