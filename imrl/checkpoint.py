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
the previous checkpoint intact. It is removed once the job's results are written
(imrl/runs/run.py).

A checkpoint proves what it is before anything in it is unpickled. Its first
``HEADER_BYTES`` are a JSON header: a SHA-256 over the payload (the ``torch.save`` bytes
after the header) and the header's other fields, the payload's size, the run's config
hash and seed, the code version of the method (a hash of the source files of its class
and base classes) and the device it was saved on. A file that fails any check (a flipped
byte, a truncated write, another configuration, edited code, or a payload that does not
unpickle) is logged, deleted, and the run starts over: it is never resumed silently and
never fails again on every retry. A restore that did happen is recorded in
``RunContext.resumes`` (the results' ``provenance.resumed``).

Restores work across devices: what lived on the device the run was saved on (tensors,
``torch.device`` objects, generators) is placed on the run's device now; the rest (e.g.
CPU generators of a GPU run) stays where it was. A generator moved between CPU and CUDA
cannot keep its stream (the two kinds have different states) and restarts from its seed,
so such a run resumes but does not reproduce the uninterrupted run exactly.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import inspect
import json
import pickle
import random
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch.serialization import default_restore_location

from imrl.api import RunContext
from imrl.io import atomic_path

SUFFIX = ".pt"
FORMAT = 1
MAGIC = b"imrl-checkpoint\n"
HEADER_BYTES = 4096          # the header block, padded with spaces: the payload starts at a fixed offset
_CHUNK = 1 << 20


class CheckpointRejected(Exception):
    """A checkpoint that must not be resumed (the message says why)."""


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


@functools.lru_cache(maxsize=None)
def code_version(method: type) -> str:
    """A hash of the source files defining `method` and its base classes (standard library
    aside): a checkpoint saved by edited code is not resumed."""
    digest = hashlib.sha256()
    for path in dict.fromkeys(_source_file(cls) for cls in method.__mro__):
        if path is not None:
            digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def _source_file(cls: type) -> str | None:
    if cls.__module__.split(".")[0] in sys.stdlib_module_names:
        return None
    try:
        return inspect.getsourcefile(cls)
    except TypeError:   # a class defined in C
        return None


# --- devices: saved in a form that a restore can place on another device -------------------------

@dataclass
class _Move:
    """What a restore does with devices: those of the saved run's device type become `target`."""

    saved: torch.device
    target: torch.device
    restarted: int = 0   # generators that changed kind (CPU <-> CUDA) and restarted from their seed

    def moves(self, device: torch.device) -> bool:
        return device.type == self.saved.type

    def location(self, storage: Any, location: str) -> Any:
        """``torch.load``'s map_location: storages on the saved run's device go to `target`."""
        return default_restore_location(storage, str(self.target)) if self.moves(torch.device(location)) else None


_move: contextvars.ContextVar[_Move | None] = contextvars.ContextVar("imrl_checkpoint_move", default=None)


def _device(name: str) -> torch.device:
    """A pickled ``torch.device`` (outside a restore: as saved)."""
    device, move = torch.device(name), _move.get()
    return move.target if move is not None and move.moves(device) else device


def _generator(device: str, seed: int, state: bytes) -> torch.Generator:
    """A pickled ``torch.Generator``: its state (a CPU byte tensor for every kind) is set on
    the device `_device` picks, or, where the kind changed, the stream restarts from `seed`."""
    target = _device(device)
    generator = torch.Generator(device=target)
    if target.type == torch.device(device).type:
        generator.set_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))
    else:
        generator.manual_seed(seed)
        _move.get().restarted += 1
    return generator


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, torch.device):
            return _device, (str(obj),)
        if isinstance(obj, torch.Generator):
            return _generator, (str(obj.device), obj.initial_seed(), obj.get_state().numpy().tobytes())
        return NotImplemented


_PICKLE = types.SimpleNamespace(__name__=__name__, Pickler=_Pickler)   # torch.save's pickle_module


# --- the file: header block, then the torch.save payload -----------------------------------------

def _digest(fh: IO[bytes], meta: dict[str, Any]) -> str:
    """SHA-256 over the payload (from `fh`'s position to its end) and the header's other fields."""
    digest = hashlib.sha256()
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
    digest.update(json.dumps(meta, sort_keys=True).encode())
    return digest.hexdigest()


def _header_block(header: dict[str, Any]) -> bytes:
    block = MAGIC + json.dumps(header, sort_keys=True).encode()
    if len(block) >= HEADER_BYTES:
        raise ValueError(f"checkpoint header of {len(block)} bytes does not fit in {HEADER_BYTES}: {header}")
    return block.ljust(HEADER_BYTES - 1, b" ") + b"\n"


def read_header(path: Path) -> dict[str, Any]:
    """The header of the checkpoint at `path` once its size and checksum hold; raises
    ``CheckpointRejected`` saying what does not."""
    with open(path, "rb") as fh:
        block = fh.read(HEADER_BYTES)
        if len(block) < HEADER_BYTES or not block.startswith(MAGIC):
            raise CheckpointRejected(f"no checkpoint header in its first {HEADER_BYTES} bytes (truncated, or not "
                                     "written by this version)")
        try:
            text = block[len(MAGIC):].decode("utf-8")
            header, end = json.JSONDecoder().raw_decode(text)
        except ValueError as error:
            raise CheckpointRejected(f"corrupt header ({error})") from None
        if text[end:] != " " * (len(text) - end - 1) + "\n" or not isinstance(header, dict):
            raise CheckpointRejected("corrupt header (bytes after its JSON)")
        if header.get("format") != FORMAT:
            raise CheckpointRejected(f"format {header.get('format')!r}, expected {FORMAT}")
        payload, size = header.get("payload_bytes"), path.stat().st_size
        if not isinstance(payload, int) or size != HEADER_BYTES + payload:
            raise CheckpointRejected(f"{size} bytes, its header says {HEADER_BYTES} + {payload!r} (truncated or "
                                     "appended to)")
        meta = {key: value for key, value in header.items() if key != "sha256"}
        if _digest(fh, meta) != header.get("sha256"):
            raise CheckpointRejected("checksum mismatch (corrupt)")
    return header


class Checkpointer:
    """The checkpoint of a run of `method` (its class) in `setting` ("offline" or "online"),
    in ``ctx.checkpoint_dir`` (no directory: never due)."""

    def __init__(self, ctx: RunContext, setting: str, method: type):
        name = f"{setting}-{method.__name__}{SUFFIX}"
        self.path = None if ctx.checkpoint_dir is None else Path(ctx.checkpoint_dir) / name
        self.every_s = float(ctx.checkpoint_every_s)
        self.device, self.log, self.resumes = torch.device(ctx.device), ctx.log, ctx.resumes
        #: What a checkpoint must have been saved by to be resumed.
        self.identity = {"config_hash": ctx.config_hash, "seed": ctx.seed, "code_version": code_version(method)}
        self.last_save = time.monotonic()

    def restore(self) -> dict[str, Any] | None:
        """The last saved state (the random states already restored), or None: no
        checkpoint, or one that was discarded (logged, deleted) because it did not hold."""
        if self.path is None or not self.path.exists():
            return None
        try:
            header = read_header(self.path)
            differ = [f"{key} {header.get(key)!r} != {value!r}" for key, value in self.identity.items()
                      if header.get(key) != value]
            if differ:
                raise CheckpointRejected(f"saved by another run ({'; '.join(differ)})")
            move = _Move(saved=torch.device(header["device"]), target=self.device)
            state = self._load(move)
        except Exception as error:   # whatever is wrong with the file, the run must go on without it
            reason = str(error) if isinstance(error, CheckpointRejected) else f"{type(error).__name__}: {error}"
            self.log(f"checkpoint {self.path} discarded, the run starts over: {reason}")
            self.path.unlink(missing_ok=True)
            return None
        set_random_states(state.pop("random_states"))
        where = header["where"]
        moved = f", moved from {move.saved} to {move.target}" if move.saved != move.target else ""
        self.log(f"resumed from {self.path} ({where}{moved})")
        if move.restarted:
            self.log(f"{move.restarted} random generator(s) changed device kind and restarted from their seeds: "
                     "the run will not reproduce an uninterrupted one exactly")
        self.resumes.append(where)
        self.last_save = time.monotonic()
        return state

    def _load(self, move: _Move) -> dict[str, Any]:
        token = _move.set(move)
        try:
            with open(self.path, "rb") as fh:
                fh.seek(HEADER_BYTES)
                # Whole objects, hence weights_only=False: the file is this job's own, and
                # its checksum and identity were checked above.
                return torch.load(fh, map_location=move.location, weights_only=False)
        finally:
            _move.reset(token)

    def due(self) -> bool:
        return self.path is not None and time.monotonic() - self.last_save >= self.every_s

    def save(self, state: dict[str, Any]) -> None:
        """Write `state` (with ``state["where"]``, a human-readable position, for the log)."""
        where = str(state.get("where", "?"))
        with atomic_path(self.path) as tmp, open(tmp, "w+b") as fh:
            fh.write(bytes(HEADER_BYTES))   # room for the header, written once the payload is hashed
            torch.save({**state, "random_states": random_states()}, fh, pickle_module=_PICKLE)
            meta = {"format": FORMAT, **self.identity, "device": str(self.device), "where": where,
                    "payload_bytes": fh.tell() - HEADER_BYTES}
            fh.seek(HEADER_BYTES)
            header = {**meta, "sha256": _digest(fh, meta)}
            fh.seek(0)
            fh.write(_header_block(header))
        self.last_save = time.monotonic()
        self.log(f"checkpoint saved ({where})")
