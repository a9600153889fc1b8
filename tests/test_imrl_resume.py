"""A killed IMRL run, started again, resumes from its last checkpoint and ends with the
same metrics as a run that was never interrupted (CPU). The run goes through the real
command line (`python -m imrl run`), is killed with SIGKILL right after a checkpoint, and
is started again with the same arguments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from conftest import REPO_ROOT

from imrl.data.split import save_split

JOB = {
    "method": {"hidden": 32, "model_hidden": 32, "batch_size": 32, "n_envs": 8, "random_steps": 100,
               "augment_after": 20, "checkpoint_every": 160,
               "env": {"slate_size": 10, "max_steps": 10, "embedding_dim": 8, "history_len": 5}},
    "budget": {"env_steps": 480, "update_ratio": 0.25},
    "evaluation": {"ks": [10, 20], "batch_size": 1024},
}


def command(split_dir, out, checkpoints) -> list[str]:
    return [sys.executable, "-m", "imrl", "run", "--dataset", "synthetic-small", "--method", "imrl", "--seed", "3",
            "--split", str(split_dir), "--job", json.dumps(JOB), "--out", str(out), "--checkpoints", str(checkpoints)]


def test_killed_run_resumes_to_the_same_metrics(tmp_path, split_small):
    split_dir = tmp_path / "split"
    save_split(split_small, split_dir)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    straight = tmp_path / "straight.json"
    subprocess.run(command(split_dir, straight, tmp_path / "ckpt-straight"), env=env, check=True, cwd=tmp_path,
                   capture_output=True)

    resumed, checkpoints = tmp_path / "resumed.json", tmp_path / "ckpt-resumed"
    child = subprocess.Popen(command(split_dir, resumed, checkpoints), env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in child.stdout:   # the method logs after writing each checkpoint
        if line.startswith("IMRL 160 transitions"):
            child.send_signal(signal.SIGKILL)
            break
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not resumed.exists() and (checkpoints / "imrl.pt").exists()

    done = subprocess.run(command(split_dir, resumed, checkpoints), env=env, check=True, cwd=tmp_path,
                          capture_output=True, text=True)
    assert "resumed from" in done.stdout
    first, second = json.loads(straight.read_text()), json.loads(resumed.read_text())
    assert first["status"] == second["status"] == "ok", second.get("error")
    assert second["provenance"]["resumed"] is True
    assert first["metrics"] == second["metrics"]
    assert not checkpoints.exists()   # removed once the record is written
