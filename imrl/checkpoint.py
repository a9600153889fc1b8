"""Resumable training: a training loop saves its whole state now and then, and a job
started again with the same arguments resumes from the last save instead of starting
over (a pre-empted or timed-out cluster job, a killed workstation run).

A loop asks ``due()`` at points where its state is complete (between environment steps,
between epochs) and, when it is, hands ``save`` everything it would need to go on: its
counters, the learner or agent object itself (networks, optimisers, buffers and their
generators are pickled with it, by ``torch.save``), the environment's state. The
process-wide random states (python, numpy, torch) are saved alongside and restored by
``restore``, so a resumed CPU run draws exactly what the uninterrupted run drew and
ends with the same metrics (tests/test_resume.py kills runs with SIGKILL to check it).

When a save is due is a matter of wall time (``RunContext.checkpoint_every_s``; the
workflow's ``resources.checkpoint_minutes``), never of the results: saving reads the
state and changes nothing. The file is written atomically; a kill during a save leaves
the previous checkpoint intact. It is read back with ``weights_only=False`` because it
holds whole objects: it is this job's own file, in the job's own checkpoint directory,
and is removed once the job's results are written (imrl/runs/run.py).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imrl.api import RunContext
from imrl.io import atomic_path

SUFFIX = ".pt"


def random_states() -> dict[str, Any]:
    """The process-wide generators a method may draw from."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])


class Checkpointer:
    """The checkpoint `name` of a run in ``ctx.checkpoint_dir`` (no directory: never due)."""

    def __init__(self, ctx: RunContext, name: str):
        self.path = None if ctx.checkpoint_dir is None else Path(ctx.checkpoint_dir) / f"{name}{SUFFIX}"
        self.every_s = float(ctx.checkpoint_every_s)
        self.device, self.log = ctx.device, ctx.log
        self.last_save = time.monotonic()

    def restore(self) -> dict[str, Any] | None:
        """The last saved state (the random states already restored), or None."""
        if self.path is None or not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location=self.device, weights_only=False)
        except Exception as error:
            raise RuntimeError(f"checkpoint {self.path} cannot be read ({error}); remove it to start the run "
                               "over") from error
        set_random_states(state.pop("random_states"))
        self.log(f"resumed from {self.path} ({state.get('where', '?')})")
        self.last_save = time.monotonic()
        return state

    def due(self) -> bool:
        return self.path is not None and time.monotonic() - self.last_save >= self.every_s

    def save(self, state: dict[str, Any]) -> None:
        """Write `state` (with ``state["where"]``, a human-readable position, for the log)."""
        with atomic_path(self.path) as tmp:
            torch.save({**state, "random_states": random_states()}, tmp)
        self.last_save = time.monotonic()
        self.log(f"checkpoint saved ({state.get('where', '?')})")
