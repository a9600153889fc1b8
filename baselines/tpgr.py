"""TPGR: Chen, Dai, Cai, Zhang, Wang, Tang, Zhang, Yu, "Large-scale Interactive
Recommendation with Tree-structured Policy Gradient", AAAI 2019 (arXiv:1811.05869);
reference code chenhaokun/TPGR (TensorFlow 1, read, not copied).

The paper, read top to bottom in ``BalancedTree``, ``TreePolicy`` and ``TPGRLearner``:

- Balanced hierarchical clustering (the paper's tree construction): items are split
  recursively into ``child_num`` (c) groups whose sizes differ by at most one, along the
  first principal component of their vectors (PCA-based clustering; the reference code's
  default, over rating vectors), down to depth D = ceil(log_c n). Every item is one
  leaf at depth D; its root-to-leaf path is its code (c-ary digits).
- A policy per internal node (the paper's tree-structured policy): a softmax over the
  node's c children, pi_node(child | s) = softmax(W_node s + b_node) (the reference code's
  default: no hidden layer). Choosing an item is walking from the root to its leaf;
  pi(item | s) is the product of the choices on its path.
- Children are weighted by how many still-recommendable items they hold, as the
  reference code does, so an exhausted subtree is never entered and an untrained policy
  is uniform over the available items.
- State: a recurrent network over the recommended items and their feedback (the paper's
  state representation module), concatenated with user features.
- REINFORCE (the paper's policy gradient): the gradient of sum_t log pi(a_t | s_t) G_t
  with discounted returns G_t, standardised over the batch, plus the reference code's
  regulariser pulling node distributions towards uniform (``entropy_factor``) and L2.
  As the reference code (``TPGR.train``), a batch of finished episodes gives one Adam
  step per time step, each on that step of every episode of the batch; a step is taken
  per ``update()`` call, so the budget's ``update_ratio`` paces TPGR as it paces the
  replay-based learners.

Adaptations (METHODS.md, "RL baselines"):
- Slates: k items drawn one after another without replacement (availability updated
  after each); the slate's log-probability is the sum over its slots.
- Baseline: offline, each slot's return less its slate's mean (the slate shares the
  state; the reference code's per-user standardisation over 16 episodes of one user has
  no counterpart where episodes start at random train prefixes).
- Item vectors: the offline environment's item embeddings (an SVD of the training
  interactions, i.e. PCA-like rating vectors); the recurrent input is the skipped then
  the positive window (the environment keeps them apart, so their interleaving is lost),
  each item with a 0/1 feedback flag. No supervised pre-training of the RNN.
- Ranking for the evaluator: every item scored by log pi(path) (the exact path
  probability, not the level-by-level argmax the reference code evaluates with).
- Online (no item vectors before training), the tree is built by the reference code's
  RANDOM clustering over the simulator's catalogue items.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from baselines.rl_common import (SHARED_DEFAULTS, Context, EpisodeBuffer, Learner, RLOfflineMethod, RLOnlineAgent,
                                 window_items, with_availability)
from imrl.data.split import Split

DEFAULTS: dict[str, Any] = {
    "child_num": 10,              # c (the reference code's CHILD_NUM)
    "hidden": 64,                 # width of the state RNN
    "lr": 1e-3,
    "gamma": 0.6,                 # the reference code's DISCOUNT_FACTOR
    "entropy_factor": 5.0,        # the reference code's ENTROPY_FACTOR
    "l2": 1e-5,                   # the reference code's L2_FACTOR
    "episodes_per_update": 16,    # episodes per Adam step (the reference code's SAMPLE_EPISODES_PER_BATCH)
    **SHARED_DEFAULTS,            # env (offline environment arguments), n_envs, dim (online item embeddings)
}


class BalancedTree:
    """A complete c-ary tree of depth D over n items. ``codes`` [n, D]: each item's path
    (child index per level); ``leaf_of_item`` [n]: its leaf (the code as a base-c
    number); ``item_of_leaf`` [c^D]: the item at each leaf, -1 where empty."""

    def __init__(self, n_items: int, child_num: int, vectors: np.ndarray | None = None,
                 rng: np.random.Generator | None = None):
        if child_num < 2:
            raise ValueError(f"TPGR: child_num must be >= 2, got {child_num}")
        self.n_items, self.c = n_items, child_num
        self.depth = max(1, math.ceil(math.log(n_items) / math.log(child_num) - 1e-9))
        self.vectors, self.rng = vectors, rng
        self.codes = np.zeros((n_items, self.depth), dtype=np.int64)
        self._assign(np.arange(n_items), level=0)
        self.leaf_of_item = self.codes @ (child_num ** np.arange(self.depth - 1, -1, -1))
        self.item_of_leaf = np.full(child_num ** self.depth, -1, dtype=np.int64)
        self.item_of_leaf[self.leaf_of_item] = np.arange(n_items)

    def _assign(self, items: np.ndarray, level: int) -> None:
        """Give `items` (all under one node at `level`) their digits from `level` down."""
        if level == self.depth or len(items) == 0:
            return
        for child, group in enumerate(self._split(items)):
            self.codes[group, level] = child
            self._assign(group, level + 1)

    def _split(self, items: np.ndarray) -> list[np.ndarray]:
        """c groups of sizes differing by at most one, in the order of the items' first
        principal component (PCA), or shuffled (RANDOM) when there are no vectors."""
        if self.vectors is None:
            ordered = self.rng.permutation(items)
        else:
            centred = self.vectors[items] - self.vectors[items].mean(0)
            direction = np.linalg.svd(centred, full_matrices=False)[2][0] if len(items) > 1 else np.zeros(centred.shape[1])
            direction *= np.sign(direction[np.argmax(np.abs(direction))]) or 1.0   # a fixed sign
            ordered = items[np.argsort(centred @ direction, kind="stable")]
        sizes = np.full(self.c, len(items) // self.c)
        sizes[:len(items) % self.c] += 1
        return np.split(ordered, np.cumsum(sizes)[:-1])

    def nodes_at(self, level: int) -> int:
        return self.c ** level

    def node_offset(self, level: int) -> int:
        """Index of the first node of `level` among all internal nodes (levels 0..D-1)."""
        return (self.c ** level - 1) // (self.c - 1)

    @property
    def n_internal(self) -> int:
        return self.node_offset(self.depth)


class TreePolicy(nn.Module):
    """State network and the per-node softmax policies of a ``BalancedTree``."""

    def __init__(self, tree: BalancedTree, dim: int, hidden: int, feature_dim: int, item_vectors: Tensor | None):
        super().__init__()
        self.tree = tree
        n = tree.n_items
        inputs = torch.zeros(n + 1, dim) if item_vectors is None else torch.cat([item_vectors.cpu(), torch.zeros(1, dim)])
        if item_vectors is None:   # online: no vectors, the recurrent input is learned
            self.item_inputs = nn.Parameter(0.1 * torch.randn(n + 1, dim))
        else:                      # fixed item vectors, as the reference code's RNN input
            self.register_buffer("item_inputs", inputs)
        self.rnn = nn.GRU(dim + 1, hidden, batch_first=True)
        state_dim = hidden + feature_dim
        self.weights = nn.Parameter(0.1 * torch.randn(tree.n_internal, state_dim, tree.c))   # W_node
        self.biases = nn.Parameter(torch.zeros(tree.n_internal, tree.c))                     # b_node
        self.register_buffer("codes", torch.from_numpy(tree.codes))
        self.register_buffer("leaf_of_item", torch.from_numpy(tree.leaf_of_item))
        self.register_buffer("item_of_leaf", torch.from_numpy(tree.item_of_leaf))

    def state(self, context: Context) -> Tensor:
        items = torch.cat([context.skipped, context.history], dim=1)
        feedback = torch.cat([torch.zeros_like(context.skipped), torch.ones_like(context.history)], dim=1)
        steps = torch.cat([self.item_inputs[items], feedback[:, :, None].float()], dim=2)
        h = self.rnn(steps)[1][0]
        return h if context.features is None else torch.cat([h, context.features], dim=1)

    def leaf_available(self, available: Tensor | None, batch: int) -> Tensor:
        """bool [B, c^D]: leaves holding an available item."""
        leaves = torch.zeros(batch, self.tree.c ** self.tree.depth, dtype=torch.bool, device=self.biases.device)
        allowed = available if available is not None else torch.ones(batch, self.tree.n_items, dtype=torch.bool,
                                                                      device=leaves.device)
        leaves[:, self.leaf_of_item] = allowed
        return leaves

    def child_counts(self, leaves: Tensor, level: int) -> Tensor:
        """[B, c^level, c]: available items under each child of each node of `level`."""
        c, depth = self.tree.c, self.tree.depth
        return leaves.view(len(leaves), c ** (level + 1), c ** (depth - level - 1)).sum(2).view(len(leaves), c ** level, c)

    def level_logits(self, state: Tensor, level: int) -> Tensor:
        """Policy logits [B, c^level, c] of every node of `level`."""
        start = self.tree.node_offset(level)
        nodes = slice(start, start + self.tree.nodes_at(level))
        return torch.einsum("bh,nhc->bnc", state, self.weights[nodes]) + self.biases[nodes]

    @staticmethod
    def weighted_log_probs(logits: Tensor, counts: Tensor) -> Tensor:
        """log of softmax(logits) * counts, renormalised (-inf for empty children)."""
        mixed = torch.log_softmax(logits, dim=-1) + counts.float().log()
        normalised = mixed - torch.logsumexp(mixed, dim=-1, keepdim=True)
        return torch.where(counts > 0, normalised, -torch.inf)   # also under exhausted nodes (no NaN)

    def item_log_probs(self, state: Tensor, available: Tensor | None) -> Tensor:
        """log pi(path of item) [B, n_items] for every item (-inf for unavailable ones)."""
        tree, batch = self.tree, len(state)
        leaves = self.leaf_available(available, batch)
        total = torch.zeros(batch, tree.c ** tree.depth, device=state.device)
        for level in range(tree.depth):
            log_probs = self.weighted_log_probs(self.level_logits(state, level), self.child_counts(leaves, level))
            total += log_probs.reshape(batch, -1).repeat_interleave(tree.c ** (tree.depth - level - 1), dim=1)
        return total[:, self.leaf_of_item]

    def path_log_probs(self, state: Tensor, slate: Tensor, available: Tensor | None) -> tuple[Tensor, Tensor]:
        """(log pi of each slot's item given the items available then: the slate's
        available set minus its earlier slots [B, k]; the plain node distributions on the
        paths [B, k, D, c], for the uniformity regulariser)."""
        tree, batch, k = self.tree, len(state), slate.shape[1]
        leaves = self.leaf_available(available, batch)
        codes = self.codes[slate]                                                   # [B, k, D]
        earlier = torch.ones(k, k, dtype=torch.bool, device=state.device).tril(-1)  # slot i < slot j
        log_probs, plain = [], []
        prefix = torch.zeros(batch, k, dtype=torch.int64, device=state.device)     # node index within the level
        for level in range(tree.depth):
            node = self.tree.node_offset(level) + prefix
            logits = torch.einsum("bh,bkhc->bkc", state, self.weights[node]) + self.biases[node]
            counts = self.child_counts(leaves, level).gather(1, prefix[:, :, None].expand(-1, -1, tree.c))
            # Earlier slots under the same node are no longer available.
            same_node = (prefix[:, :, None] == prefix[:, None, :]) & earlier      # [B, j, i]
            taken = torch.nn.functional.one_hot(codes[:, :, level], tree.c)       # [B, i, c]
            counts = counts - torch.einsum("bji,bic->bjc", same_node.float(), taken.float())
            level_log_probs = self.weighted_log_probs(logits, counts)
            log_probs.append(level_log_probs.gather(2, codes[:, :, level:level + 1]).squeeze(2))
            plain.append(torch.softmax(logits, dim=-1))
            prefix = prefix * tree.c + codes[:, :, level]
        return torch.stack(log_probs, 2).sum(2), torch.stack(plain, 2)

    @torch.no_grad()
    def sample(self, state: Tensor, available: Tensor | None, k: int, greedy: bool) -> Tensor:
        """k distinct items per row, each a root-to-leaf walk (sampled, or argmax per level)."""
        tree, batch = self.tree, len(state)
        leaves = self.leaf_available(available, batch)
        rows = torch.arange(batch, device=state.device)
        slate = []
        for _ in range(k):
            prefix = torch.zeros(batch, dtype=torch.int64, device=state.device)
            for level in range(tree.depth):
                node = tree.node_offset(level) + prefix
                logits = torch.einsum("bh,bhc->bc", state, self.weights[node]) + self.biases[node]
                counts = self.child_counts(leaves, level)[rows, prefix]
                log_probs = self.weighted_log_probs(logits, counts)
                child = log_probs.argmax(1) if greedy else torch.multinomial(log_probs.exp(), 1).squeeze(1)
                prefix = prefix * tree.c + child
            leaves[rows, prefix] = False
            slate.append(self.item_of_leaf[prefix])
        return torch.stack(slate, dim=1)


class TPGRLearner(Learner):
    def __init__(self, tree: BalancedTree, slate_size: int, feature_dim: int, dim: int, params: dict[str, Any],
                 device: torch.device, item_vectors: Tensor | None = None, slate_baseline: bool = False):
        self.n_items, self.slate_size, self.params = tree.n_items, slate_size, params
        #: Whether a slot's return less its slate's mean is its advantage: where each slot
        #: earns its own reward (the offline environment), not a share of the step's.
        self.slate_baseline = slate_baseline
        self.policy = TreePolicy(tree, dim, params["hidden"], feature_dim, item_vectors).to(device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=params["lr"], weight_decay=params["l2"])
        self.episodes = EpisodeBuffer(params["gamma"])
        self.acted_available: Tensor | None = None
        self.episode_step: Tensor | None = None   # each row's time step in its current episode
        #: The last batch's time steps not yet learned from: (data, advantages), one per step.
        self.steps_left: list[tuple[dict[str, Tensor], Tensor]] = []

    def act(self, context: Context, available: Tensor | None, explore: bool) -> Tensor:
        if explore:
            self.acted_available = available
        with torch.no_grad():
            state = self.policy.state(context)
        return self.policy.sample(state, available, self.slate_size, greedy=not explore)

    def observe(self, context, slate, slot_rewards, next_context, terminated, truncated) -> None:
        if self.episode_step is None:
            self.episode_step = torch.zeros(len(slate), dtype=torch.int64, device=slate.device)
        data = {**context.as_dict(), "slate": slate, "step": self.episode_step}
        self.episodes.add(with_availability(data, self.acted_available), slot_rewards, terminated | truncated)
        self.episode_step = torch.where(terminated | truncated, 0, self.episode_step + 1)

    def update(self) -> dict[str, float]:
        """One REINFORCE step on `episodes_per_update` episodes of the last batch of
        finished episodes, at one time step (the reference code's TPGR.train: an Adam step
        per time step of a batch of episodes; a batch of more finished episodes, as when
        all n_envs users end together, is cut into groups of `episodes_per_update`).
        Returns (less the slate's mean with `slate_baseline`) are standardised over the
        batch (METHODS.md, "TPGR"). A new batch replaces the steps left of the last one;
        the steps run in a random order."""
        p = self.params
        if self.episodes.n_complete >= p["episodes_per_update"]:
            data, returns = self.episodes.pop_complete()
            if self.slate_baseline:   # a slate's mean slot return: the state's baseline
                returns = returns - returns.mean(1, keepdim=True)
            advantages = (returns - returns.mean()) / (returns.std() + 1e-8) if returns.numel() > 1 else returns * 0
            self.steps_left = []
            for t in data["step"].unique():
                rows = torch.nonzero(data["step"] == t).squeeze(1)
                rows = rows[torch.randperm(len(rows), device=rows.device)]
                self.steps_left += [({key: value[chunk] for key, value in data.items()}, advantages[chunk])
                                    for chunk in rows.split(p["episodes_per_update"])]
            self.steps_left = [self.steps_left[i] for i in torch.randperm(len(self.steps_left)).tolist()]
        if not self.steps_left:
            return {}
        data, advantages = self.steps_left.pop()
        state = self.policy.state(Context.from_dict(data))
        log_probs, plain = self.policy.path_log_probs(state, data["slate"], data.get("available"))
        policy_loss = -(log_probs * advantages).sum(1).mean()                   # REINFORCE, per slot
        uniformity = (plain - 1.0 / self.policy.tree.c).pow(2).mean()           # reference code's regulariser
        loss = policy_loss + p["entropy_factor"] * uniformity
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item(), "policy_loss": policy_loss.item(), "advantage": advantages.mean().item()}

    @torch.no_grad()
    def scores(self, context: Context) -> Tensor:
        return self.policy.item_log_probs(self.policy.state(context), ~window_items(context.history, self.n_items))


class TPGR(RLOfflineMethod):
    """TPGR trained on the offline environment; ranks items by their path probability."""

    defaults = DEFAULTS

    def make_learner(self, split: Split) -> Learner:
        vectors = self.data.item_vectors
        self.tree = BalancedTree(split.n_items, self.params["child_num"], vectors.cpu().numpy().astype(np.float64))
        return TPGRLearner(self.tree, self.data.slate_size, self.data.feature_dim, self.data.item_vectors.shape[1],
                           self.params, self.ctx.device, vectors, slate_baseline=True)


class TPGRAgent(RLOnlineAgent):
    """TPGR on a simulator: a tree over the catalogue items (RANDOM clustering)."""

    defaults = DEFAULTS
    online_removals = ("TPGR: tree built by random balanced clustering over the catalogue items (no item vectors on "
                       "the simulators; the reference code's RANDOM option)",)

    def make_learner(self) -> Learner:
        tree = BalancedTree(self.n_items, self.params["child_num"], rng=self.ctx.rng(offset=1))
        return TPGRLearner(tree, self.slate_size, self.feature_dim, self.params["dim"], self.params,
                           self.ctx.device)
