"""Device selection with the device layer faked (CUDA availability, device counts, SLURM
variables): the device each path chooses, what the record says, the numerics flags, the
report's note on seeds run on different devices, and the GPU smoke script without CUDA."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from imrl import registry
from imrl.data.split import save_split
from imrl.report.table2 import build_table2, legend
from imrl.runs import device as devices
from imrl.runs import gpu
from imrl.runs.gpu import gpu_slot
from imrl.runs.run import run_offline
from imrl.schemas import RunRecordError, validate_run
from tests.conftest import REPO_ROOT
from tests.crafted_results import offline_record

SLURM_VARIABLES = ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "IMRL_GPU_SLOTS")
JOB = {"method": {}, "dataset": {}, "budget": {}, "evaluation": {"ks": [20], "table_k": 20, "batch_size": 64}}


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A clean device environment: no SLURM, no restriction, locks in tmp; returns a
    function that fakes how many CUDA devices torch sees and whether CUDA works."""
    for name in SLURM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMRL_GPU_LOCK_DIR", str(tmp_path / "locks"))

    def fake(count: int, available: bool | None = None) -> None:
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0 if available is None else available)
    return fake


def choose(method: str = "imrl", allow_cpu_fallback: bool = True) -> tuple[int | None, str | None, devices.Choice]:
    """The slot, CUDA_VISIBLE_DEVICES and device a GPU method's run would get now."""
    with gpu_slot(wanted=True) as slot:
        return slot, os.environ.get("CUDA_VISIBLE_DEVICES"), devices.pick_device(method, True, slot, allow_cpu_fallback)


def test_the_imrl_family_and_sac_are_gpu_methods():
    for name in ("imrl", "imrl-e", "imrl-a", "imrl-kl", "sac"):
        assert registry.method(name).gpu and registry.method(name).run_entry(registry.ONLINE)["gpu"]
    assert not registry.method("markov").gpu


def test_outside_slurm_a_held_slot_with_cuda_gives_cuda(machine):
    machine(2)
    slot, visible, choice = choose()
    assert slot == 0 and visible == "0"
    assert choice.device == torch.device("cuda", 0) and choice.cpu_reason is None


def test_outside_slurm_without_a_gpu_the_cpu_is_used_and_why_or_the_run_fails(machine):
    machine(0)
    slot, _, choice = choose()
    assert slot is None and choice.device == torch.device("cpu")
    assert "no GPU is visible" in choice.cpu_reason
    with pytest.raises(devices.DeviceUnavailable, match=r"'sac'.*resources\.allow_cpu_fallback"):
        choose("sac", allow_cpu_fallback=False)


def test_a_held_slot_where_cuda_does_not_work_is_not_silent(machine):
    machine(1, available=False)
    slot, _, choice = choose()
    assert slot == 0 and choice.device.type == "cpu"
    assert "slot 0" in choice.cpu_reason and "is_available() is False" in choice.cpu_reason
    with pytest.raises(devices.DeviceUnavailable, match="slot 0"):
        choose(allow_cpu_fallback=False)


def test_a_cpu_method_stays_on_the_cpu_whatever_the_gpus(machine):
    machine(4)
    with gpu_slot(wanted=False) as slot:
        assert slot is None
        assert devices.pick_device("markov", False, slot, False) == devices.Choice(torch.device("cpu"), None)


@pytest.mark.parametrize("variables, expected", [
    ({"CUDA_VISIBLE_DEVICES": "0"}, "0"),                                     # cgroup-remapped by SLURM
    ({"SLURM_JOB_GPUS": "3"}, "3"),                                           # global ids, no remapping
    ({"SLURM_JOB_GPUS": "3,4", "SLURM_STEP_GPUS": "4"}, "4"),                 # the step's own
    ({"CUDA_VISIBLE_DEVICES": "1", "SLURM_JOB_GPUS": "6"}, "1"),              # what CUDA will honour
])
def test_under_slurm_the_scheduler_gpu_is_used(machine, monkeypatch, variables, expected):
    machine(8)   # the node has 8; only the job's may be used
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    slot, visible, choice = choose()
    assert slot == 0 and visible == expected and choice.device == torch.device("cuda", 0)
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == variables.get("CUDA_VISIBLE_DEVICES")   # restored


def test_under_slurm_without_a_gpu_the_node_gpus_are_not_taken(machine, monkeypatch):
    machine(8)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    slot, visible, choice = choose()
    assert slot is None and visible is None and choice.device.type == "cpu"
    assert "SLURM job 77 was given no GPU" in choice.cpu_reason
    with pytest.raises(devices.DeviceUnavailable, match="SLURM job 77"):
        choose(allow_cpu_fallback=False)


def test_jobs_in_one_allocation_get_distinct_gpus_and_other_jobs_do_not_wait(machine, monkeypatch, tmp_path):
    machine(8)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_JOB_GPUS", "2,5")
    with gpu_slot(wanted=True) as first:
        held = os.environ["CUDA_VISIBLE_DEVICES"]
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")   # as a second job of the allocation starts
        with gpu_slot(wanted=True) as second:
            assert (first, held, second, os.environ["CUDA_VISIBLE_DEVICES"]) == (0, "2", 1, "5")
        monkeypatch.setenv("SLURM_JOB_ID", "78")         # another job on the node: its own locks
        with gpu_slot(wanted=True, timeout_s=0) as other:
            assert other == 0
    assert gpu.lock_dir() == tmp_path / "locks" / "slurm-78"


def test_the_record_says_cpu_and_why_or_the_run_fails(machine, monkeypatch, tmp_path, split_small):
    """Through the runner, with a cheap method declared gpu."""
    monkeypatch.setitem(registry.METHODS, "random", dataclasses.replace(registry.METHODS["random"], gpu=True))
    machine(0)
    save_split(split_small, tmp_path / "split")
    record = run_offline("synthetic", "random", 0, tmp_path / "split", JOB, tmp_path / "a.json")
    assert record["status"] == "ok"
    provenance = record["provenance"]
    assert provenance["device"] == "cpu" and "no GPU is visible" in provenance["cpu_reason"]
    assert provenance["gpu_name"] is provenance["precision"] is None
    validate_run(record, "a.json")
    strict = {**JOB, "device": {"allow_cpu_fallback": False, "allow_tf32": False}}
    record = run_offline("synthetic", "random", 0, tmp_path / "split", strict, tmp_path / "b.json")
    assert record["status"] == "failed" and record["error"]["type"] == "DeviceUnavailable"
    assert "'random' is declared a GPU method" in record["error"]["message"]
    validate_run(record, "b.json")


def test_numerics_tf32_off_unless_allowed(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    try:
        devices.configure_numerics(allow_tf32=True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:   # torch's flag modules refuse monkeypatch's undo; this is the state runs leave
        devices.configure_numerics(allow_tf32=False)
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert not torch.backends.cudnn.benchmark
    assert devices.settings({})["allow_tf32"] is False


def test_gpu_provenance_on_a_faked_gpu_and_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake H200")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91000)
    info = devices.gpu_provenance(torch.device("cuda", 0))
    assert (info["gpu_name"], info["cuda_version"], info["cudnn_version"]) == ("Fake H200", "12.8", 91000)
    assert info["precision"]["cublas_workspace_config"] == ":4096:8"
    assert set(info["precision"]) >= {"tf32_matmul", "tf32_cudnn", "deterministic_algorithms"}
    assert all(value is None for value in devices.gpu_provenance(torch.device("cpu")).values())
    record = offline_record("d", "imrl", 0)
    record["provenance"].update(device="cuda:0", gpu_slot=0, cpu_reason=None, **info)
    validate_run(record, "gpu.json")   # and older records, without these fields, still validate
    record["provenance"]["cudnn_version"] = "9.1"
    with pytest.raises(RunRecordError, match="cudnn_version"):
        validate_run(record, "gpu.json")


def test_cublas_workspace_is_set_when_the_runner_is_imported():
    env = {key: value for key, value in os.environ.items() if key != "CUBLAS_WORKSPACE_CONFIG"}
    script = "import os, imrl.runs.run; print(os.environ['CUBLAS_WORKSPACE_CONFIG'])"
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == ":4096:8"


def _runs(devices_by_seed: dict[int, str]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "d", "method": "m", "seed": seed, "setting": "offline", "status": "ok",
                          "device": device, "test/recall@20": 0.1, "test/precision@20": 0.01, "test/ndcg@20": 0.05}
                         for seed, device in devices_by_seed.items()])


def test_table2_says_when_seeds_ran_on_different_devices():
    table = build_table2(_runs({0: "cpu", 1: "cuda:0", 2: "cuda:0"}))
    assert table.notes == ["m on d: seeds ran on different devices (cpu: seed 0; cuda: seeds 1, 2), pooled in the mean"]
    assert (table.cells["note"] == 1).all()
    assert any("different devices" in line for line in legend(table))
    assert build_table2(_runs({0: "cuda:0", 1: "cuda:0"})).notes == []


def test_gpu_smoke_without_cuda_says_so_and_exits_0():
    done = subprocess.run([sys.executable, "bench/gpu_smoke.py"], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr
    assert "no CUDA device on this machine" in done.stdout
