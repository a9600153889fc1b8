"""Gradient updates per second of our Soft Actor-Critic against stable-baselines3's SAC at
the same sizes, and the cost of IMRL's full update against our plain SAC, measured in one run.

Sizes: hidden 256 (two hidden layers), batch 256, CPU. Observation and action sizes:
the offline environment's defaults (10 history slots x 32 + 8 user features = 328; a
32-dim action) and VirtualTB's (91; 27).

1. Ours vs stable-baselines3 (target: ours >= 1.5x theirs). Both learn from a replay
   buffer holding the same 5,000 random transitions; ours is the "sac" variant
   (``IMRLAgent.update``: V, V', twin Q, policy, temperature, and the losses read out
   as floats), theirs ``SAC.train(gradient_steps=...)`` (which logs its losses too) with
   net_arch [256, 256] and automatic entropy.
   Timings are interleaved (theirs, ours) after a warm-up, --rounds times; the ratio is
   the median of the rounds' ratios (each round times both back to back, so the
   machine's drifts in speed cancel), beside the median rate of each. The
   floating-point operations of one update of each (torch's FlopCounterMode) are printed
   too: they do not depend on the machine's load.
2. IMRL's full update against plain SAC (target: <= 2.5x the cost). Each agent trains on
   its own offline environment over the default synthetic dataset, update_ratio 0.25;
   after a warm-up that fills the buffer and trains the causal model, the time of
   ``observe`` (which runs the counterfactual augmentation) plus ``update`` is divided by
   the gradient updates made, so IMRL's cost includes empowerment, the causal model and
   the augmentation. Environment steps are not timed (the same work for both).

stable-baselines3 is a bench-only dependency, not installed with the project:
    pip install stable-baselines3==2.9.2      (it changes none of the project's pins)

    python bench/sac.py [--rounds 9] [--updates 50] [--env-steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # runnable from a checkout, installed or not
from imrl.agents.imrl import IMRLAgent  # noqa: E402
from imrl.api import RunContext  # noqa: E402
from imrl.data import preprocess, synthetic  # noqa: E402
from imrl.envs.offline import BatchedOfflineRecEnv  # noqa: E402

HIDDEN, BATCH = 256, 256
SIZES = {"offline env": (328, 32), "VirtualTB": (91, 27)}
TARGET_VS_SB3, TARGET_IMRL_COST = 1.5, 2.5
SAC_VARIANT = {"intrinsic": "entropy", "augmentation": False}
IMRL_VARIANT = {"intrinsic": "empowerment", "augmentation": True}


class RandomEnv(gym.Env):
    """Only its spaces matter: stable-baselines3 needs an environment to build SAC."""

    def __init__(self, obs_dim: int, action_dim: int):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def gigaflops(update) -> float:
    with FlopCounterMode(display=False) as counter:
        update()
    return counter.get_total_flops() / 1e9


def versus_sb3(obs_dim: int, action_dim: int, updates: int, rounds: int
               ) -> tuple[float, float, list[float], float, float]:
    """(ours, theirs) median gradient updates/s, each round's ours/theirs ratio, and
    (ours, theirs) GFLOP per update."""
    try:
        from stable_baselines3 import SAC
    except ImportError:
        sys.exit("stable-baselines3 is not installed: pip install stable-baselines3==2.9.2")
    rng = np.random.default_rng(0)
    n = 5000
    obs, next_obs = rng.uniform(-1, 1, (2, n, obs_dim)).astype(np.float32)
    actions = rng.uniform(-1, 1, (n, action_dim)).astype(np.float32)
    rewards = (rng.random(n) < 0.1).astype(np.float32)
    done = np.zeros(n, dtype=bool)

    env = RandomEnv(obs_dim, action_dim)
    theirs = SAC("MlpPolicy", env, batch_size=BATCH, learning_starts=0, buffer_size=n, device="cpu", seed=0,
                 policy_kwargs={"net_arch": [HIDDEN, HIDDEN]})
    for i in range(n):
        theirs.replay_buffer.add(obs[i:i + 1], next_obs[i:i + 1], actions[i:i + 1], rewards[i:i + 1], done[i:i + 1], [{}])
    theirs._setup_learn(total_timesteps=1)   # creates the logger that train() writes to

    ours = IMRLAgent({**SAC_VARIANT, "hidden": HIDDEN, "batch_size": BATCH}, RunContext(seed=0),
                     env.observation_space, env.action_space, n_envs=1)
    ours.observe(obs, actions, rewards, next_obs, done, done)
    ours.counters["pending_updates"] = 0.0   # observe() queued updates for its transitions: start with none

    def ours_train() -> None:   # the agent's own entry point, which also reads out its diagnostics as sb3 does
        ours.counters["pending_updates"] += updates
        ours.update()

    def theirs_train() -> None:
        theirs.train(gradient_steps=updates, batch_size=BATCH)

    flops = {"ours": gigaflops(ours.gradient_step), "sb3": gigaflops(lambda: theirs.train(gradient_steps=1, batch_size=BATCH))}
    rates: dict[str, list[float]] = {"sb3": [], "ours": []}
    for name, train in (("sb3", theirs_train), ("ours", ours_train)):
        train()   # warm-up
    for _ in range(rounds):
        for name, train in (("sb3", theirs_train), ("ours", ours_train)):
            start = time.perf_counter()
            train()
            rates[name].append(updates / (time.perf_counter() - start))
    ratios = [ours / theirs for ours, theirs in zip(rates["ours"], rates["sb3"])]
    return statistics.median(rates["ours"]), statistics.median(rates["sb3"]), ratios, flops["ours"], flops["sb3"]


class Trainer:
    """One agent on its own batched offline environment; times observe + update only."""

    def __init__(self, split, params: dict, warmup_steps: int):
        self.env = BatchedOfflineRecEnv(split, num_envs=16, action_interface="continuous", seed=0)
        ctx = RunContext(seed=0, budget={"update_ratio": 0.25}, log=lambda message: None)
        self.agent = IMRLAgent({**params, "random_steps": 1000, "augment_after": 200}, ctx,
                               self.env.single_observation_space, self.env.single_action_space, n_envs=16,
                               t_max=float(self.env.setup.max_reward))
        self.obs, _ = self.env.reset(seed=0)
        self.seconds, self.updates = 0.0, 0
        self.run(warmup_steps)
        self.seconds, self.updates, self.augmented = 0.0, 0, self.agent.counters["augmented"]

    def run(self, steps: int) -> None:
        for _ in range(steps):
            actions = self.agent.act(self.obs, explore=True)
            next_obs, rewards, terminated, truncated, info = self.env.step(actions)
            before = self.agent.counters["updates"]
            start = time.perf_counter()
            self.agent.observe(self.obs, actions, rewards, info["final_obs"], terminated, truncated)
            self.agent.update()
            self.seconds += time.perf_counter() - start
            self.updates += self.agent.counters["updates"] - before
            self.obs = next_obs


def imrl_cost(steps: int, rounds: int) -> tuple[float, float, int]:
    data = synthetic.generate({}, seed=0)
    split = preprocess.build_split(data, {"min_rating": 4, "kcore": 5, "valid_frac": 0.1, "test_frac": 0.1,
                                          "min_interactions": 3}, "synthetic")
    trainers = {name: Trainer(split, params, warmup_steps=250) for name, params in
                (("sac", SAC_VARIANT), ("imrl", IMRL_VARIANT))}
    for _ in range(rounds):
        for trainer in trainers.values():
            trainer.run(steps)
    per_update = {name: t.seconds / t.updates for name, t in trainers.items()}
    imrl = trainers["imrl"]
    return 1.0 / per_update["sac"], 1.0 / per_update["imrl"], imrl.agent.counters["augmented"] - imrl.augmented


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--updates", type=int, default=50, help="gradient updates per timed round (part 1)")
    parser.add_argument("--env-steps", type=int, default=10, help="batched environment steps per timed round (part 2)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; hidden {HIDDEN}, batch {BATCH}")

    passed = True
    for label, (obs_dim, action_dim) in SIZES.items():
        ours, theirs, ratios, ours_flops, theirs_flops = versus_sb3(obs_dim, action_dim, args.updates, args.rounds)
        ratio = statistics.median(ratios)
        passed &= ratio >= TARGET_VS_SB3
        print(f"[1] {label} (obs {obs_dim}, action {action_dim}): gradient updates/s ours (SAC) {ours:.1f}, "
              f"stable-baselines3 SAC {theirs:.1f}; ours/sb3 = {ratio:.2f}x, median of {len(ratios)} rounds "
              f"({min(ratios):.2f}-{max(ratios):.2f}) (target >= {TARGET_VS_SB3}x): "
              f"{'PASS' if ratio >= TARGET_VS_SB3 else 'FAIL'}; GFLOP per update ours {ours_flops:.3f}, "
              f"sb3 {theirs_flops:.3f} (sb3/ours {theirs_flops / ours_flops:.2f}x)")

    sac_rate, imrl_rate, augmented = imrl_cost(args.env_steps, args.rounds)
    cost = sac_rate / imrl_rate
    print(f"[2] updates/s incl. observe (offline env, synthetic): SAC {sac_rate:.1f}, IMRL {imrl_rate:.1f} "
          f"({augmented} transitions augmented while timed); IMRL/SAC cost = {cost:.2f}x "
          f"(target <= {TARGET_IMRL_COST}x): {'PASS' if cost <= TARGET_IMRL_COST else 'FAIL'}")
    return 0 if passed and cost <= TARGET_IMRL_COST else 1


if __name__ == "__main__":
    sys.exit(main())
