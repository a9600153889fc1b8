"""GPU slots: concurrent GPU jobs get distinct devices.

Snakemake's ``--resources gpu=N`` caps how many GPU jobs run at once but never says
WHICH device a job should use. Each GPU job therefore takes a non-blocking file lock on
one of N slot files and sets CUDA_VISIBLE_DEVICES to the slot it won. Under SLURM the
scheduler has already set CUDA_VISIBLE_DEVICES: it is left alone. With no GPU the job
runs on the CPU.

``IMRL_GPU_SLOTS`` overrides the number of devices (tests use it to fake N devices on a
machine without GPUs); ``IMRL_GPU_LOCK_DIR`` sets where the lock files live.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout


def visible_gpu_count() -> int:
    if "IMRL_GPU_SLOTS" in os.environ:
        return int(os.environ["IMRL_GPU_SLOTS"])
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        return len(os.environ["CUDA_VISIBLE_DEVICES"].split(","))
    import torch

    return torch.cuda.device_count()


def lock_dir() -> Path:
    return Path(os.environ.get("IMRL_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / "imrl-gpu-slots"))


@contextlib.contextmanager
def gpu_slot(wanted: bool, poll_s: float = 0.5, timeout_s: float = 24 * 3600) -> Iterator[int | None]:
    """Hold one GPU slot for the duration of the block; yields the slot index, or None
    when the job runs on the CPU or under SLURM (which assigned the device already)."""
    if not wanted or "SLURM_JOB_ID" in os.environ:
        yield None
        return
    n_slots = visible_gpu_count()
    if n_slots == 0:
        yield None
        return
    directory = lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        for slot in range(n_slots):
            lock = FileLock(directory / f"gpu{slot}.lock")
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            previous = os.environ.get("CUDA_VISIBLE_DEVICES")
            # Slot k is the k-th device the job could see (honours an existing restriction).
            devices = previous.split(",") if previous else [str(i) for i in range(n_slots)]
            os.environ["CUDA_VISIBLE_DEVICES"] = devices[slot]
            try:
                yield slot
            finally:
                if previous is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = previous
                lock.release()
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU slot among {n_slots} in {directory} after {timeout_s} s")
        time.sleep(poll_s)
