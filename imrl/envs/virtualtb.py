"""VirtualTB (Virtual Taobao: Shi et al., AAAI 2019; eyounx/VirtualTaobao), batched.

Three small networks, trained by the authors with GAIL on Taobao logs, are the users:

- user generator: z ~ U(0, 1)^128 -> Linear(128, 128), LeakyReLU, Linear(128, 88) ->
  11 attribute groups (sizes 8, 8, 11, 11, 11, 11, 2, 2, 3, 18, 3); from the softmax of
  each group one category is drawn: an 88-dim one-hot profile;
- leave model: profile -> Linear(88, 128), LeakyReLU, Linear(128, 256), LeakyReLU,
  Linear(256, 101) -> softmax -> the number of pages L in 0..100 the user will see;
- click ("action") model: [profile, page index, action (27)] -> Linear(116, 128),
  LeakyReLU, Linear(128, 256), LeakyReLU, Linear(256, 21): the softmax of the first 11
  outputs gives the clicks c in 0..10 on the page of 10 items, the softmax of the last 10
  a second response b in 0..9 (observed, meaning undocumented upstream).

Step: the agent sends a weight vector over the 27 item features (the platform ranks
items by it and shows the top 10); c and b are drawn at page index p (0 on the first
page); reward c; p += 1; the episode ends when p >= L (so after at least one page).
Observation (float32, 91): [profile (88) | c | b | p], [profile, 0, 0, 0] after reset.
CTR = total clicks / (10 x total pages).

Differences from the upstream environment, on purpose: N users at once; its own
``torch.Generator`` (upstream: the global one); the final observation of an episode is
the leaving user's (upstream swaps in the next user first); the observation space is
the one of the values returned (upstream declares int32 with c <= 29); actions outside
[-1, 1] are rejected (upstream feeds them to the network).

Every categorical draw is argmax(logits + G), G = -log(-log U) Gumbel noise with U
uniform from the generator (the Gumbel-max trick: a draw from softmax(logits), as
upstream's ``multinomial``), one noise tensor for all groups or heads of a network.
Users do not depend on the agent, so they are generated ``USER_BATCH`` at a time. The
random stream therefore differs from upstream's; the distributions are the same
(SIMULATORS.md gives a comparison with the upstream code on the real weights).

The weights are not redistributable (the repository has no licence); the workflow
downloads them from the pinned commit and checks their sha256 (``WEIGHT_FILES``). Like a
dataset's files, each can come from a mirror or a local copy instead, with checksum pins
of its own: ``simulators.virtualtb.params.files.<file>.{url, path, sha256, ...}`` (read
by the download rule, and by ``make``, which checks the loaded files against those pins).
The project's own modules load them with ``torch.load(weights_only=True)``.

Actions: "continuous" = the 27-dim weight vector in [-1, 1]; "discrete" = an index into
a fixed set of ``n_discrete_actions`` weight vectors drawn uniformly from [-1, 1]^27 with
numpy's ``default_rng(DISCRETE_ACTION_SEED)``, the same for every run and method
(``discrete_action_set``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from imrl.data import sources
from imrl.data.download import VerificationError, verify
from imrl.data.sources import VIRTUALTB
from imrl.envs.simulators import BatchedSimulator, OneUserEnv

ATTRIBUTE_GROUPS = (8, 8, 11, 11, 11, 11, 2, 2, 3, 18, 3)
PROFILE_DIM = sum(ATTRIBUTE_GROUPS)   # 88
NOISE_DIM = 128
ACTION_DIM = 27                       # item features weighted by the agent
ITEMS_PER_PAGE = 10
MAX_CLICKS = 10                       # clicks on a page: 0..10
SECOND_RESPONSES = 10                 # b: 0..9
MAX_PAGES = 100                       # leave page: 0..100
DISCRETE_ACTION_SEED = 27

#: file -> (bytes, sha256) of the upstream weights, and where to get them: the one
#: source registry (imrl/data/sources.py) pins them at the upstream commit.
WEIGHT_FILES = {f.name: (f.checksums.size, f.checksums.sha256) for f in VIRTUALTB.variant().files}
WEIGHT_URLS = {f.name: f.urls[0] for f in VIRTUALTB.variant().files}
DEFAULT_WEIGHTS_DIR = Path("data/raw/virtualtb")


def mlp(*sizes: int) -> nn.Sequential:
    """Linear layers with LeakyReLU between them; state-dict keys 0.*, 2.*, 4.* as upstream."""
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if index:
            layers.append(nn.LeakyReLU())
        layers.append(nn.Linear(fan_in, fan_out))
    return nn.Sequential(*layers)


class VirtualTBNetworks(nn.Module):
    """The three networks; each loads the state dict of one upstream file."""

    FILES = {"user_generator": "generator_model.pt", "click_model": "action_model.pt",
             "leave_model": "leave_model.pt"}

    def __init__(self):
        super().__init__()
        self.user_generator = mlp(NOISE_DIM, 128, PROFILE_DIM)
        self.click_model = mlp(PROFILE_DIM + 1 + ACTION_DIM, 128, 256, MAX_CLICKS + 1 + SECOND_RESPONSES)
        self.leave_model = mlp(PROFILE_DIM, 128, 256, MAX_PAGES + 1)

    def click_user_term(self, profile: torch.Tensor) -> torch.Tensor:
        """The profile's part of the click model's first layer, plus its bias (fixed for a
        user's whole episode, so computed once)."""
        first = self.click_model[0]
        return profile @ first.weight[:, :PROFILE_DIM].T + first.bias

    def click_logits(self, user_term: torch.Tensor, page: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """click_model([profile, page, action]), its first layer split as
        W [profile; page; action] + b = (W_profile profile + b) + W_page page + W_action action."""
        first = self.click_model[0]
        hidden = torch.addmm(user_term + page[:, None] * first.weight[:, PROFILE_DIM],
                             action, first.weight[:, PROFILE_DIM + 1:].T)
        return self.click_model[1:](hidden)

    @classmethod
    def load(cls, weights_dir: str | Path = DEFAULT_WEIGHTS_DIR, verify_sha256: bool = True,
             files: Mapping[str, Any] | None = None) -> "VirtualTBNetworks":
        """The three networks from `weights_dir`; with `verify_sha256`, each file is first
        checked against the registry's checksums, or the config's pins in `files`."""
        weights_dir = Path(weights_dir)
        missing = [name for name in cls.FILES.values() if not (weights_dir / name).is_file()]
        if missing:
            raise FileNotFoundError(missing_weights_message(weights_dir, missing))
        networks = cls()
        for attribute, name in cls.FILES.items():
            path = weights_dir / name
            if verify_sha256:
                try:
                    verify(path, sources.expected_checksums(sources.remote_file("virtualtb", name), {"files": files}))
                except VerificationError as error:
                    raise ValueError(f"{weights_dir}: {error} (a different or damaged file; download it again from "
                                     f"{WEIGHT_URLS[name]}, or pin this copy's checksums in "
                                     f"simulators.virtualtb.params.files.{name})") from None
            state = torch.load(path, map_location="cpu", weights_only=True)
            try:
                getattr(networks, attribute).load_state_dict(state)
            except (RuntimeError, AttributeError) as error:
                expected = {k: tuple(v.shape) for k, v in getattr(networks, attribute).state_dict().items()}
                raise ValueError(f"{path}: not a VirtualTB {attribute} state dict; expected tensors "
                                 f"{expected} ({error})") from error
        return networks

    def save(self, weights_dir: str | Path) -> None:
        """Write the three state dicts as the upstream files (tests use random networks)."""
        weights_dir = Path(weights_dir)
        weights_dir.mkdir(parents=True, exist_ok=True)
        for attribute, name in self.FILES.items():
            torch.save(getattr(self, attribute).state_dict(), weights_dir / name)


def missing_weights_message(weights_dir: Path, missing: list[str]) -> str:
    lines = [f"VirtualTB weights missing in {weights_dir}: {', '.join(missing)}.",
             "They are not shipped with imrl-bench (the upstream repository has no licence to redistribute "
             "them); the workflow downloads them. To get them by hand, download into that directory:"]
    lines += [f"  {WEIGHT_URLS[name]}  (sha256 {sha})" for name, (_, sha) in WEIGHT_FILES.items()]
    lines.append("or set simulators.virtualtb.params.files.<file>.url (a mirror) or .path (a local copy), "
                 "or pass weights_dir=<directory holding the three files>.")
    return "\n".join(lines)


def discrete_action_set(n: int = 100) -> np.ndarray:
    """The fixed weight vectors of the discrete interface: [n, 27] float32 in [-1, 1]."""
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"virtualtb: n_discrete_actions must be a positive integer, got {n!r}")
    return np.random.default_rng(DISCRETE_ACTION_SEED).uniform(-1.0, 1.0, (n, ACTION_DIM)).astype(np.float32)


def observation_space() -> gym.spaces.Box:
    high = np.concatenate([np.ones(PROFILE_DIM), [MAX_CLICKS, SECOND_RESPONSES - 1, MAX_PAGES]])
    return gym.spaces.Box(np.zeros_like(high, dtype=np.float32), high.astype(np.float32), dtype=np.float32)


class VirtualTB(BatchedSimulator):
    """N VirtualTB users. `networks` (already built) wins over `weights_dir`."""

    name = "virtualtb"
    USER_BATCH = 256   # users generated at a time

    def __init__(self, num_envs: int = 1, action_interface: str = "continuous",
                 weights_dir: str | Path = DEFAULT_WEIGHTS_DIR, networks: VirtualTBNetworks | None = None,
                 n_discrete_actions: int = 100, verify_sha256: bool = True, device: str | torch.device = "cpu",
                 files: Mapping[str, Any] | None = None):
        self.action_set = discrete_action_set(n_discrete_actions)
        super().__init__(num_envs, action_interface, observation_space(), ACTION_DIM,
                         gym.spaces.Discrete(n_discrete_actions))
        self.device = torch.device(device)
        if networks is None:
            networks = VirtualTBNetworks.load(weights_dir, verify_sha256, files)
        self.networks = networks.to(self.device).eval().requires_grad_(False)
        n = self.num_envs
        self.profile = torch.zeros((n, PROFILE_DIM), device=self.device)
        self.user_term = torch.zeros((n, self.networks.click_model[0].out_features), device=self.device)
        self.leave_page = torch.zeros(n, dtype=torch.long, device=self.device)
        self.page = torch.zeros(n, dtype=torch.long, device=self.device)
        self.response = torch.zeros((n, 2), device=self.device)   # c and b of the last page
        self._all_index = torch.as_tensor(self._all, device=self.device)
        # Group g's members as indices into the logits, padded with PROFILE_DIM (a -inf column).
        offsets = np.cumsum((0,) + ATTRIBUTE_GROUPS[:-1])
        members = np.full((len(ATTRIBUTE_GROUPS), max(ATTRIBUTE_GROUPS)), PROFILE_DIM)
        for group, (offset, size) in enumerate(zip(offsets, ATTRIBUTE_GROUPS)):
            members[group, :size] = np.arange(offset, offset + size)
        self._group_members = torch.as_tensor(members, device=self.device)
        self._group_offsets = torch.as_tensor(offsets, device=self.device)

    def _seed(self, seed: int) -> None:
        self._generator = torch.Generator(device=self.device).manual_seed(seed)
        self._pool_profile = torch.zeros((0, PROFILE_DIM), device=self.device)
        self._pool_leave = torch.zeros(0, dtype=torch.long, device=self.device)

    def _gumbel(self, shape: tuple[int, ...]) -> torch.Tensor:
        """-log(-log U): argmax(logits + this) is a draw from softmax(logits)."""
        return torch.rand(shape, generator=self._generator, device=self.device).log_().neg_().log_().neg_()

    @torch.no_grad()
    def _generate_users(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` new users: profiles and leave pages."""
        logits = self.networks.user_generator(torch.rand((n, NOISE_DIM), generator=self._generator,
                                                         device=self.device))
        # One category per attribute group: argmax of logits + Gumbel noise within the group,
        # all groups at once through a padded view.
        noisy = torch.cat([logits + self._gumbel(logits.shape), torch.full((n, 1), -torch.inf, device=self.device)], 1)
        profile = torch.zeros((n, PROFILE_DIM), device=self.device)
        profile.scatter_(1, noisy[:, self._group_members].argmax(dim=2) + self._group_offsets, 1.0)
        leave_logits = self.networks.leave_model(profile)
        return profile, (leave_logits + self._gumbel(leave_logits.shape)).argmax(dim=1)

    @torch.no_grad()
    def _start(self, slots: np.ndarray) -> np.ndarray:
        n = len(slots)
        if len(self._pool_leave) < n:   # users do not depend on the agent: make them in batches
            profile, leave = self._generate_users(max(n, self.USER_BATCH))
            self._pool_profile = torch.cat([self._pool_profile, profile])
            self._pool_leave = torch.cat([self._pool_leave, leave])
        index = torch.as_tensor(slots, device=self.device)
        self.profile[index], self._pool_profile = self._pool_profile[:n], self._pool_profile[n:]
        self.user_term[index] = self.networks.click_user_term(self.profile[index])
        self.leave_page[index], self._pool_leave = self._pool_leave[:n], self._pool_leave[n:]
        self.page[index] = 0
        self.response[index] = 0.0
        return self._observe(index)

    def _observe(self, index: torch.Tensor) -> np.ndarray:
        obs = torch.cat([self.profile[index], self.response[index], self.page[index, None].float()], dim=1)
        return obs.cpu().numpy()

    @torch.no_grad()
    def _step(self, actions: np.ndarray):
        weights = self.action_set[actions] if self.action_interface == "discrete" else actions
        weights = torch.as_tensor(weights, dtype=torch.float32, device=self.device)
        out = self.networks.click_logits(self.user_term, self.page.float(), weights)
        out += self._gumbel(out.shape)   # then argmax within each head: draws from the two softmaxes
        clicks = out[:, :MAX_CLICKS + 1].argmax(dim=1)
        self.response = torch.stack([clicks, out[:, MAX_CLICKS + 1:].argmax(dim=1)], dim=1).float()
        self.page += 1
        terminated = (self.page >= self.leave_page).cpu().numpy()
        clicks = clicks.cpu().numpy()
        info = {"clicks": clicks, "impressions": np.full(self.num_envs, ITEMS_PER_PAGE)}
        return self._observe(self._all_index), clicks.astype(np.float64), terminated, info


def make(num_envs: int = 1, action_interface: str = "continuous", **params: Any) -> VirtualTB:
    """The registry's factory (params: weights_dir, n_discrete_actions, verify_sha256, device,
    and files: the download's per-file mirror, local path and checksum pins)."""
    sources.check_params("virtualtb", {"files": params.get("files")}, where="simulators.virtualtb.params")
    return VirtualTB(num_envs, action_interface, **params)


def make_one_user(action_interface: str = "continuous", **params: Any) -> OneUserEnv:
    return OneUserEnv(VirtualTB(1, action_interface, **params))
