"""GPU slots: concurrent holders get distinct devices; a SLURM assignment is kept; CPU-only is left alone."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

from imrl.runs.gpu import gpu_slot


def _hold(lock_dir: str, queue, hold_s: float) -> None:
    os.environ["IMRL_GPU_SLOTS"] = "3"
    os.environ["IMRL_GPU_LOCK_DIR"] = lock_dir
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    os.environ.pop("SLURM_JOB_ID", None)
    with gpu_slot(wanted=True, poll_s=0.05) as slot:
        start = time.monotonic()
        queue.put(("start", slot, os.environ["CUDA_VISIBLE_DEVICES"], start))
        time.sleep(hold_s)
        queue.put(("end", slot, None, time.monotonic()))


def test_concurrent_jobs_get_distinct_slots(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_hold, args=(str(tmp_path), queue, 0.4)) for _ in range(5)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    events = [queue.get(timeout=5) for _ in range(10)]
    starts = {e[3]: e for e in events if e[0] == "start"}
    assert all(e[1] == int(e[2]) for e in starts.values())  # CUDA_VISIBLE_DEVICES = the slot
    # Replay the events in time order: never two holders of one slot at once.
    holders: dict[int, int] = {}
    for kind, slot, _, _ in sorted(events, key=lambda e: e[3]):
        holders[slot] = holders.get(slot, 0) + (1 if kind == "start" else -1)
        assert holders[slot] <= 1
    assert len({e[1] for e in starts.values()}) >= 2  # 5 jobs over 3 slots use several slots


def test_slurm_assignment_kept_and_cpu_only_left_alone(monkeypatch, tmp_path):
    monkeypatch.delenv("IMRL_GPU_SLOTS", raising=False)
    monkeypatch.setenv("IMRL_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with gpu_slot(wanted=True) as slot:   # the scheduler's one GPU, held in the job's own lock folder
        assert slot == 0 and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
        assert (tmp_path / "slurm-42" / "gpu0.lock").exists()
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setenv("IMRL_GPU_SLOTS", "0")
    with gpu_slot(wanted=True) as slot:
        assert slot is None
    with gpu_slot(wanted=False) as slot:
        assert slot is None


def test_slot_maps_into_an_existing_restriction(monkeypatch, tmp_path):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("IMRL_GPU_SLOTS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    monkeypatch.setenv("IMRL_GPU_LOCK_DIR", str(tmp_path))
    with gpu_slot(wanted=True) as slot:
        assert slot == 0 and os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5,7"
