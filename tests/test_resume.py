"""Resumable training (imrl/checkpoint.py) through the real command line: a run is killed
with SIGKILL at a random moment after its first checkpoint, started again with the same
arguments, and must end with exactly the metrics (and curve) of a run that was never
interrupted (CPU). One case per training loop that checkpoints: the RL baselines'
offline loop, PGPR's walks, the sequential baselines' epoch loop, and the online runner (an
item-level and a continuous agent), and IMRL's offline loop."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT, saved_user_model

from imrl.data.split import save_split

EVALUATION = {"ks": [10, 20], "batch_size": 1024}
SMALL_ENV = {"slate_size": 10, "max_steps": 10}   # in the default environment: the user model
SIMULATOR = {"episodes": 24, "test_every": 8, "test_episodes": 8, "n_envs": 8, "params": {}}

CASES = {
    "offline-imrl": ("synthetic-small", "imrl", {"method": {"hidden": 32, "model_hidden": 32, "batch_size": 32,
                                                           "n_envs": 8, "random_steps": 100, "augment_after": 20,
                                                           "env": SMALL_ENV},
                                                "budget": {"env_steps": 1600, "update_ratio": 0.25},
                                                "evaluation": EVALUATION}),
    "offline-deers": ("synthetic-small", "deers", {"method": {"hidden": 32, "dim": 16, "env": SMALL_ENV},
                                       "budget": {"env_steps": 3200, "update_ratio": 0.25}, "evaluation": EVALUATION}),
    "offline-causerec": ("synthetic-small", "causerec", {"method": {"d": 16, "max_len": 10, "patience": 100, "batch_size": 64},
                                             "budget": {"epochs": 12}, "evaluation": EVALUATION}),
    "offline-pgpr": ("synthetic-small", "pgpr", {"method": {"kge_epochs": 2, "hidden": [64, 32]},
                                                 "budget": {"env_steps": 30000}, "evaluation": EVALUATION}),
    "online-deers-recsim": ("recsim", "deers", {"method": {}, "simulator": {**SIMULATOR},
                                                    "budget": {"update_ratio": 0.1}}),
    "online-imrl-recogym": ("recogym", "imrl", {"method": {"hidden": 32, "model_hidden": 32, "batch_size": 32,
                                                              "random_steps": 50, "augment_after": 10},
                                                   "simulator": {**SIMULATOR, "episodes": 40},
                                                   "budget": {"update_ratio": 0.25}}),
}


def command(where: str, method: str, job: dict, split_dir, out, checkpoints) -> list[str]:
    """`python -m imrl run` on the dataset (its user model beside the split), or
    `run-online` on the simulator `where`."""
    target = (["run", "--dataset", where, "--split", str(split_dir), "--user-model", str(split_dir.parent / "user_model")]
              if where == "synthetic-small" else ["run-online", "--simulator", where])
    return [sys.executable, "-m", "imrl", *target, "--method", method, "--seed", "2", "--job", json.dumps(job),
            "--out", str(out), "--checkpoints", str(checkpoints), "--checkpoint-every", "0.2"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_killed_run_resumes_to_the_same_metrics(case, tmp_path, split_small):
    where, method, job = CASES[case]
    split_dir = tmp_path / "split"
    save_split(split_small, split_dir)
    saved_user_model(split_small, tmp_path / "user_model")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    straight, resumed = tmp_path / f"{case}-straight.json", tmp_path / f"{case}-resumed.json"
    checkpoints = tmp_path / "checkpoints"

    subprocess.run(command(where, method, job, split_dir, straight, tmp_path / "unused"), env=env, check=True,
                   cwd=tmp_path, capture_output=True)

    child = subprocess.Popen(command(where, method, job, split_dir, resumed, checkpoints), env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in child.stdout:
        if line.startswith("checkpoint saved"):
            time.sleep(random.Random(case).uniform(0.0, 0.4))   # a random moment after the first save
            child.send_signal(signal.SIGKILL)
            break
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the run ended before it could be killed: lengthen it"
    assert not resumed.exists() and any(checkpoints.glob("*.pt"))

    done = subprocess.run(command(where, method, job, split_dir, resumed, checkpoints), env=env, cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resumed from" in done.stdout
    first, second = json.loads(straight.read_text()), json.loads(resumed.read_text())
    assert first["status"] == second["status"] == "ok", second.get("error")
    assert second["provenance"]["resumed"] is True
    assert first["metrics"] == second["metrics"]
    assert first["curve"] == second["curve"]
    assert not checkpoints.exists()   # removed once the record is written
