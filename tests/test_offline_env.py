"""The offline RL environment: hand-computed dynamics, gymnasium's checker, invalid
actions, the embedding table, and the batched form against the single one."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from imrl.data.split import Split
from imrl.envs import offline
from imrl.envs.offline import BatchedOfflineRecEnv, OfflineRecEnv, item_embedding_table, last_items


def make_split(logs: dict[int, list[int]], n_users: int, n_items: int, n_features: int = 0, seed: int = 0) -> Split:
    """A split whose train part holds `logs` (user -> items in interaction order)."""
    rows = [(user, item) for user in sorted(logs) for item in logs[user]]
    train = pd.DataFrame({"user": np.array([r[0] for r in rows], np.int32),
                          "item": np.array([r[1] for r in rows], np.int32),
                          "rating": np.ones(len(rows), np.float32),
                          "timestamp": np.arange(len(rows), dtype=np.int64)})
    features = np.random.default_rng(seed).standard_normal((n_users, n_features)).astype(np.float32) if n_features else None
    return Split("tiny", n_users, n_items, train, train.iloc[:0], train.iloc[:0], user_features=features)


def random_split(n_users: int, n_items: int, lengths: tuple[int, int], n_features: int = 3, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    logs = {u: rng.choice(n_items, rng.integers(*lengths), replace=False).tolist() for u in range(n_users)}
    return make_split(logs, n_users, n_items, n_features, seed)


# User 0: initial [0 1 2], targets {3 4 5}. User 1: initial [6], target {7}. User 2: no
# initial item (one train item), target {8}. User 3: [9 9] leaves nothing to discover.
# User 4 has no train item. User 5: initial [1 2 1] (repeats kept), target {3}.
TINY_LOGS = {0: [0, 1, 2, 3, 4, 5], 1: [6, 7], 2: [8], 3: [9, 9], 5: [1, 2, 1, 3, 3]}
PAD = 12


@pytest.fixture(scope="module")
def tiny():
    return make_split(TINY_LOGS, n_users=6, n_items=12, n_features=2)


def test_episode_plan_and_default_users(tiny):
    env = OfflineRecEnv(tiny, history_len=3, slate_size=2, action_interface="discrete", observation="ids")
    setup = env.setup
    assert setup.users.tolist() == [0, 1, 2, 5]
    assert last_items(setup.initial_ptr, setup.initial_item_ids, np.arange(6), 3, PAD).tolist() == [
        [0, 1, 2], [PAD, PAD, 6], [PAD, PAD, PAD], [PAD, PAD, 9], [PAD, PAD, PAD], [1, 2, 1]]
    targets = [setup.target_items[setup.target_ptr[u]:setup.target_ptr[u + 1]].tolist() for u in range(6)]
    assert targets == [[3, 4, 5], [7], [8], [], [], [3]]
    drawn = {env.reset(seed=s)[1]["user"] for s in range(40)}
    assert drawn == {0, 1, 2, 5}


def test_known_rewards_window_and_truncation(tiny):
    env = OfflineRecEnv(tiny, history_len=3, slate_size=2, action_interface="discrete", observation="ids", max_steps=3)
    obs, info = env.reset(options={"user": 0})
    assert info == {"user": 0}
    assert obs["history"].tolist() == [0, 1, 2] and obs["skipped"].tolist() == [PAD] * 3 and obs["user"] == 0

    obs, reward, terminated, truncated, info = env.step(np.array([3, 10]))
    assert (reward, terminated, truncated) == (1.0, False, False)
    assert info["hits"].tolist() == [True, False] and info["slate"].tolist() == [3, 10] and info["n_remaining"] == 2
    assert obs["history"].tolist() == [1, 2, 3] and obs["skipped"].tolist() == [PAD, PAD, 10]

    # A repeat in the same slate earns nothing and is not a second skip.
    obs, reward, terminated, truncated, info = env.step(np.array([5, 5]))
    assert (reward, info["hits"].tolist()) == (1.0, [True, False])
    assert obs["history"].tolist() == [2, 3, 5] and obs["skipped"].tolist() == [PAD, PAD, 10]

    # A consumed item earns nothing again; the third step hits the time limit.
    obs, reward, terminated, truncated, info = env.step(np.array([3, 0]))
    assert (reward, terminated, truncated, info["n_remaining"]) == (0.0, False, True, 1)
    assert obs["history"].tolist() == [2, 3, 5] and obs["skipped"].tolist() == [10, 3, 0]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([4, 4]))


def test_termination_when_all_targets_found(tiny):
    env = OfflineRecEnv(tiny, history_len=3, slate_size=2, action_interface="discrete", observation="ids", max_steps=5)
    env.reset(options={"user": 0})
    env.step(np.array([3, 11]))
    obs, reward, terminated, truncated, info = env.step(np.array([5, 4]))
    assert (reward, terminated, truncated, info["n_remaining"]) == (2.0, True, False, 0)
    assert obs["history"].tolist() == [3, 5, 4]   # hits enter in slate order
    # Repeats among the initial items: the target is what is left after them.
    obs, _ = env.reset(options={"user": 5})
    assert obs["history"].tolist() == [1, 2, 1]
    _, reward, terminated, _, _ = env.step(np.array([1, 3]))
    assert (reward, terminated) == (1.0, True)


def test_vector_observation_layout(tiny):
    env = OfflineRecEnv(tiny, history_len=3, slate_size=2, embedding_dim=4, action_interface="discrete", max_steps=5)
    table = env.setup.item_embeddings
    assert list(env.components) == ["history_0", "history_1", "history_2", "user_features"]
    assert env.components["user_features"] == slice(12, 14) and env.observation_space.shape == (14,)
    obs, _ = env.reset(options={"user": 1})
    assert obs.dtype == np.float32
    np.testing.assert_array_equal(obs[env.components["history_0"]], 0.0)   # empty slots come first
    np.testing.assert_array_equal(obs[env.components["history_2"]], table[6])
    np.testing.assert_array_equal(obs[env.components["user_features"]], tiny.user_features[1])
    obs, reward, terminated, *_ = env.step(np.array([7, 2]))
    assert (reward, terminated) == (1.0, True)
    np.testing.assert_array_equal(obs[env.components["history_1"]], table[6])
    np.testing.assert_array_equal(obs[env.components["history_2"]], table[7])
    obs, _ = env.reset(options={"user": 2})   # no initial item: an all-empty window
    np.testing.assert_array_equal(obs[:12], 0.0)
    assert env.setup.max_reward == 2


@pytest.mark.parametrize("interface,observation", [("continuous", "vector"), ("discrete", "ids"), ("discrete", "vector")])
def test_gymnasium_check_env(interface, observation):
    split = random_split(40, 120, (4, 20))
    env = OfflineRecEnv(split, slate_size=3, max_steps=20, embedding_dim=8, action_interface=interface,
                        observation=observation, seed=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(infinity|spec).*")   # unbounded user features; no registry spec
        check_env(env, skip_render_check=True)


def test_invalid_actions_and_arguments(tiny):
    discrete = OfflineRecEnv(tiny, history_len=3, slate_size=2, action_interface="discrete", max_steps=3)
    with pytest.raises(RuntimeError, match="reset"):
        discrete.step(np.array([1, 2]))
    discrete.reset(options={"user": 0})
    for action, message in [(np.array([1, 2, 3]), "shape"), (np.array([1, 12]), "item id 12"),
                            (np.array([-1, 0]), "item id -1"), (np.array([1.0, 2.0]), "integer")]:
        with pytest.raises(ValueError, match=message):
            discrete.step(action)
    continuous = OfflineRecEnv(tiny, history_len=3, slate_size=2, embedding_dim=4, max_steps=3)
    continuous.reset(options={"user": 0})
    for action, message in [(np.zeros(3), "shape"), (np.array([0, np.nan, 0, 0]), "nan"),
                            (np.array([0, 0, 1.5, 0]), "1.5"), (np.array([0, 0, 0, -np.inf]), "inf")]:
        with pytest.raises(ValueError, match=message):
            continuous.step(action)
    with pytest.raises(ValueError, match="no train item left"):
        continuous.reset(options={"user": 3})
    with pytest.raises(ValueError, match="outside"):
        OfflineRecEnv(tiny, users=np.array([0, 7]), history_len=3, slate_size=2, max_steps=3)
    with pytest.raises(ValueError, match="n_items >= initial_items"):
        OfflineRecEnv(tiny, history_len=3, slate_size=2, max_steps=5)
    with pytest.raises(ValueError, match="action_interface"):
        OfflineRecEnv(tiny, action_interface="items")
    batched = BatchedOfflineRecEnv(tiny, 2, history_len=3, slate_size=2, action_interface="discrete", max_steps=3)
    batched.reset(seed=0)
    with pytest.raises(ValueError, match=r"item id 12 at index \(1, 0\)"):
        batched.step(np.array([[1, 2], [12, 0]]))
    with pytest.raises(ValueError, match="shape"):
        batched.step(np.array([1, 2]))
    with pytest.raises(ValueError, match="expected 2 user ids"):
        batched.reset(options={"users": [0]})


def test_item_embedding_table_is_the_documented_svd(monkeypatch):
    dim = 4
    for n_users, n_items in [(30, 20), (20, 30)]:   # Gram of the item side, of the user side
        split = random_split(n_users, n_items, (3, 10), seed=n_users)
        dense = np.zeros((n_users, n_items))
        dense[split.train["user"], split.train["item"]] = 1.0
        _, singular_values, right = np.linalg.svd(dense)
        expected = right[:dim].T * singular_values[:dim]
        expected *= np.sign(expected[np.argmax(np.abs(expected), axis=0), np.arange(dim)])
        expected /= np.linalg.norm(expected, axis=1, keepdims=True)
        table = item_embedding_table(split, dim)
        assert table.dtype == np.float32 and table.shape == (n_items, dim)
        np.testing.assert_allclose(table, expected, atol=1e-5)
        monkeypatch.setattr(offline, "EXACT_GRAM_MAX", 0)   # the ARPACK path gives the same table
        np.testing.assert_allclose(item_embedding_table(split, dim), expected, atol=1e-5)
        monkeypatch.undo()
    # Items without train interactions embed to zero; columns beyond the rank are zero.
    tiny = make_split({0: [0, 1], 1: [1]}, n_users=2, n_items=4)
    table = item_embedding_table(tiny, 3)
    np.testing.assert_array_equal(table[2:], 0.0)
    np.testing.assert_array_equal(table[:, 2], 0.0)
    np.testing.assert_allclose(np.linalg.norm(table[:2], axis=1), 1.0, rtol=1e-6)


def brute_force_slate(table: np.ndarray, action: np.ndarray, shown: set[int], k: int) -> list[int]:
    scores = (table.astype(np.float64) @ action.astype(np.float64)).tolist()
    ranked = sorted((i for i in range(len(scores)) if i not in shown), key=lambda i: (-scores[i], i))
    return ranked[:k]


@pytest.mark.parametrize("batched", [False, True])
def test_continuous_slate_is_top_k_of_unshown_items_with_ties_to_lower_ids(batched):
    # Entries and actions in multiples of 1/4 make every score exact, so ties are exact.
    split = random_split(30, 40, (3, 8))
    rng = np.random.default_rng(1)
    table = rng.integers(-2, 3, (40, 4)) / 4.0
    kwargs = dict(history_len=3, slate_size=4, embedding_dim=4, max_steps=8, item_embeddings=table)
    env = BatchedOfflineRecEnv(split, 1, **kwargs) if batched else OfflineRecEnv(split, **kwargs)
    setup = env.setup
    for user in setup.users[:6]:
        env.reset(options={"users" if batched else "user": [user] if batched else user})
        shown = set(setup.initial_item_ids[setup.initial_ptr[user]:setup.initial_ptr[user + 1]].tolist())
        for _ in range(3):
            action = rng.integers(-2, 3, 4) / 4.0
            _, _, terminated, truncated, info = env.step(action[None] if batched else action)
            slate = (info["slate"][0] if batched else info["slate"]).tolist()
            assert slate == brute_force_slate(table, action, shown, 4)
            shown.update(slate)
            if np.any(terminated) or np.any(truncated):
                break


@pytest.mark.parametrize("interface,observation", [("continuous", "vector"), ("discrete", "ids")])
def test_batched_env_matches_single_env(interface, observation):
    """Same users and actions: identical observations, rewards, ends, slates and hits,
    through several autoresets; final_obs is the single env's last observation."""
    split = random_split(25, 60, (2, 7), seed=3)
    table = np.random.default_rng(0).uniform(-1, 1, (60, 5)).astype(np.float32)
    kwargs = dict(history_len=4, slate_size=5, action_interface=interface, embedding_dim=5, max_steps=6,
                  observation=observation, item_embeddings=table)
    n_envs = 6
    batched = BatchedOfflineRecEnv(split, n_envs, seed=7, **kwargs)
    singles = [OfflineRecEnv(split, **kwargs) for _ in range(n_envs)]
    batched.action_space.seed(0)
    obs, info = batched.reset()
    for i, env in enumerate(singles):
        assert_obs_equal(obs, i, env.reset(options={"user": info["user"][i]})[0])
    ended_by = {"terminated": 0, "truncated": 0}
    for _ in range(40):
        actions = batched.action_space.sample()
        obs, rewards, terminated, truncated, info = batched.step(actions)
        assert rewards.shape == (n_envs,) and info["_final_obs"].tolist() == (terminated | truncated).tolist()
        for i, env in enumerate(singles):
            single_obs, reward, single_terminated, single_truncated, single_info = env.step(actions[i])
            assert (rewards[i], terminated[i], truncated[i]) == (reward, single_terminated, single_truncated)
            assert info["user"][i] == single_info["user"] and info["n_remaining"][i] == single_info["n_remaining"]
            assert info["slate"][i].tolist() == single_info["slate"].tolist()
            assert info["hits"][i].tolist() == single_info["hits"].tolist()
            assert_obs_equal(info["final_obs"], i, single_obs)
            if terminated[i] or truncated[i]:
                ended_by["terminated" if terminated[i] else "truncated"] += 1
                assert_obs_equal(obs, i, env.reset(options={"user": batched.episode_users[i]})[0])
            else:
                assert_obs_equal(obs, i, single_obs)
    assert ended_by["terminated"] > 3 and ended_by["truncated"] > 3


def assert_obs_equal(batch, i, single):
    if isinstance(single, dict):
        for key, value in single.items():
            np.testing.assert_array_equal(batch[key][i], value, err_msg=key)
    else:
        np.testing.assert_allclose(batch[i], single, rtol=0, atol=1e-6)


def test_batched_final_obs_is_the_ended_episode_and_obs_the_next_user(tiny):
    env = BatchedOfflineRecEnv(tiny, 2, users=np.array([2]), history_len=3, slate_size=2,
                               action_interface="discrete", observation="ids", max_steps=4, seed=0)
    obs, info = env.reset(options={"users": [1, 0]})
    assert info["user"].tolist() == [1, 0] and obs["history"].tolist() == [[PAD, PAD, 6], [0, 1, 2]]
    obs, rewards, terminated, truncated, info = env.step(np.array([[7, 3], [3, 11]]))
    assert rewards.tolist() == [1.0, 1.0] and terminated.tolist() == [True, False] and not truncated.any()
    assert info["_final_obs"].tolist() == [True, False]
    assert info["final_obs"]["history"].tolist() == [[PAD, 6, 7], [1, 2, 3]]
    assert info["final_obs"]["skipped"].tolist() == [[PAD, PAD, 3], [PAD, PAD, 11]]
    # Sub-env 0 restarted with the only user of the pool (2, no initial item); 1 goes on.
    assert obs["user"].tolist() == [2, 0] and env.episode_users.tolist() == [2, 0]
    assert obs["history"].tolist() == [[PAD, PAD, PAD], [1, 2, 3]]
    assert obs["skipped"].tolist() == [[PAD, PAD, PAD], [PAD, PAD, 11]]
    assert info["user"].tolist() == [1, 0]   # who acted on this step


def test_seeded_runs_are_identical():
    split = random_split(50, 80, (3, 12), seed=5)
    kwargs = dict(history_len=4, slate_size=3, embedding_dim=6, max_steps=5)

    def batched_run(seed):
        env = BatchedOfflineRecEnv(split, 8, seed=seed, **kwargs)
        env.action_space.seed(seed)
        obs, info = env.reset()
        trace = [obs, info["user"]]
        for _ in range(12):
            obs, rewards, terminated, truncated, info = env.step(env.action_space.sample())
            trace += [obs, rewards, terminated, truncated, info["slate"], env.episode_users]
        return trace

    def single_users(seed):
        env = OfflineRecEnv(split, seed=seed, **kwargs)
        return [env.reset()[1]["user"] for _ in range(20)]

    for a, b in zip(batched_run(1), batched_run(1), strict=True):
        np.testing.assert_array_equal(a, b)
    assert single_users(1) == single_users(1) != single_users(2)
    assert not all(np.array_equal(a, b) for a, b in zip(batched_run(1), batched_run(2)))


def test_on_the_synthetic_dataset(split_small):
    """On the embedded dataset's preprocessed split, an oracle that shows each user's
    remaining targets in log order collects exactly their number and ends the episode
    as soon as they are consumed; random scores vectors find some of them too."""
    k = 5
    env = BatchedOfflineRecEnv(split_small, 16, slate_size=k, max_steps=100, action_interface="discrete", seed=0)
    setup = env.setup
    env.reset()
    found, steps, checked = np.zeros(16), np.zeros(16, dtype=int), 0
    while checked < 40:
        slates = []
        for i, user in enumerate(env.episode_users):
            targets = setup.target_items[setup.target_ptr[user]:setup.target_ptr[user + 1]]
            upcoming = targets[steps[i] * k:(steps[i] + 1) * k]
            slates.append(np.resize(upcoming, k))   # fewer than k left: repeats fill the slate
        acting = env.episode_users
        _, rewards, terminated, truncated, _ = env.step(np.array(slates))
        found += rewards
        steps += 1
        assert not truncated.any()
        for i in np.flatnonzero(terminated):
            n_targets = setup.n_targets[acting[i]]
            assert found[i] == n_targets and steps[i] == -(-n_targets // k)
            found[i], steps[i], checked = 0, 0, checked + 1

    env = BatchedOfflineRecEnv(split_small, 32, slate_size=10, max_steps=10, seed=0)
    obs, _ = env.reset()
    assert env.components["user_features"].stop == obs.shape[1] == env.single_observation_space.shape[0]
    total = 0.0
    for _ in range(10):
        obs, rewards, *_ = env.step(env.action_space.sample())
        total += rewards.sum()
    assert env.observation_space.contains(obs) and total > 0
