"""Run one method on one offline dataset or online simulator with one seed, and write
its results JSON.

The record is written whatever happens: metrics when the method succeeds, status
"failed" with the error when it raises, so that tables still render and show the
failure. The file appears atomically; the schema is checked before it is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from imrl import registry
from imrl.api import RunContext
from imrl.data.split import PHASES, load_split
from imrl.envs.environment import OfflineEnvironment
from imrl.envs.user_model import load_user_model, read_meta
from imrl.eval.online import run_simulator
from imrl.eval.ranking import evaluate
from imrl.io import atomic_write_json
from imrl.runs import device as devices
from imrl.runs import provenance
from imrl.runs.gpu import gpu_slot
from imrl.schemas import validate_run


def config_hash(obj: Any) -> str:
    """sha256 of the canonical JSON form (sorted keys): equal configs, equal hashes. Here
    rather than in imrl/config.py, so that the config checks are not code of every run
    (the inputs of its job)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; ask torch for deterministic kernels (warning where it
    has none, listed in PROTOCOL.md, rather than failing the run)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


# A body trains and evaluates, filling record["metrics"], "n_users", "curve", "substitutes".
Body = Callable[[type, dict[str, Any], RunContext, dict[str, Any]], None]


def _run(dataset: str, method: str, seed: int, setting: str, job: dict[str, Any], out: Path,
         body: Body, progress: bool, checkpoint_dir: Path | None, checkpoint_every_s: float) -> dict[str, Any]:
    """Shared by both settings: seed, device (imrl/runs/device.py, with the job's
    ``device`` settings), the failure record, provenance, the atomic write. A method that
    checkpoints writes into `checkpoint_dir` and resumes from it when a killed run is
    started again; the directory is removed once the record is written."""
    started, t0 = provenance.now(), time.perf_counter()
    spec = registry.method(method)
    record: dict[str, Any] = {
        "schema_version": 1, "dataset": dataset, "method": method, "seed": seed, "setting": setting,
        "status": "ok", "error": None, "metrics": {}, "n_users": {}, "curve": None, "substitutes": [],
        "training": None, "config": job,
    }
    device, slot, cpu_reason = torch.device("cpu"), None, None
    options = devices.settings(job)
    run_hash = config_hash({"dataset": dataset, "method": method, **job})
    resumes: list[str] = []   # where a checkpoint was really resumed (imrl/checkpoint.py)
    try:
        cls = spec.load(setting)
        devices.configure_numerics(options["allow_tf32"])
        with gpu_slot(wanted=spec.gpu) as slot:
            choice = devices.pick_device(method, spec.gpu, slot, options["allow_cpu_fallback"])
            device, cpu_reason = choice.device, choice.cpu_reason
            ctx = RunContext(seed=seed, device=device, budget=job.get("budget", {}),
                             checkpoint_dir=checkpoint_dir, checkpoint_every_s=checkpoint_every_s, progress=progress,
                             config_hash=run_hash, resumes=resumes)
            seed_everything(seed)
            body(cls, {**spec.defaults, **job.get("method", {})}, ctx, record)
    except Exception as error:  # the record must say what failed, whatever it was
        record.update(status="failed", metrics={}, n_users={}, curve=None, training=None, error={
            "type": type(error).__name__, "message": str(error), "traceback": traceback.format_exc()})
    record["provenance"] = provenance.collect(run_hash, str(device), started, time.perf_counter() - t0,
                                              bool(resumes), slot, cpu_reason, devices.gpu_provenance(device))
    validate_run(record, str(out))
    atomic_write_json(out, record)
    if checkpoint_dir is not None and record["status"] == "ok":
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return record


def offline_environment(config: dict[str, Any] | None, user_model_dir: Path | None, split, device) -> tuple[
        OfflineEnvironment, dict[str, Any]]:
    """The dataset's offline environment (its config ``environment``) and what the results
    record of it; the user model is read from `user_model_dir` (the workflow's artefact)."""
    if OfflineEnvironment.kind_of(config) != "user_model":
        return OfflineEnvironment.from_config(config), {}
    if user_model_dir is None:
        raise ValueError("the dataset's environment is user_model, but no fitted user model was given (--user-model)")
    environment = OfflineEnvironment.from_config(config, load_user_model(user_model_dir, split, device))
    meta = read_meta(user_model_dir)   # present: load_user_model requires it
    return environment, {"user_model_valid": meta["valid"], "popularity_valid": meta["popularity_valid"]}


def run_offline(dataset: str, method: str, seed: int, split_dir: Path, job: dict[str, Any], out: Path,
                progress: bool = False, checkpoint_dir: Path | None = None,
                checkpoint_every_s: float = 600.0, user_model_dir: Path | None = None) -> dict[str, Any]:
    """Fit `method` on the split in `split_dir`, evaluate on valid and test, write `out`.

    `job` is the resolved configuration of this run: {"method": params, "dataset":
    dataset config, "evaluation": evaluation config, "budget": ...}; its hash goes into
    the provenance. A method that trains in the offline environment (the registry's
    ``offline_env``) gets the dataset's (``job["dataset"]["environment"]``, with the user
    model fitted in `user_model_dir`) and its discount ``gamma`` unless its own config sets one."""
    def body(cls: type, params: dict[str, Any], ctx: RunContext, record: dict[str, Any]) -> None:
        split = load_split(split_dir)
        in_environment = registry.method(method).offline_env
        notes = {}
        if in_environment:
            config = job.get("dataset", {}).get("environment")
            environment, notes = offline_environment(config, user_model_dir, split, ctx.device)
            ctx = dataclasses.replace(ctx, environment=environment)
            if environment.gamma is not None and "gamma" not in job.get("method", {}):
                params = {**params, "gamma": environment.gamma}
        model = cls(params, ctx)
        model.fit(split)
        if in_environment:   # the discount the method used: its own config's, or the environment's
            notes["gamma"] = model.params.get("gamma")
        record["training"] = {**model.diagnostics, **notes} or None
        evaluation = job["evaluation"]
        for phase in PHASES:
            result = evaluate(lambda users, phase=phase: model.score(users, phase), split, phase,
                              ks=evaluation["ks"], batch_size=evaluation.get("batch_size"), device=ctx.device)
            record["metrics"][phase] = result.as_dict()
            record["n_users"][phase] = result.n_users
        record["substitutes"] = list(model.substitutes)

    return _run(dataset, method, seed, registry.OFFLINE, job, out, body, progress, checkpoint_dir,
                checkpoint_every_s)


def run_online(simulator: str, method: str, seed: int, job: dict[str, Any], out: Path,
               progress: bool = False, checkpoint_dir: Path | None = None,
               checkpoint_every_s: float = 600.0) -> dict[str, Any]:
    """Train `method` on `simulator` for the configured episodes, testing every
    `test_every` episodes (the CTR curve), and write `out`.

    `job`: {"method": params, "simulator": {params, episodes, test_every, test_episodes,
    n_envs}, "budget": ...}."""
    def body(cls: type, params: dict[str, Any], ctx: RunContext, record: dict[str, Any]) -> None:
        sim = job["simulator"]
        result, agent = run_simulator(simulator, cls, params, ctx, episodes=sim["episodes"],
                                      test_every=sim["test_every"], test_episodes=sim["test_episodes"],
                                      n_envs=sim["n_envs"], simulator_params=sim.get("params", {}))
        record["metrics"] = dict(result.metrics)
        record["curve"] = result.curve
        record["substitutes"] = list(agent.substitutes)

    return _run(simulator, method, seed, registry.ONLINE, job, out, body, progress, checkpoint_dir,
                checkpoint_every_s)
