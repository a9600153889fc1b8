"""Environment steps per second of the three simulators: the native batched environment
with --users users (default 256) against the reference stepping one user at a time,
measured in the same run.

References: the original packages for RecSim (``recsim-no-tf``: interest_evolution's
RecSimGymEnv) and RecoGym (``recogym``: RecoEnv1, bandit steps, users that leave before
any impression skipped as in ours); for VirtualTB, which has no package, the same
networks evaluated for one user per step (what the original does), i.e. our environment
with one user. A step is one user's step (one slate, impression or page); actions are
uniformly random, drawn before timing. VirtualTB uses the weights in --weights-dir, or
random networks of the same shapes when they are absent (the output says which).

Timing: after a warm-up, --rounds short windows of each side alternate; the best
window of each side gives the printed rates and ratio (the median ratio of the pairs is
printed beside). torch runs with --threads threads on both sides (default 1: the small
matrices of one user gain nothing from more, and the machines are shared).
Targets: >= 20x for RecSim and RecoGym, >= 40x for VirtualTB.

    python bench/simulators.py [--users 256] [--rounds 10] [--window 0.3] [--weights-dir data/raw/virtualtb]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # runnable from a checkout, installed or not
from imrl.envs.recogym import RecoGym, load_reference  # noqa: E402
from imrl.envs.recsim import RecSim  # noqa: E402
from imrl.envs.virtualtb import DEFAULT_WEIGHTS_DIR, VirtualTB, VirtualTBNetworks  # noqa: E402

TARGETS = {"recsim": 20.0, "recogym": 20.0, "virtualtb": 40.0}
RECSIM_CONFIG = {"num_candidates": 10, "slate_size": 2, "resample_documents": True}
RECOGYM_PRODUCTS = 10


def window(step: Callable[[int], None], users_per_call: int, seconds: float) -> float:
    """User-steps per second of repeated `step(i)` calls over about `seconds`."""
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        step(calls)
        calls += 1
    return calls * users_per_call / elapsed


def compare(reference: Callable[[int], None], native: Callable[[int], None], users: int, rounds: int,
            seconds: float) -> tuple[float, float, float]:
    window(reference, 1, seconds / 3)
    window(native, users, seconds / 3)
    pairs = [(window(reference, 1, seconds), window(native, users, seconds)) for _ in range(rounds)]
    best_reference, best_native = max(p[0] for p in pairs), max(p[1] for p in pairs)
    return best_reference, best_native, statistics.median(n / r for r, n in pairs)


def quietly_import_gym() -> None:
    """The originals import gym 0.26, which prints a deprecation banner on stderr."""
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import gym  # noqa: F401


def recsim_steppers(users: int, rng: np.random.Generator):
    from recsim.environments import interest_evolution
    original = interest_evolution.create_environment({**RECSIM_CONFIG, "seed": 0})
    original.seed(0)
    original.reset()
    slates = rng.integers(RECSIM_CONFIG["num_candidates"], size=(4096, RECSIM_CONFIG["slate_size"]))

    def reference(i):
        if original.step(slates[i % 4096])[2]:
            original.reset()

    native_env = RecSim(users, "discrete", **RECSIM_CONFIG)
    native_env.reset(seed=0)
    batches = rng.integers(RECSIM_CONFIG["num_candidates"], size=(64, users, RECSIM_CONFIG["slate_size"]))
    return reference, lambda i: native_env.step(batches[i % 64])


def recogym_steppers(users: int, rng: np.random.Generator):
    env_class, args = load_reference()
    original = env_class()
    original.init_gym({**args, "random_seed": 0, "num_products": RECOGYM_PRODUCTS})
    next_user = [0]

    def start_user():
        while True:
            original.reset(next_user[0])
            next_user[0] += 1
            if not original.step(None)[2]:
                return

    start_user()
    products = rng.integers(RECOGYM_PRODUCTS, size=4096)

    def reference(i):
        if original.step(int(products[i % 4096]))[2]:
            start_user()

    native_env = RecoGym(users, "discrete", num_products=RECOGYM_PRODUCTS)
    native_env.reset(seed=0)
    batches = rng.integers(RECOGYM_PRODUCTS, size=(64, users))
    return reference, lambda i: native_env.step(batches[i % 64])


def virtualtb_steppers(users: int, rng: np.random.Generator, weights_dir: Path):
    try:
        networks, source = VirtualTBNetworks.load(weights_dir), f"the real weights in {weights_dir}"
    except FileNotFoundError:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            networks = VirtualTBNetworks()
        source = f"RANDOM networks of the upstream shapes (no weights in {weights_dir})"
    one, many = VirtualTB(1, networks=networks), VirtualTB(users, networks=networks)
    one.reset(seed=0)
    many.reset(seed=0)
    single = rng.uniform(-1, 1, (4096, 1, 27)).astype(np.float32)
    batches = rng.uniform(-1, 1, (64, users, 27)).astype(np.float32)
    return (lambda i: one.step(single[i % 4096])), (lambda i: many.step(batches[i % 64])), source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--window", type=float, default=0.3, help="seconds per timing window")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    parser.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    quietly_import_gym()
    rng = np.random.default_rng(0)
    reference_recsim, native_recsim = recsim_steppers(args.users, rng)
    reference_recogym, native_recogym = recogym_steppers(args.users, rng)
    reference_vtb, native_vtb, vtb_source = virtualtb_steppers(args.users, rng, args.weights_dir)
    rows = [
        ("recsim", "original recsim-no-tf, 1 user", reference_recsim, native_recsim,
         "interest evolution, 10 candidates, slate 2, resampled documents"),
        ("recogym", "original recogym RecoEnv1, 1 user", reference_recogym, native_recogym,
         f"environment v1, {RECOGYM_PRODUCTS} products, bandit steps"),
        ("virtualtb", "same networks, 1 user a step", reference_vtb, native_vtb, f"networks: {vtb_source}"),
    ]
    print(f"steps/s: native batched at N={args.users} users vs the reference one user at a time "
          f"(best of {args.rounds} alternating {args.window:.1f} s windows; torch threads: {args.threads})")
    print(f"{'simulator':<10} {'reference':<34} {'ref steps/s':>12} {'native steps/s':>15} {'ratio':>7} "
          f"{'median':>7} {'target':>7}")
    failed = []
    for name, reference_name, reference, native, note in rows:
        ref_rate, native_rate, median_ratio = compare(reference, native, args.users, args.rounds, args.window)
        ratio = native_rate / ref_rate
        verdict = "ok" if ratio >= TARGETS[name] else "BELOW TARGET"
        if ratio < TARGETS[name]:
            failed.append(name)
        print(f"{name:<10} {reference_name:<34} {ref_rate:>12,.0f} {native_rate:>15,.0f} {ratio:>6.1f}x "
              f"{median_ratio:>6.1f}x {TARGETS[name]:>5.0f}x  {verdict}   ({note})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
