"""The user-model environment (imrl/envs/user_model.py): the fitted model beats
Popularity on validation, rewards favour the logged next item, batched == single,
gymnasium's checks, determinism, the artefact's round trip and errors; validation
selection keeps the best policy; RL training never reads the test split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from baselines.deers import DEERS
from baselines.rl_common import Context, Learner, OfflineData, rl_budget, train_offline
from imrl.agents.imrl import IMRL
from imrl.api import RunContext
from imrl.envs.environment import OfflineEnvironment
from imrl.envs.user_model import (BatchedUserModelEnv, UserModelEnv, fit_user_model, load_user_model,
                                  save_user_model)
from imrl.eval.selection import ValidationSelection
from tests.conftest import small_split

FIT = {"epochs": 20, "dim": 16}


@pytest.fixture(scope="module")
def fitted(split_small):
    return fit_user_model(split_small, FIT, seed=0, log=lambda message: None)


@pytest.mark.parametrize("seed", [0, 1])
def test_user_model_beats_popularity_on_validation(seed):
    split = small_split(seed)
    _, report = fit_user_model(split, FIT, seed=seed, log=lambda message: None)
    # Popularity reaches about 0.16 on these splits, the model about 0.37: a wide margin.
    assert report["valid"]["recall@20"] > 1.5 * report["popularity_valid"]["recall@20"]
    assert report["valid"]["ndcg@20"] > 1.5 * report["popularity_valid"]["ndcg@20"]
    assert np.isfinite(report["valid"]["log_likelihood"]) and report["valid"]["log_likelihood"] < 0


def test_logged_next_item_slate_earns_more_than_a_random_slate(split_small, fitted):
    model, _ = fitted
    indptr, items = split_small.csr("train")
    rng = np.random.default_rng(0)
    users = rng.choice(np.flatnonzero(np.diff(indptr) >= 2), size=64, replace=False)
    cuts = np.array([rng.integers(1, indptr[u + 1] - indptr[u]) for u in users])   # a next item exists
    # Slates of one item: the logged next item against a random one, from the same states.
    env = BatchedUserModelEnv(split_small, len(users), model, slate_size=1, action_interface="discrete", seed=0)
    env.reset(options={"users": users, "cuts": cuts})
    _, logged_reward, *_ = env.step(items[indptr[users] + cuts][:, None])
    env.reset(options={"users": users, "cuts": cuts})
    _, random_reward, *_ = env.step(rng.integers(0, split_small.n_items, (len(users), 1)))
    assert logged_reward.mean() > 3 * random_reward.mean()
    assert ((0 <= logged_reward) & (logged_reward <= 1)).all()


@pytest.mark.parametrize("interface", ["discrete", "continuous"])
def test_batched_equals_single(split_small, fitted, interface):
    """Row i of a batch behaves as a single environment started where it starts: same
    observations, slates, click probabilities and rewards for the same actions."""
    model, _ = fitted
    users, cuts = np.array([3, 10, 42, 7]), np.array([2, 5, 1, 3])
    batched = BatchedUserModelEnv(split_small, 4, model, action_interface=interface, seed=0)
    singles = [UserModelEnv(split_small, model, action_interface=interface, seed=0) for _ in users]
    obs, _ = batched.reset(options={"users": users, "cuts": cuts})
    single_obs = [env.reset(options={"user": int(u), "cut": int(c)})[0] for env, u, c in zip(singles, users, cuts)]
    np.testing.assert_array_equal(obs, np.stack(single_obs))
    rng = np.random.default_rng(1)
    action = (rng.integers(0, split_small.n_items, (4, 10)) if interface == "discrete"
              else rng.uniform(-1, 1, (4, model.dim)).astype(np.float32))
    _, rewards, _, _, info = batched.step(action)
    for i, env in enumerate(singles):
        _, reward, _, _, single_info = env.step(action[i])
        assert reward == pytest.approx(rewards[i], abs=1e-6)
        np.testing.assert_array_equal(single_info["slate"], info["slate"][i])
        np.testing.assert_allclose(single_info["slot_rewards"], info["slot_rewards"][i], atol=1e-6)


@pytest.mark.parametrize("interface", ["discrete", "continuous"])
def test_gymnasium_check_env(split_small, fitted, interface):
    model, _ = fitted
    check_env(UserModelEnv(split_small, model, action_interface=interface, observation="ids", seed=0),
              skip_render_check=True)


def test_same_seed_same_trajectory_and_clicks_follow_the_model(split_small, fitted):
    model, _ = fitted

    def play(seed):
        env = BatchedUserModelEnv(split_small, 8, model, action_interface="discrete", seed=seed)
        env.reset(seed=seed)
        rng = np.random.default_rng(5)
        out = []
        for _ in range(25):
            _, rewards, _, truncated, info = env.step(rng.integers(0, split_small.n_items, (8, 10)))
            out.append((rewards, info["clicks"], truncated))
        return out

    first, again, other = play(0), play(0), play(1)
    for (r1, c1, t1), (r2, c2, t2) in zip(first, again):
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(t1, t2)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(first, other))
    assert all(t.any() for _, _, t in first[9::10])   # horizon 10: every episode truncates at step 10


def test_round_trip_and_errors(tmp_path, split_small, fitted):
    model, report = fitted
    save_user_model(tmp_path / "um", model, report)
    assert json.loads((tmp_path / "um" / "meta.json").read_text())["valid"] == report["valid"]
    loaded = load_user_model(tmp_path / "um", split_small)
    history = torch.full((2, model.history_len), split_small.n_items)
    history[:, -1] = torch.tensor([1, 2])
    features = torch.from_numpy(split_small.user_features[:2])
    torch.testing.assert_close(loaded.utilities(history, features), model.utilities(history, features))
    with pytest.raises(FileNotFoundError, match="meta.json"):
        load_user_model(tmp_path / "missing", split_small)
    other = small_split(0, n_items=300)
    with pytest.raises(ValueError, match="refit"):
        load_user_model(tmp_path / "um", other)
    with pytest.raises(ValueError, match="unknown setting"):
        fit_user_model(split_small, {"epoch": 3})
    env = OfflineEnvironment.from_config({"kind": "user_model"}, model)
    with pytest.raises(ValueError, match="initial_items"):
        env.make(split_small, 2, "discrete", "ids", seed=0, initial_items=3)
    with pytest.raises(ValueError, match="cuts"):
        BatchedUserModelEnv(split_small, 1, model, seed=0).reset(options={"users": [3], "cuts": [0]})


class _FlippingLearner(Learner):
    """Ranks by train popularity (a good policy) for its first updates, then by its
    reverse (a bad one): validation selection must keep the early policy."""

    def __init__(self, split, flip_after: int):
        counts = np.bincount(split.csr("train")[1], minlength=split.n_items).astype(np.float32)
        self.n_items, self.slate_size, self.flip_after = split.n_items, 10, flip_after
        self.direction = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.ones_(self.direction.weight)
        self.popularity = torch.from_numpy(counts)
        self.updates = 0

    def act(self, context: Context, available, explore: bool):
        return torch.randint(self.n_items, (len(context), self.slate_size))

    def observe(self, *args) -> None:
        pass

    def update(self) -> dict[str, float]:
        self.updates += 1
        if self.updates == self.flip_after:
            with torch.no_grad():
                self.direction.weight.fill_(-1.0)
        return {"updates": float(self.updates)}

    def scores(self, context: Context):
        return self.direction.weight[0, 0] * self.popularity.expand(len(context), -1)


def test_validation_selection_keeps_the_best_policy_not_the_last(split_small):
    ctx = RunContext(seed=0, budget={"env_steps": 1600, "update_ratio": 0.25, "validate_every": 100})
    data = OfflineData(split_small, {"max_steps": 10}, 16, ctx)
    learner, stats, selection = train_offline(_FlippingLearner(split_small, flip_after=250), data, rl_budget(ctx), 0)
    assert stats.updates == 400
    assert [e["updates"] for e in selection.evaluations] == [100, 200, 300, 400, 400]
    early, late = selection.evaluations[1]["recall@20"], selection.evaluations[-1]["recall@20"]
    assert early > 2 * late   # popularity against its reverse
    assert selection.best_updates == 100 and learner.direction.weight.item() == 1.0   # the early policy is back
    with pytest.raises(ValueError, match="validate_every"):
        ValidationSelection(0)


class _Unreadable:
    """Stands for the test split until final evaluation: any use of it fails."""

    def __getattr__(self, name):
        raise AssertionError(f"the test split was read before final evaluation ({name!r})")

    def __getitem__(self, key):
        raise AssertionError(f"the test split was read before final evaluation ([{key!r}])")

    def __len__(self):
        raise AssertionError("the test split was read before final evaluation (len)")


@pytest.mark.parametrize("method", [IMRL, DEERS])
def test_rl_training_never_reads_the_test_split(method):
    split = small_split(0)
    test = split.test
    split.test = _Unreadable()
    model, _ = fit_user_model(split, {"epochs": 2, "dim": 16}, seed=0, log=lambda message: None)
    environment = OfflineEnvironment.from_config({"kind": "user_model"}, model)
    budget = {"env_steps": 640, "update_ratio": 0.25, "validate_every": 50}
    params = {"hidden": 16, "model_hidden": 16, "batch_size": 32, "random_steps": 100} if method is IMRL else {}
    fitted_method = method(params, RunContext(seed=0, budget=budget, environment=environment, log=lambda m: None))
    fitted_method.fit(split)
    assert len(fitted_method.diagnostics["validation_selection"]["evaluations"]) >= 2
    split.test = test   # final evaluation may read it now
    assert fitted_method.score(torch.arange(4), "test").shape == (4, split.n_items)
