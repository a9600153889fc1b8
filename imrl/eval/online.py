"""The online runner: train an ``OnlineAgent`` on a batched simulator and test it every
few training episodes, giving the CTR learning curve of Figures 2 and 3.

Protocol (the paper: 1e6 training episodes on VirtualTB, 10,000 on RecSim and RecoGym,
a test every 10 episodes):
- Training: the agent acts with ``explore=True`` on the training simulator (N users,
  reset with the run's seed), is shown every transition (``observe``; where an episode
  ended, ``next_obs`` is the true final observation) and ``update`` runs after every
  step. A training episode is one user's whole episode; episodes count as they end.
- Tests: before training (episode 0), then each time another ``test_every`` training
  episodes have ended (one test when a single step crosses several multiples), and
  after the last episode. The agent acts with ``explore=False`` on a separate test
  simulator reset with the test seed (``TEST_SEED_OFFSET + seed``): rounds of N users
  each play one whole episode (what a slot plays after that is discarded), until
  ``test_episodes`` episodes are complete (the last round counts its first slots only).
  Every test starts from the same seed, so every point of a curve meets the same users.
- CTR = total clicks / total impressions pooled over a test's episodes, with clicks and
  impressions as each simulator reports them (SIMULATORS.md, "CTR").

Results: ``curve`` = {"episode": the multiple of ``test_every`` each test crossed (the
last test: ``episodes``), "ctr": test CTR} (with N users in parallel, several episodes
can end in one step: the label keeps the curves of different seeds on one x grid);
``metrics`` = {"ctr": the last test's CTR, "train_ctr": CTR pooled over training}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from imrl import registry
from imrl.api import OnlineAgent, RunContext
from imrl.checkpoint import Checkpointer
from imrl.envs.simulators import BatchedSimulator

TEST_SEED_OFFSET = 1_000_000   # test users come from seed + this, never from the training stream


@dataclass
class OnlineResult:
    curve: dict[str, list]            # {"episode": [int], "ctr": [float]}
    metrics: dict[str, float]         # {"ctr": final test CTR, "train_ctr": ...}
    train_episodes: int
    train_steps: int                  # batched steps (each steps every user)
    agent: OnlineAgent                # the trained agent (a resumed run's is the restored one)


def make_simulator(name: str, num_envs: int, action_interface: str, params: dict[str, Any] | None = None
                   ) -> BatchedSimulator:
    """A simulator from the registry (``imrl.registry.SIMULATORS``)."""
    if name not in registry.SIMULATORS:
        raise KeyError(f"unknown simulator {name!r}; valid simulators: {', '.join(sorted(registry.SIMULATORS))}")
    target = registry.SIMULATORS[name]
    if target is None:
        raise LookupError(f"simulator {name!r} is not implemented yet")
    return registry.load_target(target)(num_envs, action_interface, **(params or {}))


def measure_ctr(agent: OnlineAgent, env: BatchedSimulator, n_episodes: int, seed: int) -> float:
    """CTR of `agent` (explore=False) over `n_episodes` whole episodes of fresh users."""
    if n_episodes < 1:
        raise ValueError(f"test_episodes must be >= 1, got {n_episodes}")
    clicks = impressions = 0
    remaining = n_episodes
    obs, _ = env.reset(seed=seed)
    while remaining > 0:
        playing = np.arange(env.num_envs) < remaining   # slots whose current episode counts
        remaining -= int(playing.sum())
        while playing.any():
            obs, _, terminated, truncated, infos = env.step(agent.act(obs, explore=False))
            clicks += int(infos["clicks"][playing].sum())
            impressions += int(infos["impressions"][playing].sum())
            playing &= ~(terminated | truncated)
        if remaining > 0:
            obs, _ = env.reset()   # next round: new users in every slot
    return clicks / impressions


def train_and_test(agent: OnlineAgent, train_env: BatchedSimulator, test_env: BatchedSimulator, *,
                   episodes: int, seed: int, test_every: int = 10, test_episodes: int = 10,
                   progress: bool = False, checkpoint: Checkpointer | None = None) -> OnlineResult:
    """Train `agent` for `episodes` episodes on `train_env`, testing it on `test_env`.

    With a `checkpoint`, the loop saves its state (the agent, the training simulator, the
    counters and the curve so far) between steps when a save is due, and a run started
    again resumes from the last save; the test simulator needs no saving (every test
    resets it with the test seed)."""
    if episodes < 1 or test_every < 1:
        raise ValueError(f"episodes and test_every must be >= 1, got {episodes} and {test_every}")
    if train_env.num_envs != test_env.num_envs:
        raise ValueError("the training and test simulators must have the same number of users "
                         f"(the agent acts on batches of one size): {train_env.num_envs} != {test_env.num_envs}")
    test_seed = TEST_SEED_OFFSET + seed
    saved = checkpoint.restore() if checkpoint is not None else None
    if saved is None:
        loop = {"ended": 0, "steps": 0, "clicks": 0, "impressions": 0, "next_test": test_every,
                "curve": {"episode": [0], "ctr": [measure_ctr(agent, test_env, test_episodes, test_seed)]}}
        obs, _ = train_env.reset(seed=seed)
    else:
        agent, train_env, obs, loop = saved["agent"], saved["train_env"], saved["obs"], saved["loop"]
    curve = loop["curve"]
    with tqdm(total=episodes, initial=min(loop["ended"], episodes), disable=not progress, desc="episodes") as bar:
        while loop["ended"] < episodes:
            actions = agent.act(obs, explore=True)
            next_obs, rewards, terminated, truncated, infos = train_env.step(actions)
            agent.observe(obs, actions, rewards, infos["final_obs"], terminated, truncated)
            agent.update()
            obs = next_obs
            loop["steps"] += 1
            loop["clicks"] += int(infos["clicks"].sum())
            loop["impressions"] += int(infos["impressions"].sum())
            newly = int((terminated | truncated).sum())
            loop["ended"] += newly
            ended = loop["ended"]
            bar.update(min(newly, episodes - bar.n))
            if ended >= loop["next_test"] or ended >= episodes:
                # Label the test with the multiple of test_every it crossed (or the last
                # episode), so that curves of different seeds share their x values.
                curve["episode"].append(episodes if ended >= episodes else ended // test_every * test_every)
                curve["ctr"].append(measure_ctr(agent, test_env, test_episodes, test_seed))
                loop["next_test"] = (ended // test_every + 1) * test_every
            if checkpoint is not None and ended < episodes and checkpoint.due():
                checkpoint.save({"where": f"{ended} of {episodes} training episodes", "agent": agent,
                                 "train_env": train_env, "obs": obs, "loop": loop})
    metrics = {"ctr": curve["ctr"][-1], "train_ctr": loop["clicks"] / max(loop["impressions"], 1)}
    return OnlineResult(curve=curve, metrics=metrics, train_episodes=loop["ended"], train_steps=loop["steps"],
                        agent=agent)


def run_simulator(simulator: str, agent_cls: type[OnlineAgent], params: dict[str, Any], ctx: RunContext, *,
                  episodes: int, test_every: int = 10, test_episodes: int = 10, n_envs: int = 16,
                  simulator_params: dict[str, Any] | None = None) -> tuple[OnlineResult, OnlineAgent]:
    """Build the simulators for the agent's action interface, the agent (a discrete one is
    given the simulator's item view), and run the protocol."""
    interface = agent_cls.action_interface
    train_env = make_simulator(simulator, n_envs, interface, simulator_params)
    test_env = make_simulator(simulator, n_envs, interface, simulator_params)
    agent = agent_cls(params, ctx, train_env.single_observation_space, train_env.single_action_space, n_envs)
    if interface == "discrete":
        agent.use_item_view(train_env.item_view())
    result = train_and_test(agent, train_env, test_env, episodes=episodes, seed=ctx.seed, test_every=test_every,
                            test_episodes=test_episodes, progress=ctx.progress,
                            checkpoint=Checkpointer(ctx, "online", agent_cls))
    return result, result.agent
