"""GPU smoke test: every method the registry declares ``gpu``, briefly, on CUDA, through
the real runner (``python -m imrl run``, as the workflow starts it), on the default
config's synthetic dataset with smaller budgets. For each method:

- a run, and the same run again: their metrics must be equal (run-to-run equality on
  the GPU, with the runner's numerics: TF32 off, deterministic algorithms);
- a run killed (SIGKILL) after its first checkpoint and started again: it must resume
  and end with the metrics of the uninterrupted run;
- the device each run used, as its record says (provenance.device, gpu_name).

The runs may not fall back to the CPU (``allow_cpu_fallback: false``), so a method that
does not get CUDA fails and says why. On a machine without CUDA the script says so and
exits 0; otherwise it exits 1 when any check fails.

    python bench/gpu_smoke.py [--methods imrl sasrec ...] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from imrl import config as imrl_config  # noqa: E402
from imrl import registry  # noqa: E402

DATASET = "synthetic"
#: Smaller than the default config's (a smoke test, not a result): a few seconds a run.
BUDGET = {"epochs": 2, "env_steps": 4000, "validate_every": 250}
CHECKPOINT_EVERY_S = 0.5
SEED = 0


def gpu_methods() -> list[str]:
    return [name for name, spec in registry.METHODS.items() if spec.gpu and spec.available]


def prepare(config: dict, workdir: Path) -> Path:
    """The default config's synthetic split and its user model under `workdir`, as the
    workflow's data rules make them; returns the split directory."""
    from imrl.data import preprocess, synthetic
    from imrl.data.split import save_split
    from imrl.envs.user_model import fit_user_model, save_user_model

    dataset = config["datasets"][DATASET]
    split = preprocess.build_split(synthetic.generate(dataset["params"], seed=dataset["seed"]),
                                   dataset["preprocess"], DATASET)
    save_split(split, workdir / "split")
    environment = dataset["environment"]
    model, report = fit_user_model(split, environment["user_model"], seed=environment["seed"])
    save_user_model(workdir / "user_model", model, report)
    return workdir / "split"


def job(config: dict, method: str, device: dict) -> dict:
    """The offline job as rules/common.smk writes it, with the smoke budget."""
    dataset = config["datasets"][DATASET]
    return {"method": config["methods"][method], "dataset": dataset, "budget": {**dataset["budget"], **BUDGET},
            "evaluation": config["evaluation"], "device": device}


def command(method: str, run_job: dict, split_dir: Path, out: Path, checkpoints: Path) -> list[str]:
    return [sys.executable, "-m", "imrl", "run", "--dataset", DATASET, "--method", method, "--seed", str(SEED),
            "--split", str(split_dir), "--user-model", str(split_dir.parent / "user_model"),
            "--job", json.dumps(run_job), "--out", str(out), "--checkpoints", str(checkpoints),
            "--checkpoint-every", str(CHECKPOINT_EVERY_S)]


def run(args: list[str]) -> tuple[dict, str]:
    done = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True)
    out = Path(args[args.index("--out") + 1])
    if not out.exists():
        raise RuntimeError(f"no record written (exit {done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    return json.loads(out.read_text()), done.stdout


def killed_and_resumed(args: list[str]) -> tuple[dict | None, str]:
    """Kill the run after its first checkpoint, start it again; (record, what happened).
    The record is None when the run ended before a checkpoint (nothing to resume)."""
    child = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in child.stdout:
        if line.startswith("checkpoint saved"):
            child.send_signal(signal.SIGKILL)
            break
    child.wait()
    if child.returncode != -signal.SIGKILL:
        return None, "ended before its first checkpoint: resume not exercised"
    record, output = run(args)
    return record, "resumed" if "resumed from" in output else "started again from scratch (no resume)"


def where(record: dict) -> str:
    provenance = record["provenance"]
    device = provenance["device"]
    if provenance.get("gpu_name"):
        device += f" ({provenance['gpu_name']}, CUDA {provenance['cuda_version']}, cuDNN {provenance['cudnn_version']})"
    return device + (f" [cpu because: {provenance['cpu_reason']}]" if provenance.get("cpu_reason") else "")


def smoke(methods: list[str], workdir: Path, device: dict) -> list[str]:
    """Run the checks of every method in `methods`; print what each run used; return the
    failed checks."""
    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    imrl_config.validate(config, "config/config.yaml")
    split_dir = prepare(config, workdir)
    failures = []
    for method in methods:
        run_job = job(config, method, device)
        t0 = time.perf_counter()
        first, _ = run(command(method, run_job, split_dir, workdir / f"{method}-1.json", workdir / f"{method}-ck1"))
        second, _ = run(command(method, run_job, split_dir, workdir / f"{method}-2.json", workdir / f"{method}-ck2"))
        resumed, how = killed_and_resumed(command(method, run_job, split_dir, workdir / f"{method}-3.json",
                                                  workdir / f"{method}-ck3"))
        records = [r for r in (first, second, resumed) if r is not None]
        print(f"{method}: {time.perf_counter() - t0:.1f} s; runs on: {'; '.join(where(r) for r in records)}")
        checks = {
            "every run ok": all(r["status"] == "ok" for r in records),
            "every run on CUDA": all(r["provenance"]["device"].startswith("cuda") for r in records),
            "run-to-run equal metrics": first["metrics"] == second["metrics"],
            f"kill and resume ({how})": resumed is not None and how == "resumed"
                                        and resumed["metrics"] == first["metrics"],
        }
        for check, passed in checks.items():
            print(f"  {'ok  ' if passed else 'FAIL'} {check}")
            if not passed:
                failures.append(f"{method}: {check}")
        for record in records:
            if record["status"] != "ok":
                print(f"  error: {record['error']['type']}: {record['error']['message']}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", choices=gpu_methods(), default=gpu_methods())
    parser.add_argument("--workdir", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"no CUDA device on this machine (torch {torch.__version__}, built for CUDA {torch.version.cuda}): "
              "nothing to smoke-test; run this on a GPU node")
        return 0
    print(f"CUDA: {torch.cuda.device_count()} device(s), {torch.cuda.get_device_name(0)}; "
          f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}")
    with tempfile.TemporaryDirectory(prefix="imrl-gpu-smoke-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        failures = smoke(args.methods, workdir, {"allow_cpu_fallback": False, "allow_tf32": False})
    print("all checks passed" if not failures else f"{len(failures)} check(s) FAILED: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
