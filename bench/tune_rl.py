"""Retuning of the RL methods' offline defaults, on the validation split only.

Every RL method that trains in the offline environment (IMRL, DEERS, KGRL, TPGR) gets
the same number of trials (``TRIALS`` settings, each over the method's defaults) on the
default config's synthetic dataset, in its default environment (the user model; config/
config.yaml's environment and budget); PGPR, which walks its own knowledge graph, gets
the same number over its own knobs. A trial's score is the validation recall@20 of the
policy that validation selection keeps (imrl/eval/selection.py); the test split is never
scored here. The chosen settings are the methods' offline defaults (METHODS.md, "Offline
defaults: the search").

    python bench/tune_rl.py [--methods imrl deers kgrl tpgr pgpr] [--seeds 0]

About 11 minutes for all methods, one seed, one thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # runnable from a checkout, installed or not
from imrl import registry  # noqa: E402
from imrl.api import RunContext  # noqa: E402
from imrl.config import load  # noqa: E402
from imrl.data import preprocess, synthetic  # noqa: E402
from imrl.envs.environment import OfflineEnvironment  # noqa: E402
from imrl.envs.user_model import fit_user_model  # noqa: E402
from imrl.eval.selection import validation_metric  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
#: Per method, the trials: settings over its defaults (the first: its defaults before the search).
TRIALS: dict[str, list[dict]] = {
    "imrl": [{"beta": 0.01, "sigma": 1.0, "reward_tolerance": 0.0},
             {"beta": 0.003, "sigma": 0.1, "reward_tolerance": 0.02},
             {"beta": 0.001, "sigma": 0.1, "reward_tolerance": 0.02},
             {"beta": 0.003, "sigma": 0.1, "reward_tolerance": 0.02, "init_alpha": 0.003}],
    "deers": [{"lr": 1e-3, "target_update": 100}, {"lr": 3e-4, "target_update": 100},
              {"lr": 1e-3, "target_update": 500}, {"lr": 3e-4, "target_update": 500}],
    "kgrl": [{"actor_lr": 1e-3, "tau": 0.01}, {"actor_lr": 1e-4, "tau": 0.01},
             {"actor_lr": 1e-3, "tau": 0.001}, {"actor_lr": 1e-4, "tau": 0.001}],
    "tpgr": [{"gamma": 0.9}, {"gamma": 0.6}, {"gamma": 0.3}, {"gamma": 0.0}],   # 0.9: the environment's
    "pgpr": [{}, {"lr": 3e-4}, {"ent_weight": 0.01}, {"kge_epochs": 10}],
}
#: The default config's small network sizes for IMRL (as config/config.yaml gives them).
SMALL = {"imrl": {"hidden": 64, "model_hidden": 64, "batch_size": 64, "random_steps": 200, "augment_after": 10}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(TRIALS), choices=list(TRIALS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args(argv)

    config = load(CONFIG)
    dataset = config["datasets"]["synthetic"]
    split = preprocess.build_split(synthetic.generate(dataset["params"], seed=dataset["seed"]), dataset["preprocess"],
                                   "synthetic")
    user_model, _ = fit_user_model(split, dataset["environment"]["user_model"], seed=dataset["environment"]["seed"],
                                   log=lambda message: None)
    environment = OfflineEnvironment.from_config(dataset["environment"], user_model)
    print(f"synthetic, {environment.kind} environment, budget {dataset['budget']}; score: validation recall@20 "
          f"of the selected policy, mean over seeds {args.seeds}")
    for name in args.methods:
        spec = registry.method(name)
        for trial in TRIALS[name]:
            values, started = [], time.perf_counter()
            for seed in args.seeds:
                params = {**spec.defaults, **SMALL.get(name, {}), **trial}
                if spec.offline_env:
                    params.setdefault("gamma", environment.gamma)
                ctx = RunContext(seed=seed, budget=dataset["budget"], environment=environment, log=lambda message: None)
                torch.manual_seed(seed)
                method = spec.load(registry.OFFLINE)(params, ctx)
                method.fit(split)
                values.append(validation_metric(lambda users: method.score(users, "valid"), split, "recall@20",
                                                torch.device("cpu")))
            print(f"{name:6s} {str(trial):75s} valid recall@20 {statistics.mean(values):.4f}  "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
