"""What DEERS, KGRL, TPGR and PGPR share: the budget, storage, side information, and the
checks that each learns (beats the random policy offline on the synthetic dataset and
online), repeats for a seed on CPU, and runs through the workflow's run functions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from baselines.random import RandomAgent
from baselines.rl_common import EpisodeBuffer, ReplayBuffer, UpdateSchedule, rl_budget, showing
from baselines.side_info import build_knowledge_graph, cooccurrence_neighbours, item_categories, kmeans
from imrl import registry
from imrl.api import RunContext
from imrl.data.split import Split
from imrl.eval.online import TEST_SEED_OFFSET, make_simulator, measure_ctr, run_simulator
from imrl.eval.ranking import evaluate
from imrl.runs.run import run_offline, run_online, seed_everything
from tests.conftest import saved_user_model, small_split, user_model_environment
from tests.rl_toy_env import PreferenceVectorEnv, mean_reward
from tests.test_virtualtb import random_networks

RL_BASELINES = ["deers", "kgrl", "tpgr", "pgpr"]

# Tiny budgets and, where a method's published defaults learn too slowly for a budget of
# seconds, a larger learning rate.
SHORT_EPISODES = {"n_envs": 32, "env": {"max_steps": 10}}
OFFLINE_SETUP = {
    "deers": ({"env_steps": 4096, "update_ratio": 0.25}, {**SHORT_EPISODES, "batch_size": 32}),
    "kgrl": ({"env_steps": 2048, "update_ratio": 1 / 16}, {**SHORT_EPISODES, "batch_size": 32}),
    "tpgr": ({"env_steps": 8192}, {**SHORT_EPISODES, "lr": 0.003, "episodes_per_update": 16}),
    "pgpr": ({"env_steps": 2048}, {"n_envs": 32, "max_acts": 50, "kge_epochs": 3}),
}
ONLINE_PARAMS = {
    "deers": {},
    "kgrl": {"gamma": 0.5, "actor_lr": 0.003, "critic_lr": 0.003},
    "tpgr": {"lr": 0.01, "episodes_per_update": 16},
    "pgpr": {"lr": 0.003, "episodes_per_update": 16},
}

# VirtualTB with random networks of the upstream shapes (the real weights are not in CI)
# and 10 discrete actions: (training episodes, parameters). RecSim and RecoGym: METHODS.md.
VIRTUALTB_SETUP = {
    "deers": (200, {}),
    "kgrl": (800, {"gamma": 0.5, "actor_lr": 0.003, "critic_lr": 0.003, "noise_std": 0.5}),
    "tpgr": (200, {"lr": 0.01, "episodes_per_update": 16}),
    "pgpr": (800, {"lr": 0.003, "episodes_per_update": 16}),
}


def table(rows: list[tuple[int, int]]) -> pd.DataFrame:
    users, items = zip(*rows) if rows else ((), ())
    return pd.DataFrame({"user": np.array(users, np.int32), "item": np.array(items, np.int32),
                         "rating": np.ones(len(rows), np.float32), "timestamp": np.arange(len(rows), dtype=np.int64)})


def hand_split(item_categories=None) -> Split:
    # Users 0-2; items 0-4. Co-consumption counts: (0,1) 2, (0,2) 1, (1,2) 1, (3,4) 1.
    train = table([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 3), (2, 4)])
    return Split("hand", 3, 5, train, table([]), table([]), item_categories=item_categories)


# ----------------------------------------------------------------------------- shared parts
def test_budget_takes_the_rl_keys_and_names_bad_values():
    # The budget is shared with other method families: their keys (epochs) are not ours.
    budget = rl_budget(RunContext(seed=0, budget={"env_steps": 10, "epochs": 3}))
    assert budget == {"env_steps": 10, "update_ratio": 0.25, "validate_every": 500}
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(ValueError, match="'env_steps'"):
            rl_budget(RunContext(seed=0, budget={"env_steps": bad}))
    for bad in (-0.1, float("inf"), "1", None):
        with pytest.raises(ValueError, match="'update_ratio'"):
            rl_budget(RunContext(seed=0, budget={"update_ratio": bad}))
    for bad in (0, 2.5, True, "10"):
        with pytest.raises(ValueError, match="'validate_every'"):
            rl_budget(RunContext(seed=0, budget={"validate_every": bad}))


def test_update_schedule_carries_fractions_over():
    schedule = UpdateSchedule(0.25)
    assert [schedule.after(3) for _ in range(5)] == [0, 1, 1, 1, 0]   # due: 0.75, 1.5, 2.25, 3.0, 3.75


def test_episode_buffer_hands_over_finished_episodes_with_their_returns():
    buffer = EpisodeBuffer(gamma=0.5)
    # Two users; user 0's episode ends at step 1, user 1's runs on.
    for step, (rewards, ended) in enumerate([([1.0, 2.0], [False, False]), ([4.0, 0.0], [True, False]),
                                             ([8.0, 1.0], [False, False])]):
        buffer.add({"step": torch.tensor([step, step])}, torch.tensor(rewards), torch.tensor(ended))
    assert buffer.n_complete == 1
    data, returns = buffer.pop_complete()
    assert data["step"].tolist() == [0, 1] and returns.tolist() == [1.0 + 0.5 * 4.0, 4.0]
    assert buffer.n_complete == 0
    buffer.add({"step": torch.tensor([3, 3])}, torch.tensor([0.0, 2.0]), torch.tensor([True, True]))
    data, returns = buffer.pop_complete()
    # Time-major order: user 1's steps 0-3, user 0's second episode (steps 2-3).
    order = sorted(zip(data["step"].tolist(), returns.tolist()))
    assert order == [(0, 2.0 + 0.5 * (0.0 + 0.5 * (1.0 + 0.5 * 2.0))), (1, 0.0 + 0.5 * (1.0 + 0.5 * 2.0)),
                     (2, 1.0 + 0.5 * 2.0), (2, 8.0), (3, 0.0), (3, 2.0)]
    assert not buffer.steps   # nothing left


def test_episode_buffer_gives_each_slot_its_reward_plus_the_discounted_future():
    buffer = EpisodeBuffer(gamma=0.5)
    buffer.add({"x": torch.zeros(1)}, torch.tensor([[1.0, 0.0]]), torch.tensor([False]))
    buffer.add({"x": torch.ones(1)}, torch.tensor([[0.0, 2.0]]), torch.tensor([True]))
    _, returns = buffer.pop_complete()
    assert returns.tolist() == [[1.0 + 0.5 * 2.0, 0.0 + 0.5 * 2.0], [0.0, 2.0]]


def test_replay_buffer_overwrites_the_oldest_rows():
    buffer = ReplayBuffer(capacity=5, device=torch.device("cpu"))
    for start in (0, 3, 6):
        buffer.add({"x": torch.arange(start, start + 3)})
    assert len(buffer) == 5 and sorted(buffer.data["x"].tolist()) == [4, 5, 6, 7, 8]
    assert set(buffer.sample(50)["x"].tolist()) <= {4, 5, 6, 7, 8}


def test_cooccurrence_neighbours_are_the_most_co_consumed_items():
    heads, tails = cooccurrence_neighbours(hand_split(), k=1)
    assert dict(zip(heads.tolist(), tails.tolist())) == {0: 1, 1: 0, 2: 0, 3: 4, 4: 3}
    heads, tails = cooccurrence_neighbours(hand_split(), k=5)
    assert sorted(zip(heads.tolist(), tails.tolist())) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1),
                                                           (3, 4), (4, 3)]


def test_categories_come_from_the_split_or_are_labelled_pseudo_categories():
    categories, notes = item_categories(hand_split(np.array([1, 1, 0, -1, 2])), 2, seed=0)
    assert categories.tolist() == [1, 1, 0, -1, 2] and notes == []
    # Without categories: k-means over the items' SVD embeddings; users 0-1 share items
    # 0-2, user 2 holds 3-4, so the two groups fall apart.
    categories, notes = item_categories(hand_split(), 2, seed=0)
    assert len(set(categories[:3])) == 1 and len(set(categories[3:])) == 1 and categories[0] != categories[3]
    assert "pseudo-categories" in notes[0] and "'hand'" in notes[0]


def test_kmeans_separates_clusters_and_repeats_for_a_seed():
    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.normal(0.0, 0.1, (20, 3)), rng.normal(5.0, 0.1, (30, 3))])
    labels = kmeans(vectors, 2, np.random.default_rng(1))
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1 and labels[0] != labels[20]
    assert np.array_equal(labels, kmeans(vectors, 2, np.random.default_rng(1)))


def test_knowledge_graph_stores_every_relation_both_ways():
    graph = build_knowledge_graph(hand_split(np.array([0, 0, 1, 1, -1])), np.array([0, 0, 1, 1, -1]), 2, True)
    assert graph.counts == {"user": 3, "item": 5, "category": 2}
    rel = {name: i for i, name in enumerate(graph.relations)}
    user, item, category = graph.offsets["user"], graph.offsets["item"], graph.offsets["category"]
    assert graph.has_edge(user + 2, rel["purchase"], item + 4) and graph.has_edge(item + 4, rel["purchased_by"], user + 2)
    assert graph.has_edge(item + 2, rel["belongs_to"], category + 1)
    assert graph.has_edge(category + 1, rel["contains"], item + 3)
    assert not any(graph.has_edge(item + 4, r, category + c) for r in range(len(rel)) for c in range(2))
    assert graph.has_edge(item + 3, rel["co_occurs"], item + 4) and graph.has_edge(item + 4, rel["co_occurs"], item + 3)


# ----------------------------------------------------------------------------- learning
def offline_recall(name: str, split, seed: int, budget=None, params=None) -> float:
    """Test recall@20 of `name` trained in the split's default environment (the user model)."""
    spec = registry.method(name)
    default_budget, default_params = OFFLINE_SETUP.get(name, ({}, {}))
    environment = user_model_environment(split) if spec.offline_env else None
    discount = {"gamma": environment.gamma} if environment else {}
    method = spec.load()({**discount, **(params if params is not None else default_params)},
                         RunContext(seed=seed, budget=budget if budget is not None else default_budget,
                                    environment=environment))
    method.fit(split)
    return evaluate(lambda users: method.score(users, "test"), split, "test", ks=(20,)).as_dict()["recall@20"]


@pytest.mark.parametrize("name", RL_BASELINES)
def test_each_beats_random_offline_on_the_synthetic_dataset(name):
    for seed in (0, 1):
        split = small_split(seed)
        learned, random = offline_recall(name, split, seed), offline_recall("random", split, seed)
        assert learned > 1.25 * random, (name, seed, learned, random)


@pytest.mark.parametrize("slate_size", [0, 3], ids=["one-item", "slate"])
@pytest.mark.parametrize("name", RL_BASELINES)
def test_each_online_agent_beats_random_on_a_small_vector_env(name, slate_size):
    cls = registry.method(name).load(registry.ONLINE)
    env = PreferenceVectorEnv(16, slate_size=slate_size)
    for seed in (0, 1):
        ctx = RunContext(seed=seed, budget={"update_ratio": 1 / 16})
        agent = cls(ONLINE_PARAMS[name], ctx, env.single_observation_space, env.single_action_space, 16)
        mean_reward(agent, env, 600, seed, learn=True)
        learned = mean_reward(agent, env, 30, 100 + seed, learn=False)
        random = mean_reward(RandomAgent({}, ctx, env.single_observation_space, env.single_action_space, 16),
                             env, 30, 100 + seed, learn=False)
        assert learned > random + 0.1, (name, seed, learned, random)   # random: 0.27 one item, 0.59 slates
        assert any("online: the state is the simulator's observation" in note for note in agent.substitutes)


@pytest.mark.parametrize("name", RL_BASELINES)
def test_each_beats_random_on_virtualtb(name):
    episodes, params = VIRTUALTB_SETUP[name]
    simulator_params = {"networks": random_networks(), "n_discrete_actions": 10}
    cls = registry.method(name).load(registry.ONLINE)
    for seed in (0, 1):
        ctx = RunContext(seed=seed, budget={"update_ratio": 0.05})   # the default config's
        result, _ = run_simulator("virtualtb", cls, params, ctx, episodes=episodes, test_every=episodes,
                                  test_episodes=128, n_envs=32, simulator_params=simulator_params)
        env = make_simulator("virtualtb", 32, "discrete", simulator_params)
        random = measure_ctr(RandomAgent({}, ctx, env.single_observation_space, env.single_action_space, 32), env,
                             128, TEST_SEED_OFFSET + seed)
        assert result.metrics["ctr"] > 1.05 * random, (name, seed, result.metrics["ctr"], random)


def test_simulators_declare_their_catalogue_and_the_adapter_shows_what_it_chose(monkeypatch):
    recsim = make_simulator("recsim", 6, "discrete", {"num_candidates": 5, "slate_size": 2})
    obs, _ = recsim.reset(seed=0)
    view = recsim.item_view()
    assert view.n_items == 20 and np.array_equal(view.items_of(obs), recsim.topics)
    recogym = make_simulator("recogym", 2, "discrete", {"num_products": 7}).item_view()
    assert recogym.n_items == 7 and recogym.items_of is None and recogym.note is None
    agent_cls = registry.method("deers").load(registry.ONLINE)
    built = []
    monkeypatch.setattr(agent_cls, "make_learner", lambda self, build=agent_cls.make_learner: built.append(1) or build(self))
    agent = agent_cls({}, RunContext(seed=0), recsim.single_observation_space, recsim.single_action_space, 6)
    agent.use_item_view(view)
    assert agent.learner.n_items == 20 and any("20 topics" in note for note in agent.substitutes)
    assert len(built) == 1, "the learner is built once, over the view the runner gave"
    actions = agent.act(obs, explore=True)
    chosen = agent.chosen[1]
    shown = np.take_along_axis(recsim.topics, actions, axis=1)
    assert np.array_equal(shown, chosen.numpy()) and (shown[:, 0] != shown[:, 1]).all()
    next_obs, rewards, terminated, truncated, infos = recsim.step(actions)
    agent.observe(obs, actions, rewards, infos["final_obs"], terminated, truncated)
    assert np.array_equal(agent.learner.buffer.data["slate"][:6].numpy(), shown)   # transitions hold topics
    # The reward goes to the position the next observation shows clicked (RecSim's response).
    clicked = np.zeros((6, 2))
    for user, chosen_position in enumerate(infos["final_obs"][:, -10::5].argmax(1)):
        clicked[user, chosen_position] = infos["clicks"][user]
    assert clicked.sum() > 0
    assert np.allclose(agent.learner.buffer.data["rewards"][:6].numpy(), rewards[:, None] * clicked)


def test_showing_picks_each_items_first_action_and_spares_for_missing_items():
    action_items = torch.tensor([[3, 5, 3, 7], [2, 2, 2, 2]])
    assert showing(torch.tensor([[3, 7], [9, 2]]), action_items).tolist() == [[0, 3], [1, 0]]


class ImpressionCounter:
    """A simulator that also counts the clicks and impressions it reports."""

    def __init__(self, env):
        self.env, self.num_envs, self.clicks, self.impressions = env, env.num_envs, 0, 0

    def reset(self, **kwargs):
        return self.env.reset(**kwargs)

    def step(self, actions):
        result = self.env.step(actions)
        self.clicks += int(result[4]["clicks"].sum())
        self.impressions += int(result[4]["impressions"].sum())
        return result


def clicks_and_impressions(agent, simulator: str, simulator_params: dict, n_envs: int, episodes: int,
                           seed: int) -> tuple[int, int]:
    """(clicks, impressions) of `agent` on the runner's test users of `seed`."""
    env = ImpressionCounter(make_simulator(simulator, n_envs, "discrete", simulator_params))
    measure_ctr(agent, env, episodes, TEST_SEED_OFFSET + seed)
    return env.clicks, env.impressions


# RecSim and RecoGym in seconds: 256 training episodes of 32 users, a short horizon
# (gamma 0: CTR is a per-step quantity) and larger learning rates than the papers'. RecSim
# shows one document a step (slate 1; slates are checked on the vector env); RecoGym has 5
# products (CTR about 1.2-1.4%).
SIMULATOR_SETUP = {"recsim": {"slate_size": 1}, "recogym": {"num_products": 5}}
SIMULATOR_PARAMS = {
    "deers": {"gamma": 0.0, "lr": 0.003, "epsilon_decay_steps": 600, "epsilon_end": 0.1},
    "kgrl": {"gamma": 0.0, "actor_lr": 0.003, "critic_lr": 0.003, "noise_std": 0.3},
    "tpgr": {"gamma": 0.0, "lr": 0.003, "episodes_per_update": 4},
    "pgpr": {"gamma": 0.0, "lr": 0.003, "episodes_per_update": 4},
}


@pytest.mark.parametrize("simulator", sorted(SIMULATOR_SETUP))
@pytest.mark.parametrize("name", RL_BASELINES)
def test_each_beats_random_on_recsim_and_recogym(name, simulator, request):
    if (name, simulator) == ("kgrl", "recogym"):
        # Known, a limit of the method as adapted (METHODS.md, KGRL): on RecoGym's 5 products
        # the actor's ranking <mu(s), e_i> and the per-item critic agree on the top item for
        # under a fifth of users, and the actor's choice clicks below random here.
        request.applymarker(pytest.mark.xfail(strict=True, reason="KGRL's actor and critic disagree on RecoGym"))
    # One-sided two-proportion z-test on the clicks pooled over two seeds, each method and
    # the random agent tested on the same 256 test episodes per seed: p < 0.01.
    simulator_params, n_envs = SIMULATOR_SETUP[simulator], 32
    cls = registry.method(name).load(registry.ONLINE)
    learned, random = np.zeros(2), np.zeros(2)   # (clicks, impressions)
    for seed in (0, 1):
        ctx = RunContext(seed=seed, budget={"update_ratio": 0.1})
        _, agent = run_simulator(simulator, cls, SIMULATOR_PARAMS[name], ctx, episodes=256, test_every=256,
                                 test_episodes=1, n_envs=n_envs, simulator_params=simulator_params)
        learned += clicks_and_impressions(agent, simulator, simulator_params, n_envs, 256, seed)
        env = make_simulator(simulator, n_envs, "discrete", simulator_params)
        random_agent = RandomAgent({}, ctx, env.single_observation_space, env.single_action_space, n_envs)
        random += clicks_and_impressions(random_agent, simulator, simulator_params, n_envs, 256, seed)
    (p1, n1), (p0, n0) = learned / [learned[1], 1], random / [random[1], 1]
    pooled = (learned[0] + random[0]) / (n1 + n0)
    z = (p1 - p0) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    print(f"{name} on {simulator}: CTR {p1:.4f} vs random {p0:.4f} ({p1 / p0:.3f}x; {n1:.0f} and {n0:.0f} "
          f"impressions), z = {z:.2f}")
    assert z > 2.33, (name, simulator, p1, p0, z)
    if simulator == "recsim":
        assert any("item catalogue is the 20 topics" in note for note in agent.substitutes)


@pytest.mark.parametrize("name", RL_BASELINES)
def test_same_seed_same_scores_on_cpu(name, split_small):
    budget = {"env_steps": 256}
    params = {**OFFLINE_SETUP[name][1], "n_envs": 16, **({"episodes_per_update": 4} if name == "tpgr" else {})}
    if "env" in params:
        params["env"] = {"max_steps": 5}
    scores = []
    for _ in range(2):
        seed_everything(3)   # as a run does: seeds, and torch's deterministic kernels
        method = registry.method(name).load()(params, RunContext(seed=3, budget=budget))
        method.fit(split_small)
        scores.append(method.score(torch.arange(50), "test"))
    assert torch.equal(scores[0], scores[1])


def test_runs_record_metrics_and_substitutes(tmp_path, split_small):
    from imrl.data.split import save_split

    split_dir = tmp_path / "split"
    save_split(split_small, split_dir)
    for name in RL_BASELINES:
        job = {"method": OFFLINE_SETUP[name][1], "budget": {"env_steps": 256, "epochs": 2},   # epochs: not ours
               "evaluation": {"ks": [20]}}
        record = run_offline("synthetic-small", name, 0, split_dir, job, tmp_path / f"{name}.json",
                             user_model_dir=saved_user_model(split_small, tmp_path / "user_model"))
        assert record["status"] == "ok", record["error"]
        assert 0.0 <= record["metrics"]["test"]["recall@20"] <= 1.0
        assert json.loads((tmp_path / f"{name}.json").read_text())["substitutes"] == record["substitutes"]
        assert record["training"]["environment"]["kind"] == ("knowledge_graph" if name == "pgpr" else "user_model")
        assert record["training"]["validation_selection"]["evaluations"]
        if name in ("kgrl", "pgpr"):
            assert any("pseudo-KG" in note for note in record["substitutes"])
    job = {"method": {}, "budget": {"update_ratio": 0.05}, "simulator": {"episodes": 4, "test_every": 2, "test_episodes": 4, "n_envs": 4,
                                                     "params": {"num_products": 5}}}
    record = run_online("recogym", "deers", 0, job, tmp_path / "online.json")
    assert record["status"] == "ok", record["error"]
    assert len(record["curve"]["ctr"]) >= 2 and any("pairwise regulariser removed" in s for s in record["substitutes"])
