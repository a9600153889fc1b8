"""RecoGym v1: the native batched environment against the original package, the gymnasium
checks, invalid actions, and a learning agent against random."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from imrl.envs.recogym import RecoGym, load_reference, make_one_user
from imrl.envs.simulators import InvalidActionError
from simulator_helpers import LinearGreedyBandit, learned_and_random_ctr, reference


class OriginalDriver:
    """The original RecoEnv1 driven as our episodes are: a user's first organic session
    comes with the reset, users who leave before any impression are skipped, and the
    observation counts the organic views since the last impression and in total."""

    def __init__(self, num_products: int, seed: int):
        env_class, args = reference(load_reference)
        self.env = env_class()
        self.env.init_gym({**args, "random_seed": seed, "num_products": num_products})
        self.num_products, self.next_user, self.skipped = num_products, 0, 0

    def _views(self, observation) -> np.ndarray:
        views = np.zeros(self.num_products)
        for event in observation.sessions():
            views[event["v"]] += 1
        return views

    def reset(self) -> np.ndarray:
        while True:
            self.env.reset(self.next_user)
            self.next_user += 1
            observation, _, done, _ = self.env.step(None)
            if not done:
                self.total = self._views(observation)
                return np.concatenate([self.total, self.total]).astype(np.float32)
            self.skipped += 1

    def step(self, product: int):
        observation, click, done, _ = self.env.step(product)
        views = self._views(observation)
        self.total = self.total + views
        return np.concatenate([views, self.total]).astype(np.float32), click, done


# Identical trajectories: the native environment draws from one RandomState in the
# original's order, so the views, clicks and ends must match exactly. (The click
# probability f is computed by numba in the original and by numpy here; the two can
# differ in the last bit, which could change a click only if a uniform draw fell within
# that bit of the threshold: probability about 1e-16 a step.)
@pytest.mark.parametrize("num_products,seed", [(10, 0), (100, 5), (3, 11)])
def test_trajectories_equal_the_original(num_products, seed):
    original = OriginalDriver(num_products, seed)
    native = make_one_user("discrete", num_products=num_products, product_seed=seed)
    actions = np.random.default_rng(seed).integers(num_products, size=2500)
    assert np.array_equal(original.reset(), native.reset(seed=seed)[0])
    episodes = clicks = 0
    for step, product in enumerate(actions):
        expected_obs, expected_click, expected_done = original.step(int(product))
        obs, reward, terminated, truncated, info = native.step(product)
        assert np.array_equal(obs, expected_obs), f"step {step}: organic views differ"
        assert (reward, info["clicks"], terminated, truncated) == (expected_click, expected_click, expected_done, False), step
        clicks += info["clicks"]
        if terminated:
            episodes += 1
            assert np.array_equal(original.reset(), native.reset()[0]), f"user after step {step}"
    assert episodes >= 20 and clicks >= 10   # the comparison covered many users and clicks


@pytest.mark.parametrize("interface", ["discrete", "continuous"])
def test_gymnasium_check_env(interface):
    check_env(make_one_user(interface, num_products=10), skip_render_check=True)


def test_continuous_scores_show_the_best_product_and_bad_actions_fail():
    env = RecoGym(2, "continuous", num_products=4)
    env.reset(seed=1)
    scores = np.array([[0.1, 0.9, 0.9, -1.0], [1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    assert np.array_equal(np.argmax(scores, axis=1), [1, 0])   # ties: the lower id
    env.step(scores)
    with pytest.raises(InvalidActionError, match=r"shape \(2, 4\)"):
        env.step(scores[:, :3])
    with pytest.raises(InvalidActionError, match="finite scores in \\[-1, 1\\]; user 1"):
        env.step(np.array([[0, 0, 0, 0], [0, np.nan, 0, 0]], dtype=np.float32))
    with pytest.raises(InvalidActionError, match="user 0 has 1.5"):
        env.step(np.array([[1.5, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    discrete = RecoGym(2, "discrete", num_products=4)
    discrete.reset(seed=1)
    with pytest.raises(InvalidActionError, match=r"integers in \[0, 4\); user 1 has 4"):
        discrete.step(np.array([0, 4]))
    with pytest.raises(InvalidActionError, match="must be integers"):
        discrete.step(np.array([0.0, 1.0]))


def test_batched_users_restart_with_a_fresh_timeline_and_report_ctr_terms():
    env = RecoGym(64, "discrete", num_products=10)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (64, 20) and (obs[:, :10] == obs[:, 10:]).all() and (obs.sum(axis=1) >= 1).all()
    ended = 0
    for _ in range(200):
        previous = obs
        obs, rewards, terminated, _, infos = env.step(np.zeros(64, dtype=np.int64))
        assert np.array_equal(rewards, infos["clicks"]) and (infos["impressions"] == 1).all()
        final = infos["final_obs"]   # every user's own continuation, also the leavers'
        assert np.array_equal(final[:, 10:], previous[:, 10:] + final[:, :10])
        assert np.array_equal(obs[~terminated], final[~terminated])
        assert np.array_equal(obs[terminated, :10], obs[terminated, 10:])   # new users: their first session
        ended += int(terminated.sum())
    assert ended > 64


def test_same_seed_same_batched_trajectory():
    runs = []
    for _ in range(2):
        env = RecoGym(16, "discrete")
        trajectory = [env.reset(seed=7)[0]]
        for step in range(100):
            trajectory.append(env.step(np.full(16, step % 10))[0])
        runs.append(np.stack(trajectory))
    assert np.array_equal(runs[0], runs[1])


def test_a_contextual_bandit_learns_to_beat_random():
    # Best fixed product about 1.35x random, showing the most viewed product about 1.5x:
    # the bandit must find the link between organic views and clicks.
    learned, random = learned_and_random_ctr("recogym", LinearGreedyBandit, episodes=300, n_envs=32,
                                             test_episodes=256, simulator_params={"num_products": 10})
    assert learned > 1.3 * random, (learned, random)
