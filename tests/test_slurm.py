"""The tiny workflow through a real SLURM cluster (snakemake-executor-plugin-slurm).

Runs where a cluster is up (`sinfo` answers and IMRL_SLURM=1, as .ci/run arranges with
.ci/slurm-up.sh); skipped elsewhere with the reason. Bounded by `timeout -k` so a hung
status loop cannot hang CI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from tests.test_workflow import tiny_config

pytestmark = pytest.mark.skipif(
    os.environ.get("IMRL_SLURM") != "1" or shutil.which("sinfo") is None,
    reason="needs a SLURM cluster: run `bash .ci/slurm-up.sh` and set IMRL_SLURM=1 (.ci/run does)")

LIMIT_S = 600


def slurm_snakemake(tmp_path, config):
    command = ["timeout", "-k", "10", str(LIMIT_S), sys.executable, "-m", "snakemake",
               "--snakefile", str(REPO_ROOT / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(config), "--workflow-profile", str(REPO_ROOT / "profiles/slurm"),
               "--slurm-no-account", "--slurm-status-command", "squeue",
               "--slurm-init-seconds-before-status-checks", "1", "--retries", "0", "--jobs", "4"]
    return subprocess.run(command, capture_output=True, text=True, timeout=LIMIT_S + 30)


def test_workflow_runs_on_slurm(tmp_path):
    config = tiny_config(tmp_path, {"random": {}, "markov": {}}, seeds=[0])
    result = slurm_snakemake(tmp_path, config)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "sbatch" in output or "SLURM" in output
    for method in ("random", "markov"):
        record = json.loads((tmp_path / f"results/runs/synthetic/{method}/seed0.json").read_text())
        assert record["status"] == "ok"
    assert "markov" in (tmp_path / "reports/table2.md").read_text()


def test_failing_job_is_reported_as_failed(tmp_path):
    config = tiny_config(tmp_path, {"random": {}}, seeds=[0], generator={"n_users": -5})
    result = slurm_snakemake(tmp_path, config)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error in rule synthesize" in output or "synthesize" in output and "failed" in output.lower(), output[-5000:]
    assert not (tmp_path / "data/processed/synthetic/meta.json").exists()
