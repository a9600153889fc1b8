"""The online runner: which episodes a test counts, when tests run, what the agent is
shown, determinism, and the curve it writes into the run's results JSON."""

from __future__ import annotations

import json

import gymnasium as gym
import jsonschema
import numpy as np
import pytest

from imrl import registry
from imrl.api import OnlineAgent, RunContext
from imrl.envs.simulators import BatchedSimulator
from imrl.envs.virtualtb import VirtualTBNetworks
from imrl.eval.online import make_simulator, measure_ctr, run_simulator, train_and_test
from simulator_helpers import LinearGreedyBandit

AUTORESET_USER = 10_000


class ScriptedSimulator(BatchedSimulator):
    """A test double with known episodes. Users started by reset() get id 100 * round +
    slot and play 1 + id % 3 steps; users started by autoreset get AUTORESET_USER and
    play 1 step. Every episode clicks once, on its last step; one impression a step.
    Observation: [user id, steps played]."""

    name = "scripted"

    def __init__(self, num_envs: int, action_interface: str = "discrete"):
        super().__init__(num_envs, action_interface, gym.spaces.Box(0, np.inf, (2,), np.float32), 2,
                         gym.spaces.Discrete(2))
        self.user = np.zeros(num_envs, dtype=np.int64)
        self.played = np.zeros(num_envs, dtype=np.int64)
        self.round, self.in_reset = -1, False

    def reset(self, *, seed=None, options=None):
        self.round, self.in_reset = (0 if seed is not None else self.round + 1), True
        try:
            return super().reset(seed=seed, options=options)
        finally:
            self.in_reset = False

    def _seed(self, seed):
        pass

    def length(self, user):
        return np.where(user == AUTORESET_USER, 1, 1 + user % 3)

    def _start(self, slots):
        self.user[slots] = 100 * self.round + slots if self.in_reset else AUTORESET_USER
        self.played[slots] = 0
        return self._obs(slots)

    def _obs(self, slots):
        return np.stack([self.user[slots], self.played[slots]], axis=1).astype(np.float32)

    def _step(self, actions):
        self.played += 1
        terminated = self.played >= self.length(self.user)
        clicks = terminated.astype(np.int64)
        info = {"clicks": clicks, "impressions": np.ones(self.num_envs, dtype=np.int64)}
        return self._obs(self._all), clicks.astype(float), terminated, info


class Recorder(OnlineAgent):
    """Always action 0; keeps what it is shown."""

    action_interface = "discrete"

    def __init__(self, params, ctx, observation_space, action_space, n_envs):
        super().__init__(params, ctx, observation_space, action_space, n_envs)
        self.transitions, self.explore_flags = [], []

    def act(self, obs, explore):
        self.explore_flags.append(explore)
        return np.zeros(len(obs), dtype=np.int64)

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated):
        self.transitions.append((obs.copy(), next_obs.copy(), terminated.copy()))

    def update(self):
        return {}


def make_recorder(env):
    return Recorder({}, RunContext(seed=0), env.single_observation_space, env.single_action_space, env.num_envs)


@pytest.mark.parametrize("n_episodes", [1, 4, 5, 11])
def test_a_test_counts_the_first_episode_of_each_slot_round_by_round(n_episodes):
    env = ScriptedSimulator(4)
    counted = [100 * r + slot for r in range(3) for slot in range(4)][:n_episodes]
    expected = len(counted) / env.length(np.array(counted)).sum()   # one click per counted episode
    assert measure_ctr(make_recorder(env), env, n_episodes, seed=0) == pytest.approx(expected)


def test_training_shows_true_final_observations_and_tests_every_n_episodes():
    train, test = ScriptedSimulator(4), ScriptedSimulator(4)
    agent = make_recorder(train)
    result = train_and_test(agent, train, test, episodes=25, seed=0, test_every=10, test_episodes=3)
    for obs, next_obs, terminated in agent.transitions:
        assert np.array_equal(next_obs[:, 0], obs[:, 0])            # the same users, also where they ended
        assert np.array_equal(next_obs[:, 1], obs[:, 1] + 1)
        assert np.array_equal(terminated, next_obs[:, 1] >= train.length(next_obs[:, 0]))
    episodes = result.curve["episode"]
    assert episodes[0] == 0 and episodes[-1] == result.train_episodes >= 25
    assert all(b > a for a, b in zip(episodes, episodes[1:]))
    # A test each time another multiple of 10 is passed, and one after the last episode.
    assert all(later // 10 > earlier // 10 for earlier, later in zip(episodes, episodes[1:-1]))
    assert {e // 10 for e in episodes} >= {0, 1, 2}
    assert result.curve["ctr"] == [pytest.approx(3 / 6)] * len(episodes)   # users 0, 1, 2: 1 + 2 + 3 steps
    assert result.metrics["ctr"] == result.curve["ctr"][-1]
    assert True in agent.explore_flags and False in agent.explore_flags


def test_runs_repeat_for_a_seed_and_the_curve_fits_the_results_schema():
    def run(seed):
        result, _ = run_simulator("recogym", LinearGreedyBandit, {}, RunContext(seed=seed), episodes=20,
                                  test_every=10, test_episodes=8, n_envs=8)
        return result

    first, again, other = run(0), run(0), run(1)
    assert first.curve == again.curve and first.metrics == again.metrics
    assert first.curve != other.curve
    schema = json.loads((registry.PROJECT_ROOT / "imrl/schemas/run.schema.json").read_text())
    jsonschema.validate(json.loads(json.dumps(first.curve)), schema["properties"]["curve"])
    assert set(first.metrics) == {"ctr", "train_ctr"} and 0 <= first.metrics["train_ctr"] <= 1


@pytest.mark.parametrize("name", sorted(registry.SIMULATORS))
@pytest.mark.parametrize("interface", ["continuous", "discrete"])
def test_every_registered_simulator_builds_for_both_interfaces(name, interface):
    params = {"networks": VirtualTBNetworks(), "verify_sha256": False} if name == "virtualtb" else {}
    env = make_simulator(name, 3, interface, params)
    assert isinstance(env, BatchedSimulator) and env.action_interface == interface
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, *env.single_observation_space.shape)
    env.action_space.seed(0)
    obs, rewards, terminated, truncated, infos = env.step(env.action_space.sample())
    assert obs in env.observation_space and infos["final_obs"] in env.observation_space
    assert ((0 <= infos["clicks"]) & (infos["clicks"] <= infos["impressions"])).all()


def test_unknown_or_unavailable_simulators_fail_clearly(monkeypatch):
    with pytest.raises(KeyError, match="valid simulators: recogym, recsim, virtualtb"):
        make_simulator("recsimm", 1, "discrete")
    monkeypatch.setitem(registry.SIMULATORS, "recsim", None)
    with pytest.raises(LookupError, match="not implemented yet"):
        make_simulator("recsim", 1, "discrete")
    with pytest.raises(ValueError, match="action_interface must be one of"):
        make_simulator("recogym", 1, "slates")
