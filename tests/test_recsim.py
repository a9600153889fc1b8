"""RecSim interest evolution: the native batched environment reproduces the original
package exactly, passes the gymnasium checks, rejects bad actions, and a learning agent
beats random on it."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from imrl.api import OnlineAgent
from imrl.envs.recsim import NUM_TOPICS, QUALITY_MEANS, DocumentStream, RecSim, RecSimReference, make_one_user
from imrl.envs.simulators import InvalidActionError
from simulator_helpers import learned_and_random_ctr, reference


def test_document_stream_draws_what_numpy_legacy_draws():
    for seed in (0, 3):
        stream, legacy = DocumentStream(seed), np.random.RandomState(seed)
        for n in np.random.default_rng(seed).integers(1, 60, size=200):   # odd sizes keep a gaussian
            topics, quality = stream.sample(int(n))
            for topic, value in zip(topics, quality):
                expected_topic = legacy.randint(0, NUM_TOPICS)
                assert topic == expected_topic
                assert value == legacy.normal(QUALITY_MEANS[expected_topic], 0.1)


CONFIGS = [
    ("discrete", {"num_candidates": 10, "slate_size": 2, "resample_documents": True}),
    ("discrete", {"num_candidates": 5, "slate_size": 1, "resample_documents": False}),
    ("continuous", {"num_candidates": 20, "slate_size": 3, "resample_documents": True}),
    ("discrete", {"num_candidates": 4, "slate_size": 4, "resample_documents": False}),
]


@pytest.mark.parametrize("interface,config", CONFIGS, ids=lambda c: str(c))
def test_trajectories_equal_the_original(interface, config):
    original = reference(lambda: RecSimReference(interface, **config))
    native = make_one_user(interface, **config)
    rng = np.random.default_rng(1)
    seed = 17
    assert np.array_equal(original.reset(seed=seed)[0], native.reset(seed=seed)[0])
    episodes = clicks = 0
    for step in range(2000):
        action = (rng.integers(config["num_candidates"], size=config["slate_size"]) if interface == "discrete"
                  else rng.uniform(-1, 1, NUM_TOPICS).astype(np.float32))
        expected = original.step(action)
        obs, reward, terminated, truncated, info = native.step(action)
        # Observations hold the user, the candidates and the responses (clicks, watch
        # times, qualities); the reward is the watch time itself, in float64.
        assert np.array_equal(obs, expected[0]), f"step {step}: observations differ"
        assert reward == expected[1] and terminated == expected[2] and not truncated, step
        assert info == expected[4], step
        clicks += info["clicks"]
        if terminated:
            episodes += 1
            assert np.array_equal(original.reset()[0], native.reset()[0]), f"user after step {step}"
    assert episodes >= 10 and clicks >= 200


@pytest.mark.parametrize("interface", ["discrete", "continuous"])
def test_gymnasium_check_env(interface):
    check_env(make_one_user(interface), skip_render_check=True)


def test_continuous_scores_pick_the_candidates_of_the_best_topics():
    env = RecSim(8, "continuous", num_candidates=10, slate_size=2)
    obs, _ = env.reset(seed=2)
    topics = env.topics.copy()
    scores = np.random.default_rng(0).uniform(-1, 1, (8, NUM_TOPICS)).astype(np.float32)
    _, _, _, _, infos = env.step(scores)
    shown = infos["final_obs"][:, 20 + 10 * NUM_TOPICS:].reshape(8, 2, 5)[:, :, 4].astype(int)
    for user in range(8):
        ranked = sorted(range(10), key=lambda c: (-scores[user, topics[user, c]], c))
        assert list(shown[user]) == list(topics[user, ranked[:2]])
    assert np.array_equal(obs[:, 20:20 + 10 * NUM_TOPICS].reshape(8, 10, NUM_TOPICS).argmax(axis=2), topics)


def test_invalid_actions_fail_clearly():
    env = RecSim(2, "discrete", num_candidates=5, slate_size=2)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=r"shape \(2, 2\)"):
        env.step(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(InvalidActionError, match=r"integers in \[0, 5\); user 1 has -1"):
        env.step(np.array([[0, 1], [2, -1]]))
    with pytest.raises(InvalidActionError, match="must be integers"):
        env.step(np.zeros((2, 2)))
    continuous = RecSim(1, "continuous")
    continuous.reset(seed=0)
    with pytest.raises(InvalidActionError, match="finite scores"):
        continuous.step(np.full((1, NUM_TOPICS), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="slate_size must be an integer in \\[1, num_candidates=3\\]"):
        RecSim(1, num_candidates=3, slate_size=4)


def test_batched_users_end_and_restart_independently():
    n, c, s = 32, 10, 2
    env = RecSim(n, "discrete", num_candidates=c, slate_size=s)
    obs, _ = env.reset(seed=5)
    response = slice(20 + c * NUM_TOPICS, None)
    ended, rng = 0, np.random.default_rng(0)
    for _ in range(400):
        obs, rewards, terminated, _, infos = env.step(rng.integers(c, size=(n, s)))
        final = infos["final_obs"]
        watch = final[:, response].reshape(n, s, 5)[:, :, 1].sum(axis=1)
        assert np.allclose(watch, rewards) and np.array_equal(infos["clicks"], rewards > 0)
        assert (obs[terminated, response] == 0).all()            # new users: no response yet
        assert np.array_equal(obs[~terminated], final[~terminated])
        assert (env.budget[terminated] == 200.0).all()
        ended += int(terminated.sum())
    assert ended >= n   # about 90 steps an episode


def test_same_seed_same_batched_trajectory():
    runs = []
    for _ in range(2):
        env = RecSim(8, "continuous")
        trajectory = [env.reset(seed=9)[0]]
        actions = np.random.default_rng(4).uniform(-1, 1, (150, 8, NUM_TOPICS)).astype(np.float32)
        trajectory += [env.step(action)[0] for action in actions]
        runs.append(np.stack(trajectory))
    assert np.array_equal(runs[0], runs[1])


class CandidateRegression(OnlineAgent):
    """Learns which candidates get clicked: a ridge regression of each shown candidate's
    click on its topic one-hot and the user's interests times it; shows the best
    predicted S candidates (epsilon-greedy)."""

    action_interface = "discrete"

    def __init__(self, params, ctx, observation_space, action_space, n_envs):
        super().__init__(params, ctx, observation_space, action_space, n_envs)
        self.candidates, self.slate = int(action_space.nvec[0]), len(action_space.nvec)
        self.rng = ctx.rng()
        self.gram, self.target = np.eye(2 * NUM_TOPICS), np.zeros(2 * NUM_TOPICS)
        self.weights = np.zeros(2 * NUM_TOPICS)

    def features(self, obs):
        user = obs[:, :NUM_TOPICS]
        docs = obs[:, NUM_TOPICS:NUM_TOPICS * (1 + self.candidates)].reshape(len(obs), self.candidates, NUM_TOPICS)
        return np.concatenate([docs, docs * user[:, None, :]], axis=2)

    def act(self, obs, explore):
        slates = np.argsort(-(self.features(obs) @ self.weights), axis=1, kind="stable")[:, :self.slate]
        if explore:
            random = self.rng.random(len(obs)) < 0.1
            slates[random] = self.rng.integers(self.candidates, size=(int(random.sum()), self.slate))
        return slates

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated):
        shown = np.take_along_axis(self.features(obs), actions[:, :, None], axis=1).reshape(-1, 2 * NUM_TOPICS)
        clicks = next_obs[:, NUM_TOPICS * (1 + self.candidates):].reshape(len(obs), self.slate, 5)[:, :, 0]
        self.gram += shown.T @ shown
        self.target += shown.T @ clicks.ravel()

    def update(self):
        self.weights = np.linalg.solve(self.gram, self.target)
        return {}


def test_a_learning_agent_beats_random():
    # Random slates: about 0.25 clicks per impression; the best two of ten candidates by
    # the user's interest: about 0.3.
    learned, random = learned_and_random_ctr("recsim", CandidateRegression, episodes=64, n_envs=32,
                                             test_episodes=64)
    assert learned > random + 0.03, (learned, random)
