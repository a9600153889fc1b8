"""Do IMRL and the RL baselines learn offline, and in which environment? Test recall@20
and nDCG@20 of IMRL, SAC and every RL baseline (DEERS, KGRL, TPGR, PGPR), each trained in
both offline environments (the user model, the paper's and the default; log replay,
DRR-style), at the default budget and at 4x it, beside Random, Popularity and the best
supervised method, all measured in the same run on the same split.

Data: the default config's synthetic dataset (config/config.yaml: generator, preprocessing,
budget, environment), or any split the workflow built (``--split data/processed/ml-100k/
split``: real MovieLens-100K, ``snakemake data/processed/ml-100k/split/meta.json
--configfile config/ml100k.yaml``). Methods get config/config.yaml's parameters (IMRL's
small sizes) and the environment's discount, as the workflow gives them; every RL method
keeps its best-validation policy (imrl/eval/selection.py). The supervised methods are
config.yaml's five; "best supervised" is the one of highest validation recall@20. Ratios
are to Popularity of the same run. PGPR walks its own knowledge graph whatever the
environment, so it is measured once per budget (its "user_model" row).

    python bench/imrl_learning.py [--split DIR] [--seeds 0 1 2] [--scale 1 4]

One seed of the synthetic default took 54 minutes on one thread of a loaded 2-core machine
(most of it the 4x budgets; DEERS the slowest); `--scale 1` takes about a quarter of that.
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
from imrl.data.split import load_split  # noqa: E402
from imrl.envs.environment import OfflineEnvironment  # noqa: E402
from imrl.envs.user_model import fit_user_model  # noqa: E402
from imrl.eval.ranking import evaluate  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
RL_METHODS = ("imrl", "sac", "deers", "kgrl", "tpgr", "pgpr")
SUPERVISED = ("sasrec", "stamp", "casr", "causerec", "cocorec")
METRICS = ("recall@20", "ndcg@20")


def synthetic_split(dataset: dict):
    return preprocess.build_split(synthetic.generate(dataset["params"], seed=dataset["seed"]), dataset["preprocess"],
                                  "synthetic")


def fit_and_score(name: str, split, seed: int, budget: dict, config: dict,
                  environment: OfflineEnvironment | None = None) -> dict[str, float]:
    """Valid and test metrics of method `name` fitted with the config's parameters."""
    spec = registry.method(name)
    params = {**spec.defaults, **config["methods"].get(name, {})}
    if environment is not None and spec.offline_env:
        params.setdefault("gamma", environment.gamma)
    ctx = RunContext(seed=seed, budget=budget, environment=environment if spec.offline_env else None,
                     log=lambda message: None)
    torch.manual_seed(seed)
    method = spec.load(registry.OFFLINE)(params, ctx)
    method.fit(split)
    out = {}
    for phase in ("valid", "test"):
        result = evaluate(lambda users: method.score(users, phase), split, phase, ks=(20,)).as_dict()
        out.update({f"{phase}/{metric}": result[metric] for metric in METRICS})
    return out


def cell(runs: list[dict[str, float]], reference: list[dict[str, float]]) -> str:
    parts = []
    for metric in METRICS:
        values = [run[f"test/{metric}"] for run in runs]
        spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
        ratio = statistics.mean(values) / statistics.mean(run[f"test/{metric}"] for run in reference)
        parts.append(f"{metric} {statistics.mean(values):.4f}{spread} ({ratio:.2f}x pop)")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, help="a split directory (default: the config's synthetic dataset)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--scale", type=float, nargs="+", default=[1, 4], help="budgets, as multiples of the default")
    parser.add_argument("--methods", nargs="+", default=list(RL_METHODS), choices=RL_METHODS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = load(CONFIG)
    dataset = config["datasets"]["synthetic"]
    split = load_split(args.split) if args.split else synthetic_split(dataset)
    user_model, report = fit_user_model(split, dataset["environment"]["user_model"],
                                        seed=dataset["environment"]["seed"], log=lambda message: None)
    environments = {"user_model": OfflineEnvironment.from_config(dataset["environment"], user_model),
                    "replay": OfflineEnvironment.from_config({**dataset["environment"], "kind": "replay",
                                                              "max_steps": 50})}
    print(f"{split.name}: {split.n_users} users, {split.n_items} items; seeds {args.seeds}; budget "
          f"{dataset['budget']}; user model valid recall@20 {report['valid']['recall@20']:.4f} "
          f"(popularity {report['popularity_valid']['recall@20']:.4f})", flush=True)

    def measure(name, budget, environment=None):
        return [fit_and_score(name, split, seed, budget, config, environment) for seed in args.seeds]

    base = dataset["budget"]
    popularity = measure("popularity", base)
    print(f"{'random':36s} {cell(measure('random', base), popularity)}")
    print(f"{'popularity':36s} {cell(popularity, popularity)}")
    supervised = {name: measure(name, base) for name in SUPERVISED}
    best = max(supervised, key=lambda name: statistics.mean(run["valid/recall@20"] for run in supervised[name]))
    print(f"{'best supervised (' + best + ')':36s} {cell(supervised[best], popularity)}", flush=True)
    for scale in args.scale:
        budget = {**base, "env_steps": int(base["env_steps"] * scale)}
        for kind, environment in environments.items():
            for name in args.methods:
                if not registry.method(name).offline_env and kind != "user_model":
                    continue   # PGPR: its own knowledge graph in both, measured once
                started = time.perf_counter()
                runs = measure(name, budget, environment)
                label = f"{name} {kind} {budget['env_steps']} steps"
                print(f"{label:36s} {cell(runs, popularity)} [{time.perf_counter() - started:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
