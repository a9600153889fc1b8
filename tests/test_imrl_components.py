"""Each part of IMRL does what it claims, on cases where the right answer is known:
inverse dynamics (Eq. 14), the local causal model (Algorithm 1, ind), counterfactual
augmentation (Algorithm 1), the adaptive threshold (Eq. 16), the gate of Algorithm 2
line 8, and the intrinsic term in the value target (Eq. 11-12)."""

from __future__ import annotations

import math
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from imrl import registry
from imrl.agents.causal import Layout, LocalCausalModel, _components, _jacobian, augment
from imrl.agents.empowerment import Empowerment, TransitionKL
from imrl.agents.imrl import IMRL, AdaptiveThreshold, IMRLAgent
from imrl.agents.sac import FusedAdam, ReplayBuffer, SACConfig, SoftActorCritic, tanh_gaussian_log_prob
from imrl.api import RunContext


def fit(parameters, loss_fn, steps: int, lr: float = 1e-3) -> None:
    optimizer = FusedAdam(list(parameters), lr)
    for step in range(steps):
        optimizer.zero_grad()
        loss_fn(step).backward()
        optimizer.step()


# -- a toy factored environment with a known sparse structure ------------------------------
# State: four 2-d components s0..s3 in [-1, 1]; action: two 2-d components a0, a1.
#   s0' = (s0 + a0) / 2      s1' = (s1 + s2) / 2      s2' = s2      s3' = (s3 + a1) / 2
#   r = number of positive coordinates of s0'   (0, 1 or 2)
TOY_LAYOUT = Layout.from_sizes([2, 2, 2, 2], [2, 2])
# Parents of each output node (s0', s1', s2', s3') among the inputs (s0, s1, s2, s3, a0, a1).
TOY_PARENTS = {0: {0, 4}, 1: {1, 2}, 2: {2}, 3: {3, 5}}


def toy_step(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s0, s1, s2, s3 = obs.split(2, 1)
    a0, a1 = action.split(2, 1)
    next0 = (s0 + a0) / 2
    return torch.cat([next0, (s1 + s2) / 2, s2, (s3 + a1) / 2], 1), (next0 > 0).float().sum(1)


def toy_batch(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    obs = torch.rand(n, 8, generator=generator) * 2 - 1
    action = torch.rand(n, 4, generator=generator) * 2 - 1
    next_obs, reward = toy_step(obs, action)
    return {"obs": obs, "action": action, "reward": reward, "next_obs": next_obs, "terminated": torch.zeros(n)}


@pytest.fixture(scope="module")
def toy_causal_model():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    data = toy_batch(20_000, generator)
    model = LocalCausalModel(TOY_LAYOUT, hidden=64, mask_threshold=0.3)
    model.observe(data)

    def loss(step):
        index = torch.randint(0, 20_000, (256,), generator=generator)
        return model.loss({name: value[index] for name, value in data.items()}).mean()
    fit(model.parameters(), loss, steps=500, lr=1e-3)
    return model


def test_jacobian_is_exact():
    torch.manual_seed(0)
    model = LocalCausalModel(TOY_LAYOUT, hidden=16, mask_threshold=0.3)
    x = torch.randn(5, 13)
    expected = torch.stack([torch.autograd.functional.jacobian(model.next_state, row) for row in x])
    torch.testing.assert_close(_jacobian(model.next_state, x), expected)


def test_connected_components_match_scipy():
    """Algorithm 1 line 3 splits G1 u G2 into connected components: the label of every node
    is the smallest node index of its component, as scipy's graph search finds them."""
    generator = torch.Generator().manual_seed(0)
    for n_in, n_out, density in [(5, 4, 0.3), (40, 41, 0.03), (12, 11, 0.1), (3, 3, 0.0)]:
        adjacency = torch.rand(32, n_in, n_out, generator=generator) < density
        labels = _components(adjacency)
        for graph, label in zip(adjacency.numpy(), labels.numpy()):
            full = np.zeros((n_in + n_out,) * 2)
            full[:n_in, n_in:] = graph
            _, component = connected_components(csr_matrix(full), directed=False)
            smallest = {c: np.flatnonzero(component == c).min() for c in np.unique(component)}
            assert label.tolist() == [smallest[c] for c in component]


def test_causal_model_recovers_the_sparse_structure(toy_causal_model):
    generator = torch.Generator().manual_seed(1)
    held_out = toy_batch(2000, generator)
    graph = toy_causal_model.adjacency(held_out["obs"], held_out["action"], held_out["reward"])
    true = torch.zeros(6, 4, dtype=torch.bool)
    for output, parents in TOY_PARENTS.items():
        true[list(parents), output] = True
    found = graph[:, :, :4]
    assert found[:, true].all(), "a true dependence was missed"
    exact = (found == true).all(2).all(1).float().mean()
    assert exact >= 0.99, f"only {exact:.1%} of the local graphs are exactly the true structure"
    # The reward is discrete: it depends on (s0, a0) only near its steps, so only those may be its parents.
    reward_parents = graph[:, :, 4]
    assert not reward_parents[:, [1, 2, 3, 5]].any()
    assert reward_parents[:, [0, 4]].any()


def test_augmented_transitions_follow_the_true_dynamics(toy_causal_model):
    generator = torch.Generator().manual_seed(2)
    first, second = toy_batch(2000, generator), toy_batch(2000, generator)
    bounds = (-torch.ones(8), torch.ones(8))
    result = augment(toy_causal_model, first, second, bounds, generator, reward_tolerance=0.0)
    assert result.accepted >= 400   # about 1/3 of the pairs share the reward; most of those can swap
    new = result.transitions
    next_obs, reward = toy_step(new["obs"], new["action"])
    torch.testing.assert_close(new["next_obs"], next_obs, rtol=0, atol=1e-6)
    torch.testing.assert_close(new["reward"], reward, rtol=0, atol=0)
    # Every new transition is new: it differs from the one it was made from.
    assert len(torch.unique(torch.cat([new["obs"], new["action"]], 1), dim=0)) == result.accepted

    # Negative control: a model that sees no dependence at all swaps freely, and is wrong.
    blind = LocalCausalModel(TOY_LAYOUT, hidden=64, mask_threshold=math.inf)
    blind.load_state_dict(toy_causal_model.state_dict())
    wrong = augment(blind, first, second, bounds, generator, reward_tolerance=0.0).transitions
    assert (toy_step(wrong["obs"], wrong["action"])[0] - wrong["next_obs"]).abs().max() > 0.1


def test_inverse_dynamics_recovers_the_action():
    """s' = s + M a with an invertible M: p_xi(a | s, s') trained by Eq. 14 recovers a."""
    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    mixing = torch.randn(4, 6, generator=generator) / 2

    def batch(n):
        obs = torch.rand(n, 6, generator=generator) * 2 - 1
        action = torch.rand(n, 4, generator=generator) * 1.8 - 0.9
        return {"obs": obs, "action": action, "next_obs": obs + action @ mixing}

    empowerment = Empowerment(6, 4, hidden=64, beta=1.0)
    dummy = torch.zeros(256, 4)
    fit(empowerment.parameters(), lambda step: empowerment(batch(256), dummy, dummy, dummy[:, 0], torch.tensor(0.0))[1],
        steps=500, lr=3e-3)
    test = batch(1000)
    mean, _ = empowerment.inverse(torch.cat([test["obs"], test["next_obs"]], 1))
    error = (torch.tanh(mean) - test["action"]).abs()
    assert error.mean() < 0.05, f"inverse dynamics misses the action by {error.mean():.3f} on average"
    # Without training (or with a wrong loss) it does not.
    untrained = Empowerment(6, 4, hidden=64, beta=1.0)
    assert (torch.tanh(untrained.inverse(torch.cat([test["obs"], test["next_obs"]], 1))[0]) - test["action"]).abs().mean() > 0.3


def _value_target_inputs(signal, seed: int = 4):
    torch.manual_seed(seed)
    sac = SoftActorCritic(6, 3, SACConfig(hidden=32))
    generator = torch.Generator().manual_seed(seed)
    batch = {"obs": torch.randn(64, 6, generator=generator), "action": torch.rand(64, 3, generator=generator) * 2 - 1,
             "reward": torch.rand(64, generator=generator), "next_obs": torch.randn(64, 6, generator=generator),
             "terminated": torch.zeros(64)}
    with torch.no_grad():
        sac.log_alpha.fill_(math.log(0.3))
    state = generator.get_state()
    _, stats = sac.losses(batch, generator, signal)
    generator.set_state(state)   # replay the same policy sample by hand
    with torch.no_grad():
        action, pre_tanh, log_pi = sac.policy.sample(batch["obs"], generator)
        q = sac.q(batch["obs"], action, action)[1]   # the min of the twin heads at the policy's action
    return sac, batch, stats, action, pre_tanh, log_pi, q


def test_value_target_uses_empowerment_not_entropy():
    torch.manual_seed(5)
    empowerment = Empowerment(6, 3, hidden=32, beta=0.7)
    _, batch, stats, _, pre_tanh, log_pi, q = _value_target_inputs(empowerment)
    with torch.no_grad():
        mean, log_std = empowerment.inverse(torch.cat([batch["obs"], batch["next_obs"]], 1))
        log_p = tanh_gaussian_log_prob(pre_tanh, mean, log_std)
    # Eq. 11 with Eq. 12: Q + beta * log p_xi(a|s,s') - alpha * log pi(a|s).
    expected = (q + 0.7 * log_p - 0.3 * log_pi).mean()
    torch.testing.assert_close(stats["value_target"], expected)
    entropy_only = (q - 0.3 * log_pi).mean()
    assert abs(float(stats["value_target"] - entropy_only)) > 1e-3
    # Plain SAC (IMRL-E): the entropy term only.
    _, _, plain, _, _, log_pi, q = _value_target_inputs(None)
    torch.testing.assert_close(plain["value_target"], (q - 0.3 * log_pi).mean())


def test_value_target_uses_the_kl_signal():
    torch.manual_seed(6)
    signal = TransitionKL(6, 3, hidden=32, beta=0.5)
    signal.observe({"obs": torch.randn(100, 6), "next_obs": torch.randn(100, 6)})
    _, batch, stats, action, _, log_pi, q = _value_target_inputs(signal)
    mean, std = signal.moments.mean_std()
    obs = (batch["obs"] - mean) / std
    with torch.no_grad():
        cond_mean, cond_log_std = signal.conditioned(torch.cat([obs, action], 1))
        marg_mean, marg_log_std = signal.marginal(obs)
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(cond_mean, cond_log_std.exp()),
                                           torch.distributions.Normal(marg_mean, marg_log_std.exp())).sum(1)
    torch.testing.assert_close(stats["value_target"], (q + 0.5 * kl - 0.3 * log_pi).mean())


def test_threshold_is_monotone_and_capped():
    for schedule, rate in [("exponential", 0.5), ("exponential", 0.9), ("harmonic", 0.3)]:
        threshold = AdaptiveThreshold(sigma=1.0, schedule=schedule, rate=rate, every=10)
        values = [threshold(episodes, t_max=6.0) for episodes in range(2000)]
        assert values[0] == 1.0                                   # sigma / lambda_d with lambda_d = 1
        assert all(b >= a for a, b in zip(values, values[1:]))    # monotone
        assert max(values) == 6.0 and values[-1] == 6.0           # capped at T_max, and reaches it
    constant = AdaptiveThreshold(sigma=1.0, schedule="constant", rate=1.0, every=1)
    assert constant(10**6, t_max=6.0) == 1.0
    assert AdaptiveThreshold(sigma=1.0, schedule="exponential", rate=0.5, every=1)(0, t_max=0.5) == 0.5
    for bad in [dict(sigma=0.0), dict(rate=1.5), dict(schedule="linear"), dict(every=0)]:
        with pytest.raises(ValueError):
            AdaptiveThreshold(**{"sigma": 1.0, "schedule": "exponential", "rate": 0.5, "every": 1, **bad})


def _toy_agent(**params) -> IMRLAgent:
    space = gym.spaces.Box(-1.0, 1.0, (8,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    defaults = dict(hidden=32, model_hidden=32, batch_size=32, augment_after=0, mask_threshold=math.inf,
                    state_components=[2, 2, 2, 2], action_components=[2, 2], t_max=2.0)
    return IMRLAgent({**defaults, **params}, RunContext(seed=0, budget={"update_ratio": 1.0}),
                     space, action_space, n_envs=64)


def _observe(agent: IMRLAgent, batch: dict[str, torch.Tensor]) -> None:
    n = len(batch["obs"])
    agent.observe(batch["obs"].numpy(), batch["action"].numpy(), batch["reward"].numpy(), batch["next_obs"].numpy(),
                  np.zeros(n, bool), np.zeros(n, bool))


def test_no_augmentation_below_the_threshold():
    generator = torch.Generator().manual_seed(7)
    agent = _toy_agent(sigma=2.0)   # T = 2 from the start
    assert agent.current_threshold() == 2.0
    data = toy_batch(4000, generator)
    low = {name: value[data["reward"] < 2] for name, value in data.items()}
    high = {name: value[data["reward"] == 2] for name, value in data.items()}
    _observe(agent, low)
    assert agent.counters["augmented"] == 0 and agent.counters["proposed"] == 0
    assert agent.buffer.size == len(low["obs"])
    _observe(agent, high)   # positive control: the same agent augments rewards >= T
    assert agent.counters["augmented"] > 0
    assert agent.buffer.size == len(low["obs"]) + len(high["obs"]) + agent.counters["augmented"]
    assert agent.buffer.storage["real"][: agent.buffer.size].sum() == len(low["obs"]) + len(high["obs"])


def test_augmentation_switch_and_warm_up():
    generator = torch.Generator().manual_seed(8)
    data = toy_batch(2000, generator)
    for params in [dict(augmentation=False), dict(augment_after=10**9)]:
        agent = _toy_agent(sigma=1.0, **params)
        _observe(agent, data)
        assert agent.counters["augmented"] == 0 and agent.buffer.size == 2000


def test_update_runs_every_variant_and_counts_updates():
    generator = torch.Generator().manual_seed(9)
    for intrinsic in ("empowerment", "kl", "entropy"):
        agent = _toy_agent(intrinsic=intrinsic, mask_threshold=0.3)
        _observe(agent, toy_batch(64, generator))
        stats = agent.update()
        assert agent.counters["updates"] == 64 and all(math.isfinite(v) for v in stats.values())
        actions = agent.act(np.zeros((3, 8), np.float32), explore=False)
        assert actions.shape == (3, 4) and np.abs(actions).max() <= 1.0


def test_replay_buffer_grows_then_wraps():
    buffer = ReplayBuffer(3, 2, capacity=10, device=torch.device("cpu"), initial=4)
    for start in range(0, 14, 2):
        rows = torch.arange(start, start + 2, dtype=torch.float32)
        buffer.add({"obs": rows[:, None].expand(2, 3), "action": torch.zeros(2, 2), "reward": rows,
                    "next_obs": torch.zeros(2, 3), "terminated": torch.zeros(2)})
    assert buffer.size == 10 and buffer.added == 14
    assert sorted(buffer.storage["reward"].tolist()) == list(map(float, range(4, 14)))
    restored = pickle.loads(pickle.dumps(buffer))   # as a checkpoint stores it
    assert torch.equal(restored.data, buffer.data) and (restored.cursor, restored.added) == (buffer.cursor, 14)


def test_replay_buffer_checkpoint_holds_only_the_filled_rows():
    buffer = ReplayBuffer(3, 2, capacity=1000, device=torch.device("cpu"), initial=512)
    buffer.add({"obs": torch.ones(5, 3), "action": torch.zeros(5, 2), "reward": torch.arange(5.0),
                "next_obs": torch.zeros(5, 3), "terminated": torch.zeros(5)})
    assert len(pickle.dumps(buffer)) < 512 * buffer.data.shape[1] * 4 / 10
    restored = pickle.loads(pickle.dumps(buffer))
    assert restored.data.shape == buffer.data.shape and torch.equal(restored.data, buffer.data)


def test_registry_variants():
    expected = {"imrl": ("empowerment", True), "imrl-e": ("entropy", True), "imrl-a": ("empowerment", False),
                "imrl-kl": ("kl", True), "sac": ("entropy", False)}
    for name, (intrinsic, augmentation) in expected.items():
        spec = registry.method(name)
        assert spec.load(registry.OFFLINE) is IMRL and spec.load(registry.ONLINE) is IMRLAgent
        params = {**IMRL.defaults, **spec.defaults}
        assert (params["intrinsic"], params["augmentation"]) == (intrinsic, augmentation)


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="intrinsic"):
        _toy_agent(intrinsic="curiosity")
    with pytest.raises(ValueError, match="state_components"):
        _toy_agent(state_components=[2, 2])
    with pytest.raises(ValueError, match="continuous action interface"):
        IMRLAgent({}, RunContext(seed=0), gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(3), n_envs=1)
