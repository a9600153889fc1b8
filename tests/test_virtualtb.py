"""VirtualTB: the project's networks load upstream-shaped state dicts (random networks of
the same shapes here: the real weights are not redistributable), the batched
environment and its episodes, and a learning agent against random."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from imrl.envs.simulators import InvalidActionError
from imrl.envs.virtualtb import (WEIGHT_FILES, VirtualTB, VirtualTBNetworks, discrete_action_set, make_one_user,
                                 observation_space)
from simulator_helpers import EpsilonGreedyBandit, learned_and_random_ctr

# The keys and shapes of the upstream files (virtualTB/data/*.pt at the pinned commit).
UPSTREAM_LAYOUT = {
    "generator_model.pt": {"0.weight": (128, 128), "0.bias": (128,), "2.weight": (88, 128), "2.bias": (88,)},
    "action_model.pt": {"0.weight": (128, 116), "0.bias": (128,), "2.weight": (256, 128), "2.bias": (256,),
                        "4.weight": (21, 256), "4.bias": (21,)},
    "leave_model.pt": {"0.weight": (128, 88), "0.bias": (128,), "2.weight": (256, 128), "2.bias": (256,),
                       "4.weight": (101, 256), "4.bias": (101,)},
}


def random_networks(seed: int = 0) -> VirtualTBNetworks:
    """Random networks of the upstream shapes, made to behave like VirtualTB: the action
    matters, few clicks, short visits."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        networks = VirtualTBNetworks()
    with torch.no_grad():
        for layer in networks.click_model[::2]:
            layer.weight.mul_(4.0)
        networks.click_model[-1].bias[:11] -= 0.5 * torch.arange(11)
        networks.leave_model[-1].bias -= 0.15 * torch.arange(101)
    return networks


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """Random networks saved as the upstream files are: legacy (pre-1.6) torch pickles."""
    directory = tmp_path_factory.mktemp("virtualtb")
    networks = random_networks()
    for attribute, name in VirtualTBNetworks.FILES.items():
        torch.save(getattr(networks, attribute).state_dict(), directory / name, _use_new_zipfile_serialization=False)
    return directory


@pytest.fixture(scope="module")
def networks(weights_dir):
    return VirtualTBNetworks.load(weights_dir, verify_sha256=False)


def test_networks_have_the_upstream_layout_and_load_with_weights_only(weights_dir, networks):
    for attribute, name in VirtualTBNetworks.FILES.items():
        state = torch.load(weights_dir / name, weights_only=True)
        assert {key: tuple(value.shape) for key, value in state.items()} == UPSTREAM_LAYOUT[name]
        for key, value in getattr(networks, attribute).state_dict().items():
            assert torch.equal(value, state[key])
    assert set(WEIGHT_FILES) == set(UPSTREAM_LAYOUT)


def test_split_first_layer_is_the_click_model(networks):
    profile = torch.zeros(5, 88)
    profile[:, :11] = 1.0
    page, action = torch.arange(5.0), torch.rand(5, 27) * 2 - 1
    whole = networks.click_model(torch.cat([profile, page[:, None], action], dim=1))
    split = networks.click_logits(networks.click_user_term(profile), page, action)
    assert torch.allclose(whole, split, atol=1e-5)


def test_missing_damaged_or_wrong_weights_fail_clearly(tmp_path, weights_dir):
    with pytest.raises(FileNotFoundError) as missing:
        VirtualTB(1, weights_dir=tmp_path)
    message = str(missing.value)
    assert str(tmp_path) in message and "workflow downloads them" in message
    for name, (_, sha) in WEIGHT_FILES.items():
        assert f"VirtualTaobao/ff4f1cce83c824b9542ccd81300672cc81bdec7a/virtualTB/data/{name}" in message and sha in message
    with pytest.raises(ValueError, match=f"{weights_dir}: generator_model.pt: size mismatch: expected 112,180"):
        VirtualTB(1, weights_dir=weights_dir)   # random networks are not the pinned files
    for name in WEIGHT_FILES:
        (tmp_path / name).write_bytes((weights_dir / name).read_bytes())
    torch.save({"0.weight": torch.zeros(3, 3)}, tmp_path / "leave_model.pt")
    with pytest.raises(ValueError, match=r"leave_model.pt: not a VirtualTB leave_model state dict; expected tensors"):
        VirtualTBNetworks.load(tmp_path, verify_sha256=False)
    assert hashlib.sha256((tmp_path / "action_model.pt").read_bytes()).hexdigest() != WEIGHT_FILES["action_model.pt"][1]


@pytest.mark.parametrize("interface", ["continuous", "discrete"])
def test_gymnasium_check_env(networks, interface):
    check_env(make_one_user(interface, networks=networks), skip_render_check=True)


def test_episodes_end_with_the_leaving_users_own_observation(networks):
    env = VirtualTB(32, "continuous", networks=networks)
    obs, _ = env.reset(seed=1)
    space, rng, ended = observation_space(), np.random.default_rng(0), 0
    assert (obs[:, 88:] == 0).all() and (obs[:, :88].sum(axis=1) == 11).all()   # one category per attribute group
    for _ in range(40):
        leave_page = env.leave_page.numpy().copy()
        previous = obs
        obs, rewards, terminated, truncated, infos = env.step(rng.uniform(-1, 1, (32, 27)).astype(np.float32))
        final = infos["final_obs"]
        assert all(row in space for row in obs) and all(row in space for row in final)
        assert np.array_equal(final[:, :88], previous[:, :88])           # still the same user
        assert np.array_equal(final[:, 88], rewards) and np.array_equal(infos["clicks"], rewards)
        assert np.array_equal(final[:, 90], previous[:, 90] + 1)         # page counter
        assert np.array_equal(terminated, final[:, 90] >= np.maximum(leave_page, 1))
        assert (obs[terminated, 88:] == 0).all() and not truncated.any()
        assert (infos["impressions"] == 10).all()
        ended += int(terminated.sum())
    assert ended > 32


def test_own_generator_seeds_and_discrete_set(networks):
    global_state = torch.random.get_rng_state()
    actions = discrete_action_set(100)
    assert actions.shape == (100, 27) and np.abs(actions).max() <= 1 and np.array_equal(actions, discrete_action_set(100))
    runs = {}
    for interface, seed in (("discrete", 3), ("continuous", 3), ("discrete", 4)):
        env = VirtualTB(8, interface, networks=networks, n_discrete_actions=100)
        trajectory = [env.reset(seed=seed)[0]]
        for step in range(20):
            index = np.full(8, step % 100)
            trajectory.append(env.step(index if interface == "discrete" else actions[index])[0])
        runs[interface, seed] = np.stack(trajectory)
    assert torch.equal(global_state, torch.random.get_rng_state())   # the global RNG is untouched
    assert np.array_equal(runs["discrete", 3], runs["continuous", 3])  # discrete k = weight vector k
    assert not np.array_equal(runs["discrete", 3], runs["discrete", 4])


def test_invalid_actions_fail_clearly(networks):
    env = VirtualTB(2, "continuous", networks=networks)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=r"shape \(2, 27\)"):
        env.step(np.zeros((2, 26), dtype=np.float32))
    with pytest.raises(InvalidActionError, match="user 1 has 1.5"):
        env.step(np.stack([np.zeros(27), np.full(27, 1.5)]).astype(np.float32))
    with pytest.raises(InvalidActionError, match="finite scores"):
        env.step(np.full((2, 27), np.inf, dtype=np.float32))
    discrete = VirtualTB(2, "discrete", networks=networks, n_discrete_actions=10)
    discrete.reset(seed=0)
    with pytest.raises(InvalidActionError, match=r"integers in \[0, 10\)"):
        discrete.step(np.array([3, 10]))


def test_a_bandit_learns_to_beat_random(networks):
    # Ten fixed weight vectors: with these networks the best gives about 1.3x the clicks of a random one.
    learned, random = learned_and_random_ctr("virtualtb", EpsilonGreedyBandit, episodes=200, n_envs=32,
                                             test_episodes=64,
                                             simulator_params={"networks": networks, "n_discrete_actions": 10})
    assert learned > 1.2 * random, (learned, random)
