"""RecoGym environment v1 (Rohde et al. 2018, criteo-research/reco-gym), batched.

The user model of recogym's ``RecoEnv1`` with its default ``env_1_args``, for N users:

- products: organic embeddings Gamma (P x K) ~ N(0, 1) and popularity offsets
  mu (P) ~ N(0, 3^2), drawn once per seed; the bandit ones are the same (no "flips");
- user: latent omega ~ N(0, I_K); a Markov chain over organic / bandit / leave:
  organic -> bandit 0.25, organic -> leave 0.01, bandit -> organic 0.05,
  bandit -> leave 0.01 (the original uses its prob_leave_organic for both states);
  whenever the chain lands on "organic", omega ~ N(omega, 0.1^2 I);
- organic state: the user views product v ~ softmax(Gamma omega + mu), then moves on;
- bandit state: the agent shows one product a; click ~ Bernoulli(f(Gamma_a omega + mu_a))
  with f(x) = s(5 s(2 s(0.3 x) - 2) - 6), s the logistic function (CTR about 1%); after
  a click the user goes back to organic, whatever the chain drew (also "leave").

An episode is one user's timeline; a step is one bandit impression; the reward is the
click. A new user starts with organic sessions up to the first bandit state; one that
leaves before any impression is skipped (the original returns done on its first step).

Same ``random_seed`` (here: ``product_seed`` and the reset seed), one user: the same
trajectory as the original (tests/test_recogym.py). The original draws everything from
one ``np.random.RandomState(random_seed)`` (restarted after the product parameters); so
do we, in the same order, with N users served in slot order at each stage of a step.

Observation (float32, 2P): [product views in the organic sessions since the last
impression (P) | product views of this user so far (P)]. Actions: "discrete" = the
product id (Discrete(P)); "continuous" = a score per product in [-1, 1]^P (the
candidates' features are one-hot product ids), the best-scoring product is shown (ties:
lower id).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from imrl.envs.simulators import BatchedSimulator, OneUserEnv

ORGANIC, BANDIT, LEAVE = 0, 1, 2


def _logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


def click_probability(x: np.ndarray) -> np.ndarray:
    """f of the original (its magic numbers give a CTR of about 1%)."""
    return _logistic(5 * _logistic(2 * _logistic(0.3 * x) - 2) - 6)


class RecoGym(BatchedSimulator):
    """N users of RecoGym v1, all with the same products.

    The products come from `product_seed` and the users from the seed given to reset, so
    that a training and a test simulator (different seeds) share their products; the
    original draws both from its one `random_seed`: product_seed=None (or equal to the
    reset seed) reproduces it."""

    name = "recogym"

    def __init__(self, num_envs: int = 1, action_interface: str = "discrete", num_products: int = 10,
                 K: int = 5, sigma_omega_initial: float = 1.0, sigma_omega: float = 0.1,
                 sigma_mu_organic: float = 3.0, prob_organic_to_bandit: float = 0.25,
                 prob_bandit_to_organic: float = 0.05, prob_leave: float = 0.01, product_seed: int | None = 0):
        if not (isinstance(num_products, (int, np.integer)) and num_products >= 1):
            raise ValueError(f"recogym: num_products must be a positive integer, got {num_products!r}")
        if not (isinstance(K, (int, np.integer)) and K >= 1):
            raise ValueError(f"recogym: K must be a positive integer, got {K!r}")
        probabilities = {"prob_organic_to_bandit": prob_organic_to_bandit,
                         "prob_bandit_to_organic": prob_bandit_to_organic, "prob_leave": prob_leave}
        for key, value in probabilities.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"recogym: {key} must be a probability, got {value!r}")
        self.num_products, self.K = int(num_products), int(K)
        self.product_seed = product_seed
        self.sigma_omega_initial, self.sigma_omega, self.sigma_mu_organic = \
            sigma_omega_initial, sigma_omega, sigma_mu_organic
        # View counts have no upper bound; the largest float32 stands in for infinity.
        space = gym.spaces.Box(0.0, np.finfo(np.float32).max, (2 * self.num_products,), np.float32)
        super().__init__(num_envs, action_interface, space, self.num_products, gym.spaces.Discrete(num_products))
        # Transition matrix and its row CDFs, computed as the original computes them.
        transition = np.array([[0, prob_organic_to_bandit, prob_leave],
                               [prob_bandit_to_organic, 0, prob_leave],
                               [0.0, 0.0, 1.0]])
        transition[0, 0] = 1 - sum(transition[0, :])
        transition[1, 1] = 1 - sum(transition[1, :])
        self._transition_cdf = transition.cumsum(axis=1)
        self._transition_cdf /= self._transition_cdf[:, -1:]
        n, p = self.num_envs, self.num_products
        self.omega = np.zeros((n, self.K))
        self.state = np.zeros(n, dtype=np.int64)
        self.logits = np.zeros((n, p))           # Gamma omega + mu at the user's current omega
        self.views_since = np.zeros((n, p))
        self.views_total = np.zeros((n, p))

    def _seed(self, seed: int) -> None:
        products = np.random.RandomState(seed if self.product_seed is None else self.product_seed)
        self.gamma = products.normal(size=(self.num_products, self.K))
        self.mu = products.normal(0, self.sigma_mu_organic, size=(self.num_products, 1))
        self._rng = np.random.RandomState(seed)   # the original restarts its stream for the users

    def _start(self, slots: np.ndarray) -> np.ndarray:
        pending = slots
        while pending.size:
            self.views_since[pending] = 0.0
            self.omega[pending] = self._rng.normal(0, self.sigma_omega_initial, size=(len(pending), self.K))
            self.state[pending] = ORGANIC
            self._organic_sessions(pending)
            self.views_total[pending] = self.views_since[pending]
            pending = pending[self.state[pending] == LEAVE]   # left before any impression: next user
        return self._observe(slots)

    def _organic_sessions(self, users: np.ndarray) -> None:
        """Page views of the `users` in the organic state until each leaves it."""
        users = users[self.state[users] == ORGANIC]
        while users.size:
            logits = self.omega[users] @ self.gamma.T + self.mu.T   # the original's Gamma omega + mu, per row
            self.logits[users] = logits   # omega only changes on the way into "organic": these are the bandit's too
            weights = np.exp(logits - logits.max(axis=1, keepdims=True))
            cdf = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
            cdf /= cdf[:, -1:]   # as np.random.choice(p=...) does
            product = (cdf <= self._rng.random_sample(len(users))[:, None]).sum(axis=1)
            self.views_since[users, product] += 1.0
            users = self._move(users, ORGANIC)

    def _move(self, users: np.ndarray, state: int) -> np.ndarray:
        """One Markov transition of `users`, all in `state`; those landing on "organic" get
        a new omega (and are returned)."""
        self.state[users] = (self._transition_cdf[state] <= self._rng.random_sample(len(users))[:, None]).sum(axis=1)
        organic = users[self.state[users] == ORGANIC]
        if organic.size:
            self.omega[organic] = self._rng.normal(self.omega[organic], self.sigma_omega,
                                                   size=(len(organic), self.K))
        return organic

    def _observe(self, slots: np.ndarray) -> np.ndarray:
        return np.concatenate([self.views_since[slots], self.views_total[slots]], axis=1).astype(np.float32)

    def _step(self, actions: np.ndarray):
        product = np.argmax(actions, axis=1) if self.action_interface == "continuous" else actions
        ctr = click_probability(self.logits[self._all, product])
        no_click = 1.0 - ctr
        clicked = self._rng.random_sample(self.num_envs) >= no_click / (no_click + ctr)   # np.random.choice([0, 1], p)
        self.views_since[:] = 0.0
        self._move(self._all, BANDIT)
        self.state[clicked] = ORGANIC
        self._organic_sessions(self._all)
        self.views_total += self.views_since
        clicks = clicked.astype(np.int64)
        info = {"clicks": clicks, "impressions": np.ones(self.num_envs, dtype=np.int64)}
        return self._observe(self._all), clicks.astype(np.float64), self.state == LEAVE, info


def make(num_envs: int = 1, action_interface: str = "discrete", **params: Any) -> RecoGym:
    """The registry's factory (params: num_products, K, sigma_*, prob_*, product_seed)."""
    return RecoGym(num_envs, action_interface, **params)


def make_one_user(action_interface: str = "discrete", **params: Any) -> OneUserEnv:
    return OneUserEnv(RecoGym(1, action_interface, **params))


def load_reference() -> tuple[type, dict[str, Any]]:
    """The original ``RecoEnv1`` and ``env_1_args`` (recogym 0.1.3.0, installed with
    ``--no-deps`` next to gym, numba, pandas, scipy and tqdm).

    The environment module is imported without running ``recogym/__init__.py``: that file
    imports every agent of the package, and with them packages the environment does not
    use (scikit-learn, and ``scipy.rand``, which current SciPy no longer has). Stand-in
    package modules for ``recogym`` and ``recogym.agents`` (the latter with only the
    ``Agent`` base class the environment imports) point at the installed files."""
    if "recogym" not in sys.modules:
        spec = importlib.util.find_spec("recogym")
        if spec is None or spec.origin is None:
            raise ImportError("the original RecoGym is not installed: pip install --no-deps recogym==0.1.3.0 "
                              "and gym==0.26.2 numba==0.68.1 (see SIMULATORS.md)")
        package_dir = Path(spec.origin).parent
        for name, path in (("recogym", package_dir), ("recogym.agents", package_dir / "agents")):
            module = types.ModuleType(name)
            module.__path__ = [str(path)]
            sys.modules[name] = module
        from recogym.agents.abstract import Agent
        sys.modules["recogym.agents"].Agent = Agent
    from recogym.envs.reco_env_v1 import RecoEnv1, env_1_args
    return RecoEnv1, dict(env_1_args)
