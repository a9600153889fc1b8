"""Does IMRL learn on the offline environment? Test recall@20 and nDCG@20 of SAC (the
"sac" variant: entropy term, no augmentation) and IMRL (the "imrl" variant: empowerment
and counterfactual augmentation) against the random and popularity rankings, all
measured in the same run on the same split.

Data: the dev configuration's synthetic dataset (config/config.yaml: its generator
parameters and preprocessing); the RL methods use that file's small sizes for imrl
(hidden 64, batch 64, ...). Each RL method trains on ``BatchedOfflineRecEnv`` (the
continuous action: slate = the 10 unshown items of highest E[i] . a) for
``--env-steps`` transitions with ``--update-ratio`` gradient updates per transition,
then ranks every item for every test user with its deterministic policy
(``IMRL.score``). Ratios are to the random ranking of the same run.

Two settings of the hyper-parameters the paper leaves free (it fixes hidden 256, lr 3e-4,
gamma 0.99, buffer 1e6):
- "generic": DEFAULTS of imrl/agents/imrl.py, the online agent's (init_alpha 1.0, tau
  0.005, beta 0.1); the offline method used them before.
- "offline": OFFLINE_DEFAULTS, the offline method's defaults now: init_alpha 0.01, tau
  0.001, beta 0.01 (each one's reason is beside it there; beta matters for imrl only).

One seed takes about 1.5 minutes on one thread (IMRL costs two thirds of it), three
seeds about 4; with more than one seed each row shows mean +- standard deviation:

    python bench/imrl_learning.py [--env-steps 20000 60000] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # runnable from a checkout, installed or not
from baselines.popularity import Popularity  # noqa: E402
from baselines.random import Random  # noqa: E402
from imrl.agents.imrl import DEFAULTS, IMRL, OFFLINE_DEFAULTS  # noqa: E402
from imrl.api import RunContext  # noqa: E402
from imrl.config import load  # noqa: E402
from imrl.data import preprocess, synthetic  # noqa: E402
from imrl.eval.ranking import evaluate  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
VARIANTS = {"sac": {"intrinsic": "entropy", "augmentation": False},
            "imrl": {"intrinsic": "empowerment", "augmentation": True}}
SETTINGS = {"generic": DEFAULTS, "offline": OFFLINE_DEFAULTS}
METRICS = ("recall@20", "ndcg@20")


def synthetic_split():
    dataset = load(CONFIG)["datasets"]["synthetic"]
    data = synthetic.generate(dataset["params"], seed=dataset["seed"])
    return preprocess.build_split(data, dataset["preprocess"], "synthetic")


def metrics_on_test(method, split) -> dict[str, float]:
    result = evaluate(lambda users: method.score(users, "test"), split, "test", ks=(20,)).as_dict()
    return {name: result[name] for name in METRICS}


def fit_and_test(method_class, params: dict, split, seed: int, budget: dict) -> dict[str, float]:
    method = method_class(params, RunContext(seed=seed, budget=budget, log=lambda message: None))
    method.fit(split)
    return metrics_on_test(method, split)


def summary(runs: list[dict[str, float]], random_runs: list[dict[str, float]]) -> str:
    cells = []
    for name in METRICS:
        values = [run[name] for run in runs]
        spread = f" +- {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        ratio = statistics.mean(values) / statistics.mean(run[name] for run in random_runs)
        cells.append(f"{name} {statistics.mean(values):.4f}{spread} ({ratio:.1f}x random)")
    return ", ".join(cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-steps", type=int, nargs="+", default=[20_000], help="training budgets (transitions)")
    parser.add_argument("--update-ratio", type=float, default=0.25, help="gradient updates per transition")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    split = synthetic_split()
    small = load(CONFIG)["methods"]["imrl"]
    print(f"torch {torch.__version__}, 1 thread; synthetic: {split.n_users} users, {split.n_items} items; "
          f"RL sizes {small}; update_ratio {args.update_ratio}; seeds {args.seeds}")
    random_runs = [fit_and_test(Random, {}, split, seed, {}) for seed in args.seeds]
    print(f"random:     {summary(random_runs, random_runs)}")
    print(f"popularity: {summary([fit_and_test(Popularity, {}, split, 0, {})], random_runs)}")
    for env_steps in args.env_steps:
        budget = {"env_steps": env_steps, "update_ratio": args.update_ratio}
        for variant, switches in VARIANTS.items():
            for setting, defaults in SETTINGS.items():
                start = time.perf_counter()
                params = {**defaults, **small, **switches}
                runs = [fit_and_test(IMRL, params, split, seed, budget) for seed in args.seeds]
                print(f"{variant:4s} {setting:7s} {env_steps} steps: {summary(runs, random_runs)} "
                      f"[{time.perf_counter() - start:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
