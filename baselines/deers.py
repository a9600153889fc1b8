"""DEERS: Zhao, Zhang, Ding, Xia, Tang, Yin, "Recommendations with Negative Feedback via
Pairwise Deep Reinforcement Learning", KDD 2018 (arXiv:1802.06501). No official code.

The paper, read top to bottom in ``DEERSNetwork`` and ``DEERSLearner.update``:

- State s = (s+, s-): the last N clicked items (s+) and the last N skipped items (s-).
  A clicked item enters s+ and a skipped one enters s-, the other window is unchanged
  (the paper's state transition; our offline environment keeps both windows).
- Each window goes through its own GRU (the paper's GRU state encoder), h+ and h-; the
  two signals enter separate first hidden layers and meet in the second (the paper's
  architecture, Figure 4), so that the abundant negative feedback cannot bury the
  positive one.
- Deep Q-network with experience replay, a target network and the double-DQN target
  y = r + gamma * Q(s', argmax_a' Q(s', a'; theta); theta^-) (the paper's Q target).
- Pairwise regularisation (the paper's pairwise loss): for a shown item a, its
  competitor a^C is an item of the same category shown at the same time with the
  opposite feedback; the loss is (y - Q(s, a))^2 - alpha (Q(s, a) - Q(s, a^C))^2, which
  widens the gap between what the user took and what they passed over.
- epsilon-greedy exploration.

Adaptations (METHODS.md, "RL baselines"):
- The action a enters at the output layer, Q(s, a) = <f(h+, h-, u), w_a> + b_a, instead of
  at the first hidden layers: with it one matrix product scores the whole catalogue,
  which full-ranking evaluation needs (the paper ranks a small candidate list).
- Slates: the k items with the highest Q (each slot explored with probability epsilon);
  every slot is one DEERS transition with its own reward (hit = 1), all sharing s'.
- Competitors come from the split's item categories, or pseudo-categories (k-means over
  item embeddings) where it has none; labelled in ``substitutes``. Online (simulators,
  no categories) the pairwise term is removed, as the IMRL paper removed side information.
- User features, where the split has them, join the state through their own layer.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from baselines.rl_common import (SHARED_DEFAULTS, Context, Learner, ReplayBuffer, RLOfflineMethod, RLOnlineAgent,
                                 epsilon_greedy_slate, exclude)
from baselines.side_info import item_categories
from imrl.data.split import Split

DEFAULTS: dict[str, Any] = {
    "hidden": 64,                # GRU and hidden layer width
    "lr": 1e-3,
    "gamma": 0.9,
    "batch_size": 64,            # replayed batched transitions per update (all k slots of each)
    "buffer_size": 20_000,       # batched transitions kept
    "epsilon_start": 1.0,
    "epsilon_end": 0.05,
    "epsilon_decay_steps": 200,  # exploring act() calls over which epsilon decays linearly
    "target_update": 100,        # updates between copies into the target network
    "pairwise_alpha": 0.1,       # alpha of the pairwise regulariser
    "n_pseudo_categories": 20,   # k of the k-means pseudo-categories (datasets without categories)
    **SHARED_DEFAULTS,           # env (offline environment arguments), n_envs, dim (online item embeddings)
}


#: The offline method's departures, chosen on the validation split of the user-model
#: environment (bench/tune_rl.py; METHODS.md, "Offline defaults: the search"): a slower
#: learning rate and target network, since the bootstrapped max over the whole catalogue
#: is noisy against per-slot rewards of a few hundredths.
OFFLINE_DEFAULTS: dict[str, Any] = {**DEFAULTS, "lr": 3e-4, "target_update": 500}


class DEERSNetwork(nn.Module):
    """Q(s+, s-, u, a) for every item a at once."""

    def __init__(self, n_items: int, dim: int, hidden: int, feature_dim: int, item_vectors: Tensor | None):
        super().__init__()
        self.n_items = n_items
        self.items = nn.Embedding(n_items + 1, dim, padding_idx=n_items)   # window items; the pad embeds to 0
        self.positive_gru = nn.GRU(dim, hidden, batch_first=True)          # encoder of s+
        self.negative_gru = nn.GRU(dim, hidden, batch_first=True)          # encoder of s-
        self.positive_layer = nn.Linear(hidden, hidden)                    # separate first hidden layers
        self.negative_layer = nn.Linear(hidden, hidden)
        self.feature_layer = nn.Linear(feature_dim, hidden) if feature_dim else None
        self.second_layer = nn.Sequential(nn.ReLU(), nn.Linear((3 if feature_dim else 2) * hidden, hidden), nn.ReLU(),
                                          nn.Linear(hidden, dim))
        self.action_items = nn.Embedding(n_items, dim)                     # w_a
        self.action_bias = nn.Parameter(torch.zeros(n_items))              # b_a
        with torch.no_grad():
            if item_vectors is not None:   # start from the environment's item embeddings
                self.items.weight[:n_items] = item_vectors
                self.action_items.weight.copy_(item_vectors)
            else:   # Q(s, a) starts near 0 for every a: rewards are small (a CTR of 1% on RecoGym)
                self.action_items.weight.mul_(0.01)

    def encode_positive(self, history: Tensor) -> Tensor:
        return self.positive_gru(self.items(history))[1][0]   # h+: last hidden state

    def encode_negative(self, skipped: Tensor) -> Tensor:
        return self.negative_gru(self.items(skipped))[1][0]   # h-

    def state(self, context: Context) -> Tensor:
        branches = [self.positive_layer(self.encode_positive(context.history)),
                    self.negative_layer(self.encode_negative(context.skipped))]
        if self.feature_layer is not None:
            branches.append(self.feature_layer(context.features))
        return self.second_layer(torch.cat(branches, dim=1))

    def forward(self, context: Context) -> Tensor:
        """Q values [B, n_items]."""
        return self.state(context) @ self.action_items.weight.T + self.action_bias


class DEERSLearner(Learner):
    def __init__(self, n_items: int, slate_size: int, feature_dim: int, dim: int, params: dict[str, Any],
                 device: torch.device, item_vectors: Tensor | None = None, categories: Tensor | None = None):
        if not 0.0 <= params["pairwise_alpha"] < 0.25:
            raise ValueError(f"DEERS: pairwise_alpha = {params['pairwise_alpha']!r}, expected a number in [0, 0.25) "
                             "(at 0.25 and above the pairwise loss is unbounded below)")
        self.n_items, self.slate_size, self.params = n_items, slate_size, params
        self.q = DEERSNetwork(n_items, dim, params["hidden"], feature_dim, item_vectors).to(device)
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=params["lr"])
        self.buffer = ReplayBuffer(params["buffer_size"], device)
        self.categories = categories   # int64 [n_items], -1 unknown; None: no pairwise term
        self.n_acts = self.n_updates = 0

    def epsilon(self) -> float:
        p = self.params
        fraction = min(1.0, self.n_acts / max(1, p["epsilon_decay_steps"]))
        return p["epsilon_start"] + fraction * (p["epsilon_end"] - p["epsilon_start"])

    @torch.no_grad()
    def act(self, context: Context, available: Tensor | None, explore: bool) -> Tensor:
        epsilon = self.epsilon() if explore else 0.0
        self.n_acts += explore
        return epsilon_greedy_slate(self.q(context), available, self.slate_size, epsilon)

    def competitors(self, slate: Tensor, slot_rewards: Tensor) -> Tensor:
        """Per slot, the first other slot's item of the same category with the opposite
        feedback (a^C), or -1."""
        if self.categories is None:
            return torch.full_like(slate, -1)
        category = self.categories[slate]
        clicked = slot_rewards > 0
        candidate = ((category[:, :, None] == category[:, None, :]) & (category[:, :, None] >= 0)
                     & (clicked[:, :, None] != clicked[:, None, :]))
        first = candidate.to(torch.uint8).argmax(dim=2)
        return torch.where(candidate.any(dim=2), slate.gather(1, first), -1)

    def observe(self, context, slate, slot_rewards, next_context, terminated, truncated) -> None:
        self.buffer.add({**context.as_dict(), **next_context.as_dict("next_"), "slate": slate,
                         "rewards": slot_rewards, "terminated": terminated.float(),
                         "competitor": self.competitors(slate, slot_rewards)})

    def update(self) -> dict[str, float]:
        p = self.params
        if len(self.buffer) < p["batch_size"]:
            return {}
        batch = self.buffer.sample(p["batch_size"])
        state, next_state = Context.from_dict(batch), Context.from_dict(batch, "next_")
        q_all = self.q(state)
        q_taken = q_all.gather(1, batch["slate"])                                    # Q(s, a) per slot
        with torch.no_grad():   # double DQN: the online network chooses a', the target one values it
            seen = torch.cat([next_state.history, next_state.skipped], dim=1)   # not worth showing again
            choice = exclude(self.q(next_state), seen).argmax(dim=1)
            next_value = self.target(next_state).gather(1, choice[:, None])
            y = batch["rewards"] + p["gamma"] * (1.0 - batch["terminated"])[:, None] * next_value
        td = (y - q_taken).pow(2).mean()
        # Pairwise term, an expectation over transitions like the TD term (0 where a slot has
        # no competitor). Each pair appears from both sides, so for alpha < 1/4 the loss stays
        # bounded below in (Q(s, a), Q(s, a^C)).
        has_competitor = batch["competitor"] >= 0
        q_competitor = q_all.gather(1, batch["competitor"].clamp(min=0))
        gap = ((q_taken - q_competitor).pow(2) * has_competitor).mean()
        loss = td - p["pairwise_alpha"] * gap                                        # pairwise loss
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.n_updates += 1
        if self.n_updates % p["target_update"] == 0:
            self.target.load_state_dict(self.q.state_dict())
        return {"loss": loss.item(), "td": td.item(), "pairwise_gap": gap.item()}

    @torch.no_grad()
    def scores(self, context: Context) -> Tensor:
        return self.q(context)


class DEERS(RLOfflineMethod):
    """DEERS trained on the offline environment; ranks items by Q(s, a) with s built from
    the user's history (skipped window empty: logs record no skips)."""

    defaults = OFFLINE_DEFAULTS

    def make_learner(self, split: Split) -> Learner:
        data = self.data
        categories, notes = item_categories(split, self.params["n_pseudo_categories"], self.ctx.seed)
        self.substitutes = [f"DEERS competitor items: {note}" for note in notes]
        return DEERSLearner(split.n_items, data.slate_size, data.feature_dim, data.item_vectors.shape[1],
                            self.params, self.ctx.device, data.item_vectors,
                            torch.from_numpy(categories).to(self.ctx.device))


class DEERSAgent(RLOnlineAgent):
    """DEERS on a simulator: the same network and update, state = the observation."""

    defaults = DEFAULTS
    online_removals = ("DEERS: pairwise regulariser removed (competitors need item categories; the simulators "
                       "have none)",)

    def make_learner(self) -> Learner:
        return DEERSLearner(self.n_items, self.slate_size, self.feature_dim, self.params["dim"],
                            self.params, self.ctx.device)
