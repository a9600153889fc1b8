"""Failed runs speak up: the workflow lists them at the end and exits non-zero, Table II
still shows "failed", and running the workflow again retries exactly the failed runs."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from imrl.runs import failures
from tests.test_workflow import snakemake, tiny_config

# SASRec refuses an unknown loss when training starts: a run that raises.
FAILING = {"loss": "bogus", "epochs": 1, "d": 8, "max_len": 5, "batch_size": 64}
RUN = "results/runs/synthetic/{method}/seed{seed}.json"


def planned_jobs(dry_run_stdout: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run lists."""
    return re.findall(r"^rule (\w+):\n(?:    .*\n)*?    wildcards: ([^\n]+)", dry_run_stdout, flags=re.M)


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("failures")
    config = tiny_config(tmp_path, {"random": {}, "sasrec": FAILING})
    return tmp_path, config, snakemake(tmp_path, config)


def test_the_workflow_lists_the_failures_and_exits_non_zero(failed_run):
    tmp_path, _, result = failed_run
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "2 run(s) FAILED" in output
    for seed in (0, 1):
        line = next(line for line in output.splitlines() if re.match(rf"\s*sasrec\s+synthetic\s+seed {seed}\s", line))
        assert "ValueError: SASRec: params.loss must be 'bce' or 'ce', got 'bogus'" in line
        assert f"log: logs/train/synthetic/sasrec/seed{seed}.log" in line
        assert (tmp_path / f"logs/train/synthetic/sasrec/seed{seed}.log").exists()
    assert not re.search(r"random\s+synthetic", output)


def test_the_tables_still_show_the_failed_method(failed_run):
    tmp_path, _, _ = failed_run
    row = next(line for line in (tmp_path / "reports/table2.md").read_text().splitlines() if "sasrec" in line)
    assert "failed" in row
    assert "random" in (tmp_path / "reports/table2.md").read_text()


def test_failed_records_are_set_aside_and_only_they_are_retried(failed_run):
    tmp_path, config, _ = failed_run
    for seed in (0, 1):
        assert not (tmp_path / RUN.format(method="sasrec", seed=seed)).exists()
        aside = json.loads((tmp_path / f"results/failed/synthetic/sasrec/seed{seed}.json").read_text())
        assert aside["status"] == "failed" and "bogus" in aside["error"]["message"]
    ok = tmp_path / RUN.format(method="random", seed=0)
    assert json.loads(ok.read_text())["status"] == "ok"

    dry = snakemake(tmp_path, config, "-n")
    jobs = planned_jobs(dry.stdout)
    assert sorted(w for rule, w in jobs if rule == "train_offline") == [
        "dataset=synthetic, method=sasrec, seed=0", "dataset=synthetic, method=sasrec, seed=1"]
    assert {rule for rule, _ in jobs} == {"train_offline"}   # the other jobs (report, all) have no wildcards
    assert re.search(r"^report\s+1$", dry.stdout, flags=re.M)

    # The same command again: it retries the failed runs (still failing) and leaves the ok ones alone.
    before = ok.stat().st_mtime_ns
    again = snakemake(tmp_path, config)
    assert again.returncode != 0 and "2 run(s) FAILED" in again.stdout + again.stderr
    assert ok.stat().st_mtime_ns == before
    assert "method=random" not in again.stdout + again.stderr

    # Fixed: the retry succeeds, the exit status is 0 and nothing stays set aside.
    fixed = yaml.safe_load(config.read_text())
    fixed["methods"]["sasrec"]["loss"] = "ce"
    config.write_text(yaml.safe_dump(fixed))
    result = snakemake(tmp_path, config)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert json.loads((tmp_path / RUN.format(method="sasrec", seed=0)).read_text())["status"] == "ok"
    assert not list((tmp_path / "results/failed").rglob("*.json"))
    assert "FAILED" not in result.stdout + result.stderr
    assert "failed" not in (tmp_path / "reports/table2.md").read_text()


def _record(path, status, message="boom\nsecond line"):
    path.parent.mkdir(parents=True, exist_ok=True)
    error = None if status == "ok" else {"type": "RuntimeError", "message": message, "traceback": "..."}
    path.write_text(json.dumps({"status": status, "error": error}))


def test_set_aside_moves_failed_and_unreadable_records_and_clears_fixed_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = [f"results/runs/recsim/agent/seed{seed}.json" for seed in range(4)]
    _record(tmp_path / runs[0], "failed")
    _record(tmp_path / runs[1], "ok")
    (tmp_path / runs[2]).write_text("{not json")
    # runs[3] does not exist (not run yet): nothing to do.
    _record(tmp_path / "results/failed/recsim/agent/seed1.json", "failed")   # an earlier failure, now ok

    found = failures.set_aside(runs)

    assert [(f.dataset, f.method, f.seed) for f in found] == [("recsim", "agent", "0"), ("recsim", "agent", "2")]
    assert found[0].error == "RuntimeError: boom"
    assert found[1].error.startswith("unreadable record:")
    assert found[0].log.as_posix() == "logs/train/recsim/agent/seed0.log"
    assert not (tmp_path / runs[0]).exists() and (tmp_path / "results/failed/recsim/agent/seed0.json").exists()
    assert (tmp_path / runs[1]).exists() and not (tmp_path / "results/failed/recsim/agent/seed1.json").exists()
    summary = failures.summary(found)
    assert summary.startswith("2 run(s) FAILED") and "second line" not in summary
    assert "agent  recsim  seed 0  RuntimeError: boom  (log: logs/train/recsim/agent/seed0.log)" in summary
