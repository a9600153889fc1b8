"""Where a result came from: code version, configuration hash, packages, hardware."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "numpy", "pandas", "pyarrow", "scipy", "gymnasium", "snakemake", "imrl-bench")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> tuple[str, bool | None]:
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return "unknown", None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit, (bool(status) if status is not None else None)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}; {os.cpu_count()} logical CPUs"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def collect(config_hash: str, device: str, started_at: str, wall_time_s: float, resumed: bool = False,
            gpu_slot: int | None = None, cpu_reason: str | None = None, gpu: dict | None = None) -> dict:
    """The record's provenance; `gpu` is imrl.runs.device.gpu_provenance's (GPU name,
    CUDA and cuDNN versions, precision flags)."""
    commit, dirty = git_state()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "config_hash": config_hash,
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hardware": hardware(),
        "device": device,
        "gpu_slot": gpu_slot,   # the slot held (imrl/runs/gpu.py); None on the CPU
        "cpu_reason": cpu_reason,   # why a GPU method ran on the CPU; None otherwise
        **(gpu or {}),
        "wall_time_s": round(wall_time_s, 3),
        "started_at": started_at,
        "finished_at": now(),
        "resumed": resumed,
    }
