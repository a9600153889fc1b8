"""GPU slots: concurrent GPU jobs get distinct devices.

Snakemake's ``--resources gpu=N`` caps how many GPU jobs run at once but never says
WHICH device a job should use. Each GPU job therefore takes a non-blocking file lock on
one of the devices it may use and sets CUDA_VISIBLE_DEVICES to the one it won.

Which devices it may use: outside SLURM, every device the machine shows (an existing
CUDA_VISIBLE_DEVICES restricts them). Under SLURM (SLURM_JOB_ID set), only those the
scheduler gave the job: CUDA_VISIBLE_DEVICES, else SLURM_STEP_GPUS, else SLURM_JOB_GPUS;
none given means none used, even where the node has GPUs (they belong to other jobs).
The locks of a SLURM job live in a folder of its own, so that jobs on one node whose
cgroups both show "device 0" do not wait for each other; several GPU jobs inside one
allocation (``snakemake --resources gpu=4`` in an ``salloc``) still get distinct devices.

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

SLURM_GPU_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS")


def under_slurm() -> bool:
    return "SLURM_JOB_ID" in os.environ


def assigned_devices() -> list[str] | None:
    """The device ids the job may use, when something restricts them (CUDA_VISIBLE_DEVICES,
    or under SLURM the scheduler's variables; [] under SLURM when it gave none); None when
    every device of the machine is the job's."""
    names = SLURM_GPU_VARIABLES if under_slurm() else SLURM_GPU_VARIABLES[:1]
    for name in names:
        if os.environ.get(name):
            return os.environ[name].split(",")
    return [] if under_slurm() else None


def visible_gpu_count() -> int:
    if "IMRL_GPU_SLOTS" in os.environ:
        return int(os.environ["IMRL_GPU_SLOTS"])
    devices = assigned_devices()
    if devices is not None:
        return len(devices)
    import torch

    return torch.cuda.device_count()


def lock_dir() -> Path:
    base = Path(os.environ.get("IMRL_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / "imrl-gpu-slots"))
    return base / f"slurm-{os.environ['SLURM_JOB_ID']}" if under_slurm() else base


def no_gpu_reason() -> str:
    """Why a job that wanted a GPU holds no slot (there was none to take)."""
    if under_slurm():
        return (f"SLURM job {os.environ['SLURM_JOB_ID']} was given no GPU "
                f"({', '.join(SLURM_GPU_VARIABLES)} unset or empty)")
    return "no GPU is visible on this machine"


@contextlib.contextmanager
def gpu_slot(wanted: bool, poll_s: float = 0.5, timeout_s: float = 24 * 3600) -> Iterator[int | None]:
    """Hold one GPU slot for the duration of the block; yields the slot index, with
    CUDA_VISIBLE_DEVICES naming that one device, or None when the job did not want a
    GPU or there is none it may use."""
    n_slots = visible_gpu_count() if wanted else 0
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
            # Slot k is the k-th device the job may use (honours an existing restriction).
            devices = assigned_devices() or [str(i) for i in range(n_slots)]
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
