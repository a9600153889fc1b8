"""IMRL: Intrinsically Motivated Reinforcement Learning with counterfactual data
augmentation (Chen et al.; paper Section III, Algorithm 2).

    Algorithm 2                                   here
    line 4   a_t ~ pi_phi(a_t | s_t)              IMRLAgent.act
    line 5-7 r_t, s_{t+1}; D <- D u {...}         IMRLAgent.observe
    line 8-9 if r_t >= T: Augmentation(D)         IMRLAgent._augment (Algorithm 1: causal.py)
    line 11  update T (Eq. 16)                    AdaptiveThreshold
    line 13-19 gradient steps on theta, psi,      IMRLAgent.update: SoftActorCritic.losses (sac.py)
             phi, xi, alpha                       with the intrinsic term (empowerment.py)

Variants (the ``intrinsic`` and ``augmentation`` parameters; registry.py names them):
imrl = empowerment + augmentation; imrl-e = entropy (plain SAC term) + augmentation;
imrl-a = empowerment, no augmentation; imrl-kl = KL signal + augmentation; sac = neither.

``IMRLAgent`` is the online agent (simulators). ``IMRL`` is the offline method: it builds
the offline environment from the split, trains an ``IMRLAgent`` on it, and ranks items
with the deterministic policy: the state of a user is the embedding of their last N
history items (plus user features), the action a vector in item-embedding space, and
item i scores E[i] . a, the environment's own continuous interface.

Budget (``RunContext.budget``): ``env_steps`` (offline: environment transitions to
collect, one per user step) and ``update_ratio`` (gradient updates per collected
transition, both settings). Checkpoints (imrl/checkpoint.py): the offline loop below and
the online runner save the whole agent, with its buffer and generators, and resume.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from imrl.agents.causal import Layout, LocalCausalModel, augment
from imrl.agents.empowerment import Empowerment, TransitionKL
from imrl.agents.sac import FusedAdam, ReplayBuffer, SACConfig, SoftActorCritic
from imrl.api import OfflineMethod, OnlineAgent, RunContext
from imrl.checkpoint import Checkpointer
from imrl.data.split import Split
from imrl.envs.environment import OfflineEnvironment
from imrl.envs.offline import last_items
from imrl.eval.selection import DEFAULT_EVERY, ValidationSelection, validation_metric

INTRINSIC = ("empowerment", "kl", "entropy")
DECAY_SCHEDULES = ("exponential", "harmonic", "constant")

DEFAULTS: dict[str, Any] = {
    # Soft Actor-Critic (sac.py); paper: hidden 256, lr 3e-4, gamma 0.99, buffer 1e6.
    "hidden": 256, "lr": 3e-4, "gamma": 0.99, "tau": 0.005, "batch_size": 256, "buffer_size": 1_000_000,
    "init_alpha": 1.0, "target_entropy": None,
    "random_steps": 1000,             # uniform random actions for the first transitions (SAC practice)
    # Variant switches.
    "intrinsic": "empowerment",       # "empowerment" (IMRL), "kl" (IMRL-KL), "entropy" (plain SAC term)
    "augmentation": True,
    "beta": 0.1,                      # weight of log p_xi (or of the KL) in Eq. 11 and 13
    # Local causal model and Algorithm 1 (causal.py).
    "model_hidden": 256, "mask_threshold": 0.3,
    "reward_tolerance": 0.0,          # |r1 - r2| allowed between the two transitions of a pair
    "augment_after": 500,             # causal-model updates before its graphs are trusted
    "pair_candidates": 32,            # replay draws searched for a partner with the same response
    # Adaptive threshold, Eq. 16.
    "sigma": 1.0, "decay_schedule": "exponential", "decay_rate": 0.5, "decay_every": 1000,
    "t_max": None,                    # None: the environment's (offline), else the largest reward seen (online)
    # Composition form for simulators: component sizes (None: derived from the spaces).
    "state_components": None, "action_components": None,
    # Offline training (IMRL): environment arguments, parallel users, transitions between progress logs.
    "env": {}, "n_envs": 16, "log_every": 5000,
}
BUDGET_DEFAULTS = {"env_steps": 20_000, "update_ratio": 0.25, "validate_every": DEFAULT_EVERY}
#: The offline method's (``IMRL``) departures from DEFAULTS, in settings the paper does not
#: fix. Rewards there are expected clicks (user model: ~0.02 for a random slate, at most 1)
#: or hits (replay: ~0.05 per step). init_alpha and tau were chosen on the replay
#: environment; beta, sigma and reward_tolerance on the validation split of the user-model
#: environment, with bench/tune_rl.py (METHODS.md, "Offline defaults: the search").
OFFLINE_DEFAULTS: dict[str, Any] = {
    **DEFAULTS,
    # alpha |log pi| (~20 nats for the 32-dim action) starts on the rewards' scale, not 400x
    # above it: Eq. 15 lowers log alpha by about lr per update, so 1.0 stays > 0.2 for 5000.
    "init_alpha": 0.01,
    # DDPG's slower target network: where s' = s, V(s) is its own bootstrap target, so its
    # errors compound at rate gamma; with 0.005, V(s0) is 6x its Monte-Carlo value after 40k steps.
    "tau": 0.001,
    # log p_xi(a | s, s') is a log-density over 32 dimensions, unbounded as the policy
    # narrows: at 0.1 (or 0.01) it outweighs the rewards and the policy collapses onto p_xi's mean.
    "beta": 0.003,
    # Eq. 16 on rewards in [0, 1]: T starts at 0.1 (a slate a few times better than random)
    # and doubles every decay_every episodes up to T_max = 1; at 1.0 no transition would
    # ever be informative, so the causal model would never be fitted.
    "sigma": 0.1,
    # Expected clicks are real numbers: a pair's responses match within 0.02, not exactly.
    "reward_tolerance": 0.02,
}


class AdaptiveThreshold:
    """Eq. 16: T = sigma / lambda_d if that is <= T_max, else T_max. The decay rate
    lambda_d in (0, 1] starts at 1 and shrinks as episodes pass, so T rises monotonically
    from sigma and stops at T_max. lambda_d after e episodes, with s = e // every (it
    changes once every `every` episodes, so that integer rewards meet whole thresholds):
    "exponential" rate**s (rate in (0, 1]); "harmonic" 1 / (1 + rate * s) (rate >= 0);
    "constant" 1."""

    def __init__(self, sigma: float, schedule: str, rate: float, every: int):
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0; got {sigma}")
        if schedule not in DECAY_SCHEDULES:
            raise ValueError(f"decay_schedule must be one of {DECAY_SCHEDULES}; got {schedule!r}")
        if schedule == "exponential" and not 0 < rate <= 1 or schedule == "harmonic" and not rate >= 0:
            raise ValueError(f"decay_rate {rate} is invalid for the {schedule} schedule (see AdaptiveThreshold)")
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"decay_every must be an integer >= 1; got {every!r}")
        self.sigma, self.schedule, self.rate, self.every = sigma, schedule, rate, every

    def decay(self, episodes: int) -> float:
        stage = episodes // self.every
        if self.schedule == "exponential":
            return self.rate ** stage
        if self.schedule == "harmonic":
            return 1.0 / (1.0 + self.rate * stage)
        return 1.0

    def __call__(self, episodes: int, t_max: float) -> float:
        decay = self.decay(episodes)
        threshold = self.sigma / decay if decay > 0 else math.inf
        return threshold if threshold <= t_max else t_max


def default_layout(observation_space: gym.Space, action_space: gym.spaces.Box,
                   state_sizes: list[int] | None, action_sizes: list[int] | None) -> Layout:
    """Composition form of a flat observation: the given sizes, else one component per
    row of a 2-d Box ([N, d]: N slots) or per entry of a 1-d Box; the action is one
    component unless sizes are given."""
    obs_dim = int(np.prod(observation_space.shape))
    if state_sizes is None:
        shape = observation_space.shape
        state_sizes = [int(np.prod(shape[1:]))] * shape[0] if len(shape) >= 2 else [1] * obs_dim
    if action_sizes is None:
        action_sizes = [int(np.prod(action_space.shape))]
    layout = Layout.from_sizes(list(state_sizes), list(action_sizes))
    if layout.obs_dim != obs_dim or layout.action_dim != int(np.prod(action_space.shape)):
        raise ValueError(f"state_components {state_sizes} / action_components {action_sizes} must sum to the "
                         f"observation size {obs_dim} / action size {int(np.prod(action_space.shape))}")
    return layout


class IMRLAgent(OnlineAgent):
    action_interface = "continuous"
    defaults = DEFAULTS

    def __init__(self, params: dict[str, Any], ctx: RunContext, observation_space: gym.Space,
                 action_space: gym.Space, n_envs: int, layout: Layout | None = None, t_max: float | None = None):
        super().__init__(params, ctx, observation_space, action_space, n_envs)
        p = self.params
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(f"IMRL needs a Box (vector) observation in composition form; got {observation_space}")
        if not isinstance(action_space, gym.spaces.Box) or not np.isfinite(action_space.low).all() \
                or not np.isfinite(action_space.high).all():
            raise ValueError(f"IMRL uses the continuous action interface: a bounded Box; got {action_space}")
        if p["intrinsic"] not in INTRINSIC:
            raise ValueError(f"intrinsic must be one of {INTRINSIC}; got {p['intrinsic']!r}")
        self.budget = {**BUDGET_DEFAULTS, **ctx.budget}
        if not self.budget["update_ratio"] >= 0:
            raise ValueError(f"budget update_ratio must be >= 0; got {self.budget['update_ratio']}")
        device = ctx.device
        self.layout = layout or default_layout(observation_space, action_space, p["state_components"],
                                               p["action_components"])
        obs_dim, action_dim = self.layout.obs_dim, self.layout.action_dim
        self.t_max = p["t_max"] if p["t_max"] is not None else t_max
        self.threshold = AdaptiveThreshold(p["sigma"], p["decay_schedule"], p["decay_rate"], p["decay_every"])
        self.action_low = torch.as_tensor(action_space.low, dtype=torch.float32, device=device).flatten()
        self.action_high = torch.as_tensor(action_space.high, dtype=torch.float32, device=device).flatten()
        self.obs_bounds = (torch.as_tensor(observation_space.low, dtype=torch.float32, device=device).flatten(),
                           torch.as_tensor(observation_space.high, dtype=torch.float32, device=device).flatten())

        # The networks: SAC (theta, psi, psi', phi, alpha), the intrinsic signal's (xi), the causal
        # model's; initialised from the run's seed whatever the global RNG holds.
        sac_config = SACConfig.from_params(p)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            self._build(p, sac_config, obs_dim, action_dim)
        self.optimizer = FusedAdam([w for w in self.networks.parameters() if w.requires_grad], sac_config.lr)
        self.buffer = ReplayBuffer(obs_dim, action_dim, sac_config.buffer_size, device)
        self.generators = {name: ctx.generator(offset) for offset, name in enumerate(("act", "update", "augment"), 1)}
        self.counters = {"transitions": 0, "episodes": 0, "updates": 0, "model_updates": 0, "pending_updates": 0.0,
                         "proposed": 0, "augmented": 0, "informative": 0, "max_reward": -math.inf}

    def _build(self, p: dict[str, Any], sac_config: SACConfig, obs_dim: int, action_dim: int) -> None:
        self.sac = SoftActorCritic(obs_dim, action_dim, sac_config)
        if p["intrinsic"] == "empowerment":
            self.signal = Empowerment(obs_dim, action_dim, sac_config.hidden, p["beta"])
        elif p["intrinsic"] == "kl":
            self.signal = TransitionKL(obs_dim, action_dim, sac_config.hidden, p["beta"])
            self.substitutes.append("IMRL-KL: the paper's KL-divergence signal is read as KL between Gaussian "
                                    "predictions of s' with and without the action (its reference is not given)")
        else:
            self.signal = None
        self.causal = LocalCausalModel(self.layout, p["model_hidden"], p["mask_threshold"]) if p["augmentation"] else None
        self.networks = nn.ModuleDict({name: module for name, module in
                                       [("sac", self.sac), ("signal", self.signal), ("causal", self.causal)]
                                       if module is not None}).to(self.ctx.device)

    # -- acting (Algorithm 2, line 4) -------------------------------------------------------
    def _tensor(self, x: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.ctx.device).reshape(len(x), -1)

    def _to_env(self, action: Tensor) -> np.ndarray:
        scaled = self.action_low + (action + 1.0) * 0.5 * (self.action_high - self.action_low)
        return scaled.clamp(self.action_low, self.action_high).reshape(-1, *self.action_space.shape).cpu().numpy()

    def _from_env(self, action: np.ndarray) -> Tensor:
        action = self._tensor(action)
        return ((action - self.action_low) / (self.action_high - self.action_low) * 2.0 - 1.0).clamp(-1.0, 1.0)

    @torch.no_grad()
    def policy_action(self, obs: Tensor) -> Tensor:
        """The deterministic policy's normalised action tanh(mu(s)) for observations [B, obs_dim]."""
        return self.sac.policy.deterministic(obs)

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        obs_t = self._tensor(obs)
        generator = self.generators["act"]
        if not explore:
            action = self.policy_action(obs_t)
        elif self.counters["transitions"] < self.params["random_steps"]:
            action = torch.rand(len(obs_t), self.layout.action_dim, generator=generator, device=obs_t.device) * 2 - 1
        else:
            action = self.sac.policy.sample(obs_t, generator)[0]
        return self._to_env(action)

    # -- transitions (Algorithm 2, lines 5-11) ----------------------------------------------------
    def current_threshold(self) -> float:
        t_max = self.t_max if self.t_max is not None else self.counters["max_reward"]
        return self.threshold(self.counters["episodes"], t_max)

    @torch.no_grad()
    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        batch = {"obs": self._tensor(obs), "action": self._from_env(actions),
                 "reward": torch.as_tensor(rewards, dtype=torch.float32, device=self.ctx.device).reshape(-1),
                 "next_obs": self._tensor(next_obs),
                 "terminated": torch.as_tensor(terminated, dtype=torch.float32, device=self.ctx.device).reshape(-1)}
        n = len(batch["obs"])
        self.counters["max_reward"] = max(self.counters["max_reward"], float(batch["reward"].max()))
        threshold = self.current_threshold()
        self.buffer.add(batch, real=True)                                         # line 7
        for module in (self.causal, self.signal):
            if hasattr(module, "observe"):
                module.observe(batch)
        self.counters["transitions"] += n
        if self.buffer.size >= self.sac.config.batch_size:
            self.counters["pending_updates"] += n * self.budget["update_ratio"]
        informative = batch["reward"] >= threshold                                # line 8
        self.counters["informative"] += int(informative.sum())
        if self.causal is not None and informative.any() and self.counters["model_updates"] >= self.params["augment_after"]:
            self._augment({name: value[informative] for name, value in batch.items()})   # line 9
        self.counters["episodes"] += int(np.sum(np.asarray(terminated) | np.asarray(truncated)))   # line 11

    def _augment(self, first: dict[str, Tensor]) -> None:
        """Algorithm 1 for each new informative transition tau1, with tau2 drawn from D among
        transitions that carry the same user response and termination."""
        generator, tolerance = self.generators["augment"], self.params["reward_tolerance"]
        candidates = torch.randint(0, self.buffer.size, (len(first["obs"]), self.params["pair_candidates"]),
                                   generator=generator, device=self.ctx.device)
        storage = self.buffer.storage
        match = (((storage["reward"][candidates] - first["reward"][:, None]).abs() <= tolerance)
                 & (storage["terminated"][candidates] == first["terminated"][:, None]))
        has_partner = match.any(1)
        if not has_partner.any():
            return
        partner = candidates.gather(1, match.float().argmax(1, keepdim=True)).squeeze(1)[has_partner]
        first = {name: value[has_partner] for name, value in first.items()}
        second = self.buffer.rows(partner)
        result = augment(self.causal, first, second, self.obs_bounds, generator, tolerance)
        self.counters["proposed"] += result.proposed
        if result.accepted:
            if not self.counters["augmented"]:   # the first ones: say so in the run's log (online runs log nothing else)
                self.ctx.log(f"IMRL: counterfactual augmentation started: {result.accepted} transitions added after "
                             f"{self.counters['model_updates']} causal-model updates")
            self.buffer.add(result.transitions, real=False)                         # Algorithm 1, line 8
        self.counters["augmented"] += result.accepted

    # -- gradient steps (Algorithm 2, lines 13-19) ---------------------------------------------
    def gradient_step(self) -> dict[str, Tensor]:
        generator = self.generators["update"]
        index = torch.randint(0, self.buffer.size, (self.sac.config.batch_size,), generator=generator,
                              device=self.ctx.device)
        batch = self.buffer.rows(index)
        total, stats = self.sac.losses(batch, generator, self.signal)            # lines 14-18 (Eq. 10-15)
        if self.causal is not None:
            # The causal model is only asked about informative transitions (r >= T), so it is
            # fitted on those, and on real ones only (never on its own counterfactuals).
            fitted = batch["real"] * (batch["reward"] >= self.current_threshold())
            model_loss = (self.causal.loss(batch) * fitted).sum() / fitted.sum().clamp(min=1.0)
            total = total + model_loss
            stats["model_loss"] = model_loss.detach()
            self.counters["model_updates"] += bool(fitted.any())
        self.optimizer.zero_grad()
        total.backward()
        self.optimizer.step()
        self.sac.update_value_target()                                            # psi' <- lambda psi + (1-lambda) psi'
        self.counters["updates"] += 1
        return stats

    def update(self) -> dict[str, float]:
        steps = int(self.counters["pending_updates"])
        self.counters["pending_updates"] -= steps
        totals: dict[str, float] = {}
        for _ in range(steps):
            for name, value in self.gradient_step().items():
                totals[name] = totals.get(name, 0.0) + float(value)
        diagnostics = {name: value / steps for name, value in totals.items()}
        if steps:
            diagnostics.update(threshold=self.current_threshold(), augmented=float(self.counters["augmented"]))
        return diagnostics


class IMRL(OfflineMethod):
    """IMRL on an offline dataset: trains in the run's offline environment
    (``ctx.environment``: the user model by the workflow's default, else log replay) and
    ranks with the deterministic policy, the one with the best validation recall@20 among
    those seen every ``validate_every`` updates (imrl/eval/selection.py).
    ``params["env"]`` are the environment's arguments (imrl/envs/environment.py). Its
    defaults are OFFLINE_DEFAULTS: smaller init_alpha, tau, beta and sigma than the online
    agent's, and a reward tolerance for counterfactual pairs."""

    defaults = OFFLINE_DEFAULTS

    def fit(self, split: Split) -> None:
        p, ctx = self.params, self.ctx
        environment = ctx.environment or OfflineEnvironment()
        env = environment.make(split, p["n_envs"], "continuous", "vector", seed=None, device=ctx.device, **p["env"])
        self.split, self.setup = split, env.setup
        sizes = [part.stop - part.start for part in env.components.values()]   # history slots, user features
        layout = Layout.from_sizes(sizes, [env.setup.embedding_dim])
        self.agent = IMRLAgent(p, ctx, env.single_observation_space, env.single_action_space, p["n_envs"],
                               layout=layout, t_max=float(env.setup.max_reward))
        self.substitutes = self.agent.substitutes
        self.item_matrix = torch.from_numpy(env.setup.item_embeddings).to(ctx.device).T.contiguous()   # [d, n_items]

        budget = {**BUDGET_DEFAULTS, **ctx.budget}
        total_steps = math.ceil(budget["env_steps"] / p["n_envs"])                # batched steps
        log_steps = max(1, p["log_every"] // p["n_envs"])
        checkpoint = Checkpointer(ctx, "offline", type(self))
        saved = checkpoint.restore()
        if saved is None:
            loop = {"done": 0, "returns": 0.0, "selection": ValidationSelection(budget["validate_every"])}
            obs, _ = env.reset(seed=ctx.seed)
        else:
            self.agent, loop, obs = saved["agent"], saved["loop"], saved["obs"]
            env.load_state_dict(saved["env"])
        selection = loop["selection"]
        with tqdm(total=total_steps, initial=loop["done"], disable=not ctx.progress, desc="IMRL fit") as bar:
            while loop["done"] < total_steps:
                actions = self.agent.act(obs, explore=True)
                next_obs, rewards, terminated, truncated, info = env.step(actions)
                self.agent.observe(obs, actions, rewards, info["final_obs"], terminated, truncated)
                self.agent.update()
                obs = next_obs
                loop["done"] += 1
                loop["returns"] += float(rewards.sum())
                bar.update(1)
                if selection.due(self.agent.counters["updates"]):
                    self._validate(selection)
                if loop["done"] % log_steps == 0 or loop["done"] == total_steps:
                    self._log_progress(loop, (loop["done"] - 1) % log_steps + 1)
                if loop["done"] < total_steps and checkpoint.due():
                    checkpoint.save({"where": f"{loop['done'] * p['n_envs']} transitions", "agent": self.agent,
                                     "loop": loop, "env": env.state_dict(), "obs": obs})
        self._validate(selection)   # the last policy is a candidate too
        self.agent.sac.policy.load_state_dict(selection.best_state)
        self.diagnostics = {"environment": environment.describe(), "validation_selection": selection.summary()}

    def _validate(self, selection: ValidationSelection) -> None:
        policy = self.agent.sac.policy
        value = validation_metric(lambda users: self.score(users, "valid"), self.split, selection.metric,
                                  self.ctx.device, [self.agent.networks])
        selection.record(self.agent.counters["updates"], value, lambda: copy.deepcopy(policy.state_dict()))

    def _log_progress(self, loop: dict[str, Any], steps: int) -> None:
        """The mean reward of the last `steps` batched steps, the threshold, the counters."""
        counters, n_envs = self.agent.counters, self.params["n_envs"]
        self.ctx.log(f"IMRL {loop['done'] * n_envs} transitions: mean reward {loop['returns'] / (steps * n_envs):.3f}, "
                     f"T={self.agent.current_threshold():.2f}, augmented {counters['augmented']}, "
                     f"updates {counters['updates']}")
        loop["returns"] = 0.0

    @torch.no_grad()
    def score(self, users: torch.Tensor, phase: str) -> torch.Tensor:
        users_np = users.cpu().numpy()
        indptr, items = self.split.history(phase)
        windows = last_items(indptr, items, users_np, self.setup.history_len, self.setup.n_items)
        obs = torch.from_numpy(self.setup.observe(users_np, windows)).to(self.ctx.device)
        return self.agent.policy_action(obs) @ self.item_matrix                   # E[i] . a for every item
