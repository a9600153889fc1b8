"""Training throughput of the RL baselines (DEERS, KGRL, TPGR, PGPR) on one simulator at
the config's sizes: environment steps per second and gradient updates per second, and
the ratio of each method's environment steps per second to the uniformly random agent's
in the same run (the simulator's own cost through the same loop, the upper bound).

The loop is the online runner's training loop (act with exploration, step, observe,
update after every batched step) on the simulator named by --simulator, with the number
of users (n_envs), simulator parameters and budget of that simulator in --config, and
each method's parameters from the config's ``methods`` entry (defaults when absent). A
step is one user's step (n_envs per batched step); an update is one gradient step of the
method's learner (the episodic learners, TPGR and PGPR, update once per batch of
finished episodes). After --warmup batched steps, --steps batched steps are timed.
torch runs with --threads threads (default 1: the machines are shared); --device picks
the device (default cpu).

With --ctr EPISODES it also trains each method for EPISODES episodes with the online
runner (``run_simulator``, seed 0) and prints its final test CTR over --test-episodes
episodes beside the random agent's on the same test users, and their ratio.

    python bench/rl_baselines.py [--simulator recsim] [--config config/config.yaml] [--steps 1000]
                                 [--ctr EPISODES] [--test-episodes 256]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # runnable from a checkout, installed or not
from imrl import registry  # noqa: E402
from imrl.api import RunContext  # noqa: E402
from imrl.eval.online import make_simulator, run_simulator  # noqa: E402

METHODS = ("random", "deers", "kgrl", "tpgr", "pgpr")


def throughput(name: str, simulator: str, sim_config: dict, params: dict, budget: dict, device: torch.device,
               warmup: int, steps: int) -> tuple[float, float]:
    """(environment steps per second, updates per second) of `name` in the training loop."""
    n_envs = sim_config.get("n_envs", 16)
    cls = registry.method(name).load(registry.ONLINE)
    env = make_simulator(simulator, n_envs, cls.action_interface, sim_config.get("params", {}))
    ctx = RunContext(seed=0, device=device, budget=budget)
    agent = cls(params, ctx, env.single_observation_space, env.single_action_space, n_envs)
    if cls.action_interface == "discrete":   # as the runner does (run_simulator)
        agent.use_item_view(env.item_view())
    updates = 0
    learner = getattr(agent, "learner", None)
    if learner is not None:   # count the learner's gradient updates (an empty result is none)
        learner_update = learner.update

        def counted() -> dict[str, float]:
            nonlocal updates
            result = learner_update()
            updates += bool(result)
            return result

        learner.update = counted
    obs, _ = env.reset(seed=0)
    start = None
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, updates = time.perf_counter(), 0
        actions = agent.act(obs, explore=True)
        next_obs, rewards, terminated, truncated, infos = env.step(actions)
        agent.observe(obs, actions, rewards, infos["final_obs"], terminated, truncated)
        agent.update()
        obs = next_obs
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return steps * n_envs / elapsed, updates / elapsed


def test_ctr(name: str, simulator: str, sim_config: dict, params: dict, budget: dict, device: torch.device,
             episodes: int, test_episodes: int) -> float:
    """Final test CTR of `name` after `episodes` training episodes (the runner's protocol)."""
    cls = registry.method(name).load(registry.ONLINE)
    ctx = RunContext(seed=0, device=device, budget=budget)
    result, _ = run_simulator(simulator, cls, params, ctx, episodes=episodes, test_every=episodes,
                              test_episodes=test_episodes, n_envs=sim_config.get("n_envs", 16),
                              simulator_params=sim_config.get("params", {}))
    return result.metrics["ctr"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulator", default="recsim", choices=sorted(registry.SIMULATORS))
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--steps", type=int, default=1000, help="timed batched steps per method")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ctr", type=int, default=0, metavar="EPISODES", help="also train this many episodes")
    parser.add_argument("--test-episodes", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(Path(args.config).read_text())
    sim_config = (config.get("simulators") or {}).get(args.simulator) or {}
    budget = sim_config.get("budget", {})
    device = torch.device(args.device)
    print(f"simulator {args.simulator}: n_envs={sim_config.get('n_envs', 16)}, params={sim_config.get('params', {})}, "
          f"budget={budget}; {args.warmup} warm-up + {args.steps} timed batched steps; device {device}, "
          f"torch threads {args.threads}; config {args.config}")
    rows = {}
    for name in METHODS:
        params = (config.get("methods") or {}).get(name) or {}
        rows[name] = throughput(name, args.simulator, sim_config, params, budget, device, args.warmup, args.steps)
    random_rate = rows["random"][0]
    print(f"{'method':<8} {'env steps/s':>12} {'updates/s':>10} {'steps/s vs random agent':>24}")
    for name, (steps_per_s, updates_per_s) in rows.items():
        print(f"{name:<8} {steps_per_s:12.0f} {updates_per_s:10.1f} {steps_per_s / random_rate:24.3f}")
    if args.ctr:
        ctr = {name: test_ctr(name, args.simulator, sim_config, (config.get("methods") or {}).get(name) or {}, budget,
                              device, args.ctr, args.test_episodes) for name in METHODS}
        print(f"test CTR after {args.ctr} training episodes ({args.test_episodes} test episodes, seed 0)")
        print(f"{'method':<8} {'CTR':>8} {'vs random agent':>16}")
        for name, value in ctr.items():
            print(f"{name:<8} {value:8.4f} {value / ctr['random']:16.3f}")


if __name__ == "__main__":
    main()
