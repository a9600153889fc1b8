"""The device a run trains on, and the numerics it runs with.

A method the registry declares ``gpu`` trains on CUDA when it holds a GPU slot
(imrl/runs/gpu.py) and CUDA works. When it cannot get CUDA it fails, naming why, unless
the run's job allows the CPU (``device.allow_cpu_fallback``, from the config's
``resources.allow_cpu_fallback``); the record then says it ran on the CPU and why.

Numerics are fixed for reproducibility: TF32 off unless ``device.allow_tf32``,
deterministic algorithms wherever torch has them, cuBLAS in its deterministic workspace
mode. What stays nondeterministic is listed in PROTOCOL.md ("Devices and determinism").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

# cuBLAS reads this when it creates its first handle, so it must be set before any CUDA
# work in the process; importing the runner comes first. ":4096:8" is the value torch's
# reproducibility notes give for deterministic cuBLAS.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402  (after the variable above)

from imrl.runs.gpu import no_gpu_reason  # noqa: E402

#: What a job without a ``device`` section gets (direct calls, tests); the workflow always
#: writes the config's values.
DEFAULTS = {"allow_cpu_fallback": True, "allow_tf32": False}


class DeviceUnavailable(RuntimeError):
    """A GPU method could not get CUDA and its job does not allow the CPU."""


@dataclass(frozen=True)
class Choice:
    device: torch.device
    cpu_reason: str | None   # why a GPU method runs on the CPU; None when it got what it declared


def settings(job: dict[str, Any]) -> dict[str, bool]:
    return {**DEFAULTS, **job.get("device", {})}


def pick_device(method: str, wanted: bool, slot: int | None, allow_cpu_fallback: bool) -> Choice:
    """CUDA for a GPU method that holds a slot where CUDA works; the CPU for the others,
    or DeviceUnavailable when a GPU method may not fall back."""
    if not wanted:
        return Choice(torch.device("cpu"), None)
    if slot is None:
        reason = no_gpu_reason()
    elif not torch.cuda.is_available():
        reason = (f"GPU slot {slot} is held (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}) "
                  f"but torch.cuda.is_available() is False (torch {torch.__version__}, built for CUDA "
                  f"{torch.version.cuda})")
    else:
        return Choice(torch.device("cuda", 0), None)
    if not allow_cpu_fallback:
        raise DeviceUnavailable(f"method {method!r} is declared a GPU method but cannot get CUDA: {reason}; "
                                "set resources.allow_cpu_fallback: true in the config to run it on the CPU")
    return Choice(torch.device("cpu"), reason)


def configure_numerics(allow_tf32: bool) -> None:
    """TF32 as configured (off by default: it changes results on Ampere and later GPUs),
    deterministic algorithms where torch has them (warning, not failing, where it has
    none), cuDNN without autotuning (its choice of kernel can change between runs)."""
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def gpu_provenance(device: torch.device) -> dict[str, Any]:
    """What the record says of the GPU and the numerics: all None on the CPU."""
    on_gpu = device.type == "cuda"
    return {
        "gpu_name": torch.cuda.get_device_name(device) if on_gpu else None,
        "cuda_version": torch.version.cuda if on_gpu else None,
        "cudnn_version": torch.backends.cudnn.version() if on_gpu else None,
        "precision": {
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        } if on_gpu else None,
    }
