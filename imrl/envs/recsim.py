"""RecSim "interest evolution" (Ie et al. 2019, google-research/recsim), batched.

The user and document model of recsim's ``interest_evolution.create_environment``
(UtilityModelUserSampler, UtilityModelVideoSampler, IEvUserModel with the
MultinomialProportionalChoiceModel, reward = clicked watch time), for N users at once:

- user: interests x in [-1, 1]^20, uniform; time budget 200 minutes;
- document: topic t uniform in 0..19 (its features are the one-hot of t), quality
  ~ N(m_t, 0.1) with m_t = -3..0 over topics 0-13 and 0..3 over topics 14-19, length 4;
- choice among the slate: P(document i) ∝ x[t_i] + 1, P(no click) ∝ 2;
- click: watch time w = min(budget, 4); x[t] += alpha (1 - x[t]) with probability
  (x[t] + 1) / 2, else x[t] -= alpha (1 - x[t]), alpha = 0.3 (1 - |x[t]|), clipped to
  [-1, 1]; budget -= w, then budget += 0.9/3.4 * w * quality. No click: budget -= 0.5.
  The episode ends when the budget is <= 0 (about 90 steps);
- reward: the watch time of the clicked document (0 without a click).

Same seed, one user: the same trajectory as the original, bit for bit
(tests/test_recsim.py). The original has three random streams, and so do we, seeded
and consumed alike: users and documents each from ``np.random.RandomState(seed)``, and
the choices and interest flips from numpy's global random state, which the original's
``env.seed(seed)`` seeds (here a private ``RandomState(seed)``). With N users each
stream serves the users in slot order.

``RecSimReference`` puts the original package (``recsim-no-tf``) behind the same
observation layout and action interfaces: the reference of the parity test and the
benchmark.

Observation (float32): [user interests (20) | candidates' one-hot topics (C x 20) |
last response per slate position (S x 5: click, watch time, liked (always 0 in this
environment), quality, topic)]; zeros for the response after a reset. Actions:
"discrete" = the slate, S indices into the C candidates (MultiDiscrete, duplicates
allowed as in the original); "continuous" = a score per topic in [-1, 1]^20, the slate
is the S candidates with the highest score of their topic (ties: lower index first).

Item view (``RecSim.item_view``, for item-level agents): a discrete action is a slot
whose document changes every step, so it names no item. A document's only observable
feature is its topic (its quality is hidden), so the catalogue is the 20 topics; the
topics present among a user's candidates are the available items, and a chosen topic
is shown as a candidate of that topic, and a step's reward goes to the slate position
the next observation shows clicked (SIMULATORS.md, "Item view"). The discrete interface
itself stays the original's.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from imrl.envs.simulators import (BatchedSimulator, ItemView, OneUserEnv, check_actions, continuous_space,
                                  top_k_by_score)

NUM_TOPICS = 20                    # IEvVideo.NUM_FEATURES = IEvUserState.NUM_FEATURES
TIME_BUDGET = 200.0                # minutes (UtilityModelUserSampler)
STEP_PENALTY = 0.5                 # minutes lost on a slate without a click
VIDEO_LENGTH = 4.0
MAX_VIDEO_LENGTH = 100.0           # bound of the watch time in the original's response space
QUALITY_BOUND = 100.0              # IEvResponse.MAX_QUALITY_SCORE
QUALITY_STD = 0.1                  # called "quality_variance" in the original, used as the std
# Mean quality per topic: "trashy" topics -3..0, "nutritious" topics 0..3.
QUALITY_MEANS = np.concatenate((np.linspace(-3.0, 0, int(NUM_TOPICS * 0.7)),
                                np.linspace(0, 3.0, int(NUM_TOPICS * 0.3))))
ONE_HOT_TOPICS = np.eye(NUM_TOPICS, dtype=np.float32)   # a document's features
NO_CLICK_MASS = 1.0
MIN_NORMALIZER = -1.0              # subtracted from every score so that they are >= 0
USER_QUALITY_FACTOR = 0.0          # utility = 0 * expected utility + 1 * document quality
DOCUMENT_QUALITY_FACTOR = 1.0
BUDGET_ALPHA = 0.9 * (1.0 / 3.4)   # user_update_alpha: budget won back per minute per unit of utility
ALPHA_X_INTERCEPT, ALPHA_Y_INTERCEPT = 1.0, 0.3   # interest step: alpha(x) = 0.3 - 0.3 |x|
RESPONSE_FIELDS = ("click", "watch_time", "liked", "quality", "topic")


def observation_space(num_candidates: int, slate_size: int) -> gym.spaces.Box:
    response_low = [0.0, 0.0, 0.0, -QUALITY_BOUND, 0.0]
    response_high = [1.0, MAX_VIDEO_LENGTH, 1.0, QUALITY_BOUND, NUM_TOPICS - 1]
    low = np.concatenate([np.full(NUM_TOPICS, -1.0), np.zeros(num_candidates * NUM_TOPICS),
                          np.tile(response_low, slate_size)])
    high = np.concatenate([np.ones(NUM_TOPICS), np.ones(num_candidates * NUM_TOPICS),
                           np.tile(response_high, slate_size)])
    return gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)


def check_config(num_candidates: int, slate_size: int) -> None:
    if not (isinstance(num_candidates, (int, np.integer)) and num_candidates >= 1):
        raise ValueError(f"recsim: num_candidates must be a positive integer, got {num_candidates!r}")
    if not (isinstance(slate_size, (int, np.integer)) and 1 <= slate_size <= num_candidates):
        raise ValueError(f"recsim: slate_size must be an integer in [1, num_candidates={num_candidates}], "
                         f"got {slate_size!r}")


TOPIC_CATALOGUE_NOTE = ("RecSim item view: the item catalogue is the 20 topics (a document's only observable "
                        "feature; quality is hidden); the available items are the topics among the current "
                        "candidates, a chosen topic is shown as its first candidate, transitions record the topics; "
                        "a step's reward is credited to the clicked slate position (in the next observation)")


def candidate_topics(obs: np.ndarray, num_candidates: int) -> np.ndarray:
    """int64 [B, C]: the topic of each candidate, read from the observations' one-hot features."""
    one_hot = np.asarray(obs)[:, NUM_TOPICS:NUM_TOPICS * (1 + num_candidates)]
    return one_hot.reshape(len(one_hot), num_candidates, NUM_TOPICS).argmax(axis=2)


def clicked_positions(obs: np.ndarray, slate_size: int) -> np.ndarray:
    """float [B, S]: 1 at the slate position clicked in the last step (the observation's response)."""
    response = np.asarray(obs)[:, -slate_size * len(RESPONSE_FIELDS):]
    return response.reshape(len(response), slate_size, len(RESPONSE_FIELDS))[:, :, 0].astype(np.float32)


class DocumentStream:
    """The documents of recsim's UtilityModelVideoSampler, many at a time, bit for bit.

    Per document the original draws ``randint(0, 20)`` (topic) then ``normal(mean, 0.1)``
    (quality) from one ``np.random.RandomState``; the two interleave on the MT19937 word
    stream, so numpy cannot draw them as two arrays. We read the raw 32-bit words and
    replay numpy's legacy algorithms on them. randint(0, 20): the first word whose low 5
    bits are < 20 (masked rejection). normal: the polar method on two 53-bit doubles (two
    words each, so 4 words an attempt), repeated until 0 < r2 < 1; one attempt makes two
    gaussians, f*x2 is returned and f*x1 kept for the next call. So documents come in
    pairs, [topic, attempt, topic (with the kept gaussian)]. For every word position of a
    buffer of words, array scans find the next topic word, the next accepted attempt, so
    where the pair starting there ends, and by composition where 16 pairs end; following
    the chain then takes one look-up per 16 pairs, and array gathers fill in the rest."""

    CHUNK = 1 << 16   # words drawn at a time (about 15,000 documents)
    JUMP_LEVELS = 4   # the chain is followed 2**4 = 16 pairs at a time
    PAD = 8           # sentinel entries after the last word position

    def __init__(self, seed: int):
        _, key, pos, _, _ = np.random.RandomState(seed).get_state()   # the legacy seeding
        self._bits = np.random.MT19937()
        self._bits.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": pos}}
        self._kept_gaussian: float | None = None
        self._words = np.zeros(0, dtype=np.int64)   # drawn, and used up to self._pos
        self._pos = 0
        self._scan()

    def _refill(self, at_least: int) -> None:
        fresh = self._bits.random_raw(max(self.CHUNK, at_least)).astype(np.int64)
        self._words, self._pos = np.concatenate([self._words[self._pos:], fresh]), 0
        self._scan()

    def _scan(self) -> None:
        words, size = self._words, len(self._words)
        # Tables are indexed by word position 0..size + PAD - 1; the value `size` means "past
        # the buffer" and stays so (the padding lets chained look-ups run without clipping).
        position = np.arange(size)
        # next_topic[i]: first j >= i whose word is an accepted topic.
        self._next_topic = np.full(size + self.PAD, size)
        np.minimum.accumulate(np.where(words & 31 < NUM_TOPICS, position, size)[::-1],
                              out=self._next_topic[size - 1::-1] if size else None)
        # Attempt i reads words i..i+3: x1 = 2 doubles[i] - 1, x2 = 2 doubles[i + 2] - 1.
        scaled = 2.0 * (((words[:-1] >> 5) * 67108864.0 + (words[1:] >> 6)) / 9007199254740992.0) - 1.0
        self._x1, self._x2 = scaled[:-2], scaled[2:]
        squares = scaled * scaled
        self._r2 = squares[:-2] + squares[2:]
        attempts = max(size - 3, 0)
        accepted = np.where((self._r2 < 1.0) & (self._r2 > 0.0), position[:attempts], size)
        # next_attempt[i]: first accepted attempt at i, i + 4, i + 8, ...
        self._next_attempt = np.full(size + self.PAD, size)
        for offset in range(4):
            np.minimum.accumulate(accepted[offset::4][::-1], out=self._next_attempt[offset:attempts:4][::-1])
        # The word after the pair [topic, attempt, topic] that starts at each position, then
        # after 2, 4, 8 and 16 pairs.
        after = self._next_topic[self._next_attempt[self._next_topic + 1] + 4] + 1
        after[size:] = size
        self._after_pairs = [after]
        for _ in range(self.JUMP_LEVELS):
            self._after_pairs.append(self._after_pairs[-1][self._after_pairs[-1]])

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Topics (int64) and qualities (float64) of the next `n` (>= 1) documents."""
        while (drawn := self._draw(n)) is None:   # the buffer ran out: draw more words
            self._refill(5 * n + 64)
        topics, gaussians = drawn
        return topics, QUALITY_MEANS[topics] + QUALITY_STD * gaussians

    def _pair_starts(self, pos: int, n_pairs: int) -> np.ndarray:
        """Start words of `n_pairs` consecutive pairs from `pos`, then the word after them."""
        blocks, jump = [pos], self._after_pairs[-1]
        for _ in range(-(-n_pairs // 2**self.JUMP_LEVELS)):
            blocks.append(jump[blocks[-1]])
        starts = np.array(blocks)
        for after in reversed(self._after_pairs[:-1]):   # fill in the pairs inside each jump
            inside = np.empty((len(starts), 2), dtype=np.int64)
            inside[:, 0], inside[:, 1] = starts, after[starts]
            starts = inside.ravel()
        return starts[:n_pairs + 1]

    def _draw(self, n: int):
        size, next_topic = len(self._words), self._next_topic
        uses_kept = self._kept_gaussian is not None
        head = int(next_topic[self._pos])   # the topic of a first document taking the kept gaussian
        pos = head + 1 if uses_kept else self._pos
        n_pairs, odd = divmod(n - uses_kept, 2)
        starts = self._pair_starts(pos, n_pairs)
        # Per pair: first topic word, polar attempt, second topic word; then the odd document.
        first = next_topic[starts][:n_pairs + odd]
        attempt = self._next_attempt[first + 1]
        second = next_topic[attempt[:n_pairs] + 4]
        if head >= size or (first >= size).any() or (attempt >= size - 3).any() or (second >= size).any():
            return None
        r2 = self._r2[attempt]
        logs = np.fromiter(map(math.log, r2.tolist()), dtype=np.float64, count=len(r2))   # libm, as numpy's C code
        f = np.sqrt(-2.0 * logs / r2)
        returned, kept = f * self._x2[attempt], f * self._x1[attempt]
        topic_words = np.empty(n, dtype=np.int64)
        gaussians = np.empty(n)
        k = int(uses_kept)
        if uses_kept:
            topic_words[0], gaussians[0] = head, self._kept_gaussian
        topic_words[k:k + 2 * n_pairs:2], topic_words[k + 1:k + 2 * n_pairs:2] = first[:n_pairs], second
        gaussians[k:k + 2 * n_pairs:2], gaussians[k + 1:k + 2 * n_pairs:2] = returned[:n_pairs], kept[:n_pairs]
        if odd:
            topic_words[-1], gaussians[-1] = first[-1], returned[-1]
        self._kept_gaussian = float(kept[-1]) if odd else None
        self._pos = int(attempt[-1]) + 4 if odd else int(starts[-1])
        return self._words[topic_words] & 31, gaussians


class RecSim(BatchedSimulator):
    """N users of RecSim interest evolution, each with its own candidate set."""

    name = "recsim"

    def __init__(self, num_envs: int = 1, action_interface: str = "continuous", num_candidates: int = 10,
                 slate_size: int = 2, resample_documents: bool = True):
        check_config(num_candidates, slate_size)
        self.num_candidates, self.slate_size = int(num_candidates), int(slate_size)
        self.resample_documents = bool(resample_documents)
        super().__init__(num_envs, action_interface, observation_space(num_candidates, slate_size), NUM_TOPICS,
                         gym.spaces.MultiDiscrete([num_candidates] * slate_size))
        n, c, s = self.num_envs, self.num_candidates, self.slate_size
        self.interests = np.zeros((n, NUM_TOPICS))
        self.budget = np.zeros(n)
        self.topics = np.zeros((n, c), dtype=np.int64)
        self.quality = np.zeros((n, c))
        self.response = np.zeros((n, s, len(RESPONSE_FIELDS)))

    def item_view(self) -> ItemView:
        """The 20 topics as the catalogue; a discrete action index shows its candidate's topic."""
        return ItemView(NUM_TOPICS, partial(candidate_topics, num_candidates=self.num_candidates),
                        partial(clicked_positions, slate_size=self.slate_size), TOPIC_CATALOGUE_NOTE)

    def _seed(self, seed: int) -> None:
        self._users = np.random.RandomState(seed)
        self._users.uniform(-1.0, 1.0, NUM_TOPICS)   # the original samples a user when it builds its user model
        self._documents = DocumentStream(seed)
        self._choices = np.random.RandomState(seed)
        # The candidate set the original samples when it is built (kept when not resampling).
        self.topics[:], self.quality[:] = self._draw_candidates(self.num_envs)

    def _draw_candidates(self, n_users: int) -> tuple[np.ndarray, np.ndarray]:
        topics, quality = self._documents.sample(n_users * self.num_candidates)
        return topics.reshape(n_users, -1), quality.reshape(n_users, -1)

    def _start(self, slots: np.ndarray) -> np.ndarray:
        self.interests[slots] = self._users.uniform(-1.0, 1.0, (len(slots), NUM_TOPICS))
        self.budget[slots] = TIME_BUDGET
        if self.resample_documents:
            self.topics[slots], self.quality[slots] = self._draw_candidates(len(slots))
        self.response[slots] = 0.0
        return self._observe(slots)

    def _observe(self, slots: np.ndarray) -> np.ndarray:
        n = len(slots)
        candidates = ONE_HOT_TOPICS[self.topics[slots]].reshape(n, -1)
        return np.concatenate([self.interests[slots].astype(np.float32), candidates,
                               self.response[slots].reshape(n, -1).astype(np.float32)], axis=1)

    def _step(self, actions: np.ndarray):
        n, s = self.num_envs, self.slate_size
        if self.action_interface == "continuous":
            slates = top_k_by_score(np.take_along_axis(actions, self.topics, axis=1), s)
        else:
            slates = actions
        rows = self._all[:, None]
        topics, quality = self.topics[rows, slates], self.quality[rows, slates]

        # Choice model: scores x[t] - min_normalizer, the no-click option no_click_mass - min_normalizer.
        scores = np.concatenate([np.take_along_axis(self.interests, topics, axis=1) - MIN_NORMALIZER,
                                 np.full((n, 1), NO_CLICK_MASS - MIN_NORMALIZER)], axis=1)
        cdf = np.cumsum(scores / scores.sum(axis=1, keepdims=True), axis=1)
        cdf /= cdf[:, -1:]   # as np.random.choice(p=...) does
        choice = (cdf <= self._choices.random_sample(n)[:, None]).sum(axis=1)   # == s: no click
        clicked = np.flatnonzero(choice < s)
        position = choice[clicked]
        topic, doc_quality = topics[clicked, position], quality[clicked, position]
        watch_time = np.minimum(self.budget[clicked], VIDEO_LENGTH)

        # Interest update towards (or away from) the clicked topic.
        x = self.interests[clicked, topic]
        alpha = (-ALPHA_Y_INTERCEPT / ALPHA_X_INTERCEPT) * np.abs(x) + ALPHA_Y_INTERCEPT
        step = alpha * (1.0 - x)
        towards = self._choices.random_sample(len(clicked)) < (x + 1.0) / 2
        self.interests[clicked, topic] = np.clip(np.where(towards, x + step, x - step), -1.0, 1.0)
        # Time budget: watch time spent, part of it won back by the document's quality.
        utility = USER_QUALITY_FACTOR * (x - MIN_NORMALIZER) + DOCUMENT_QUALITY_FACTOR * doc_quality
        budget = self.budget - STEP_PENALTY
        budget[clicked] = (self.budget[clicked] - watch_time) + BUDGET_ALPHA * watch_time * utility
        self.budget = budget

        self.response[:] = 0.0
        self.response[:, :, 3], self.response[:, :, 4] = quality, topics
        self.response[clicked, position, 0], self.response[clicked, position, 1] = 1.0, watch_time
        rewards = np.zeros(n)
        rewards[clicked] = watch_time
        terminated = self.budget <= 0
        if self.resample_documents:
            self.topics[:], self.quality[:] = self._draw_candidates(n)
        clicks = np.zeros(n, dtype=np.int64)
        clicks[clicked] = 1
        return self._observe(self._all), rewards, terminated, {"clicks": clicks, "impressions": np.full(n, s)}


def make(num_envs: int = 1, action_interface: str = "continuous", **params: Any) -> RecSim:
    """The registry's factory (params: num_candidates, slate_size, resample_documents)."""
    return RecSim(num_envs, action_interface, **params)


def make_one_user(action_interface: str = "continuous", **params: Any) -> OneUserEnv:
    return OneUserEnv(RecSim(1, action_interface, **params))


class RecSimReference(gym.Env):
    """The original recsim interest-evolution environment (package ``recsim-no-tf``,
    0.2.3, plus ``six``), one user, behind ``RecSim``'s observation layout and action
    interfaces. Like the original it draws choices from numpy's GLOBAL random state,
    which ``reset(seed=...)`` seeds (the original's ``env.seed``)."""

    name = "recsim-reference"

    def __init__(self, action_interface: str = "continuous", num_candidates: int = 10, slate_size: int = 2,
                 resample_documents: bool = True):
        try:
            from recsim.environments import interest_evolution
        except ImportError as error:
            raise ImportError("RecSimReference needs the original recsim: "
                              "pip install recsim-no-tf==0.2.3 six==1.17.0") from error
        check_config(num_candidates, slate_size)
        self._create = interest_evolution.create_environment
        self.config = {"num_candidates": num_candidates, "slate_size": slate_size,
                       "resample_documents": resample_documents}
        self.action_interface = action_interface
        self.observation_space = observation_space(num_candidates, slate_size)
        self.action_space = (continuous_space(NUM_TOPICS) if action_interface == "continuous"
                             else gym.spaces.MultiDiscrete([num_candidates] * slate_size))
        self._env = None
        self._features = np.zeros((num_candidates, NUM_TOPICS))   # the candidates on show

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or self._env is None:
            seed = seed if seed is not None else int(np.random.SeedSequence().entropy % 2**32)
            self._env = self._create({**self.config, "seed": seed})
            self._env.seed(seed)
        return self._flatten(self._env.reset()), {}

    def step(self, action):
        action = check_actions(np.asarray(action)[None], self.action_space, 1, self.name, self.action_interface)[0]
        if self.action_interface == "continuous":
            action = top_k_by_score((self._features @ action.astype(np.float64))[None], self.config["slate_size"])[0]
        obs, reward, done, _ = self._env.step(action)
        info = {"clicks": sum(response["click"] for response in obs["response"]),
                "impressions": self.config["slate_size"]}
        return self._flatten(obs), float(reward), bool(done), False, info

    def _flatten(self, obs: dict) -> np.ndarray:
        response = np.zeros((self.config["slate_size"], len(RESPONSE_FIELDS)))
        if obs["response"] is not None:
            response = np.array([[r["click"], r["watch_time"], r["liked"], r["quality"], r["cluster_id"]]
                                 for r in obs["response"]])
        self._features = np.stack(list(obs["doc"].values()))
        return np.concatenate([obs["user"], self._features.ravel(), response.ravel()]).astype(np.float32)
