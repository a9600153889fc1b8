"""KGRL: Chen, Huang, Yao, Wang, Liu, Zhang, "Knowledge-guided Deep Reinforcement Learning
for Interactive Recommendation", IJCNN 2020 (arXiv:2004.08068). No public code.

The paper, read top to bottom in ``KGRLNetwork`` and ``KGRLLearner.update``:

- Item representations come from a graph convolutional network over the knowledge graph
  (the paper's GCN layer, Kipf & Welling's form H^{l+1} = sigma(A_hat H^l W^l) with
  A_hat = D^-1/2 (A + I) D^-1/2), so related items share information.
- State: attention over the user's clicked items (the paper's attention module):
  alpha_j = softmax_j(v^T tanh(W_e e_j + W_q e_last)), m = sum_j alpha_j e_j, and the
  state s = ReLU(W [m; e_last; u]) with the user features u where there are any.
- Actor-critic (deterministic policy gradient): the actor maps s to an action vector
  a = tanh(MLP(s)) in item-embedding space; the critic Q(s, a) learns from the TD target
  y = r + gamma Q'(s', a') with target networks updated softly (tau); the actor ascends
  Q(s, mu(s)).
- Local knowledge network (the paper's knowledge-guided candidate selection): the
  candidates at each step are the items within ``hops`` hops, in the knowledge graph, of
  the items the user clicked; the recommendation is the candidates with the highest
  <a, e_i>.

Adaptations (METHODS.md, "RL baselines"):
- The knowledge graph is the pseudo-KG of ``baselines.side_info`` (item categories or
  pseudo-categories, plus an item co-occurrence kNN graph), labelled in ``substitutes``;
  its node features start from the environment's item embeddings (SVD of the training
  interactions; a category node from the mean of its items).
- Slates: the k best candidates; when fewer than k are available the rest come from the
  other items, ranked below every candidate (for ranking, likewise: candidates first).
- Exploration: Gaussian noise on the action vector (DDPG).
- The critic values each shown item at its embedding, Q(s, e_i), one transition per slot
  with its own reward, rather than the emitted vector: the reward is the items', and
  online (empty windows) it is what trains the plain item embeddings. So the critic is
  only ever asked about item embeddings: the TD target values s' at the item the target
  policy recommends there, a' = e'_j with j the top of its ranking (as DEERS and
  Wolpertinger-style item actions do), and the actor's step evaluates Q at mu(s) rescaled
  to the items' mean norm (the ranking <mu(s), e_i> does not depend on the norm; a tanh
  vector is ~10x longer than the offline item embeddings, where Q is extrapolation).
  Known: with slates the actor's ranking <mu(s), e_i> and the per-item critic can
  disagree (METHODS.md).
- Online (simulators: no knowledge graph), the GCN and the local knowledge network are
  removed, as the IMRL paper removed side information: plain learned item embeddings,
  every available item a candidate.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from baselines.rl_common import (SHARED_DEFAULTS, Context, Learner, ReplayBuffer, RLOfflineMethod, RLOnlineAgent,
                                 exclude, masked)
from baselines.side_info import KnowledgeGraph, build_knowledge_graph, item_categories, pseudo_kg_note
from imrl.data.split import Split

DEFAULTS: dict[str, Any] = {
    "hidden": 64,
    "gcn_layers": 2,
    "hops": 2,                   # radius of the local knowledge network
    "knn": 10,                   # co-occurrence neighbours per item in the pseudo-KG
    "actor_lr": 1e-3,
    "critic_lr": 1e-3,
    "gamma": 0.9,
    "tau": 0.01,                 # soft target update rate
    "batch_size": 64,
    "buffer_size": 20_000,
    "noise_std": 0.2,            # exploration noise on the action vector
    "n_pseudo_categories": 20,
    **SHARED_DEFAULTS,           # env (offline environment arguments), n_envs, dim (online item embeddings)
}

#: The offline method's departure, chosen on the validation split of the user-model
#: environment (bench/tune_rl.py; METHODS.md, "Offline defaults: the search"): slower
#: target networks.
OFFLINE_DEFAULTS: dict[str, Any] = {**DEFAULTS, "tau": 0.001}


def to_torch_sparse(matrix: sp.spmatrix, device: torch.device) -> Tensor:
    coo = matrix.tocoo()
    index = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(index, torch.from_numpy(coo.data.astype(np.float32)), coo.shape,
                                   check_invariants=True).coalesce().to(device)


class LocalKnowledge:
    """The local knowledge network: the item nodes within `hops` hops of given items in a
    knowledge graph whose items are nodes ``graph.offsets["item"] + i``."""

    def __init__(self, graph: KnowledgeGraph, hops: int, device: torch.device):
        self.n_nodes, self.hops = graph.n_nodes, hops
        self.item_offset, self.n_items = graph.offsets["item"], graph.counts["item"]
        self.adjacency = to_torch_sparse(graph.adjacency(), device)

    def candidates(self, history: Tensor) -> Tensor:
        """bool [B, n_items]: items within `hops` hops of the window items (pads ignored)."""
        frontier = torch.zeros(len(history), self.n_nodes + 1, device=history.device)
        nodes = torch.where(history < self.n_items, history + self.item_offset, self.n_nodes)
        frontier.scatter_(1, nodes, 1.0)
        frontier = frontier[:, :-1]
        reached = frontier > 0
        for _ in range(self.hops):
            frontier = torch.sparse.mm(self.adjacency, frontier.T).T   # A is symmetric
            reached |= frontier > 0
            frontier = reached.float()
        return reached[:, self.item_offset:self.item_offset + self.n_items]


class GraphItemEncoder(nn.Module):
    """GCN over the knowledge graph; the item rows of its last layer are the item embeddings."""

    def __init__(self, graph: KnowledgeGraph, node_features: Tensor, layers: int):
        super().__init__()
        a = graph.adjacency() + sp.eye(graph.n_nodes, dtype=np.float32)
        degree = np.asarray(a.sum(axis=1)).ravel()
        scale = sp.diags(1.0 / np.sqrt(degree))
        self.register_buffer("a_hat", to_torch_sparse(scale @ a @ scale, node_features.device))   # D^-1/2 (A+I) D^-1/2
        self.features = nn.Parameter(node_features.clone())                                      # H^0
        dim = node_features.shape[1]
        self.weights = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))                 # W^l
        self.item_rows = slice(graph.offsets["item"], graph.offsets["item"] + graph.counts["item"])

    def forward(self) -> Tensor:
        h = self.features
        for i, layer in enumerate(self.weights):
            h = torch.sparse.mm(self.a_hat, layer(h))                                            # A_hat H W
            if i < len(self.weights) - 1:
                h = torch.relu(h)
        return h[self.item_rows]


class KGRLNetwork(nn.Module):
    """Item encoder (GCN or plain embeddings), attentive state, actor and critic."""

    def __init__(self, n_items: int, dim: int, hidden: int, feature_dim: int, item_encoder: nn.Module | None):
        super().__init__()
        self.n_items = n_items
        self.item_encoder = item_encoder
        # Online: plain embeddings on the scale of the tanh actor's output (the critic compares them).
        self.plain_items = None if item_encoder is not None else nn.Parameter(0.5 * torch.randn(n_items, dim))
        self.attend_items = nn.Linear(dim, hidden, bias=False)     # W_e
        self.attend_query = nn.Linear(dim, hidden)                 # W_q
        self.attend_score = nn.Linear(hidden, 1, bias=False)       # v
        self.state_layer = nn.Linear(2 * dim + feature_dim, hidden)
        self.actor = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim), nn.Tanh())
        self.critic = nn.Sequential(nn.Linear(hidden + dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def item_embeddings(self) -> Tensor:
        return self.item_encoder() if self.item_encoder is not None else self.plain_items

    def state(self, context: Context, items: Tensor) -> Tensor:
        table = torch.cat([items, items.new_zeros(1, items.shape[1])])    # the pad embeds to 0
        e = table[context.history]                                       # [B, N, d]
        last = e[:, -1]                                                  # newest item (the query)
        logits = self.attend_score(torch.tanh(self.attend_items(e) + self.attend_query(last)[:, None])).squeeze(2)
        logits = logits.masked_fill(context.history == self.n_items, -torch.inf)
        alpha = torch.nan_to_num(torch.softmax(logits, dim=1))          # an empty window attends to nothing
        summary = (alpha[:, :, None] * e).sum(1)                         # m
        parts = [summary, last] + ([context.features] if context.features is not None else [])
        return torch.relu(self.state_layer(torch.cat(parts, dim=1)))

    def q(self, state: Tensor, action: Tensor) -> Tensor:
        return self.critic(torch.cat([state, action], dim=1)).squeeze(1)


def at_item_scale(action: Tensor, items: Tensor) -> Tensor:
    """`action` [B, d] rescaled to the mean norm of the item embeddings [n, d], where the
    per-item critic is trained; the ranking <a, e_i> is the same at any positive scale."""
    return action * (items.norm(dim=1).mean() / action.norm(dim=1, keepdim=True).clamp_min(1e-8))


class KGRLLearner(Learner):
    def __init__(self, n_items: int, slate_size: int, feature_dim: int, dim: int, params: dict[str, Any],
                 device: torch.device, graph: KnowledgeGraph | None = None, node_features: Tensor | None = None):
        self.n_items, self.slate_size, self.params = n_items, slate_size, params
        encoder = GraphItemEncoder(graph, node_features, params["gcn_layers"]) if graph is not None else None
        self.local = LocalKnowledge(graph, params["hops"], device) if graph is not None else None
        self.net = KGRLNetwork(n_items, dim, params["hidden"], feature_dim, encoder).to(device)
        self.target = copy.deepcopy(self.net).requires_grad_(False)
        critic_parts = [p for name, p in self.net.named_parameters() if not name.startswith("actor.")]
        self.critic_optimizer = torch.optim.Adam(critic_parts, lr=params["critic_lr"])
        self.actor_optimizer = torch.optim.Adam(self.net.actor.parameters(), lr=params["actor_lr"])
        self.buffer = ReplayBuffer(params["buffer_size"], device)

    def ranking(self, context: Context, action: Tensor, items: Tensor) -> Tensor:
        """<a, e_i>, with every local-knowledge candidate above every other item."""
        scores = action @ items.T
        if self.local is None:
            return scores
        below = scores - (scores.max(dim=1, keepdim=True).values - scores.min(dim=1, keepdim=True).values + 1.0)
        return torch.where(self.local.candidates(context.history), scores, below)

    @torch.no_grad()
    def act(self, context: Context, available: Tensor | None, explore: bool) -> Tensor:
        items = self.net.item_embeddings()
        action = self.net.actor(self.net.state(context, items))                # a = mu(s)
        if explore:
            action = (action + self.params["noise_std"] * torch.randn_like(action)).clamp(-1.0, 1.0)
        return masked(self.ranking(context, action, items), available).topk(self.slate_size, dim=1).indices

    def observe(self, context, slate, slot_rewards, next_context, terminated, truncated) -> None:
        self.buffer.add({**context.as_dict(), **next_context.as_dict("next_"), "slate": slate,
                         "rewards": slot_rewards, "terminated": terminated.float()})

    def update(self) -> dict[str, float]:
        p = self.params
        if len(self.buffer) < p["batch_size"]:
            return {}
        batch = self.buffer.sample(p["batch_size"])
        state_context, next_context = Context.from_dict(batch), Context.from_dict(batch, "next_")
        y = self.td_target(batch["rewards"], batch["terminated"], next_context)
        items = self.net.item_embeddings()
        state = self.net.state(state_context, items)
        # The critic values each item shown, at its embedding: the reward is the item's (and
        # so the item embeddings learn from it too); each slot is one transition.
        slate_size = batch["slate"].shape[1]
        shown = items[batch["slate"]].flatten(0, 1)                                  # [B k, d]
        critic_loss = (self.net.q(state.repeat_interleave(slate_size, 0), shown) - y.flatten()).pow(2).mean()
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()
        # Deterministic policy gradient: ascend Q(s, mu(s)); the state and critic are held fixed.
        # Q is evaluated where it is trained, at the items' scale (at_item_scale).
        state = state.detach()
        actor_loss = -self.net.q(state, at_item_scale(self.net.actor(state), items.detach())).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()
        with torch.no_grad():   # soft target update: theta' <- tau theta + (1 - tau) theta'
            for target, online in zip(self.target.parameters(), self.net.parameters()):
                target.lerp_(online, p["tau"])
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}

    @torch.no_grad()
    def td_target(self, rewards: Tensor, terminated: Tensor, next_context: Context) -> Tensor:
        """Per slot [B, k]: y = r + gamma Q'(s', e'_{a'}), with a' the item the target policy
        recommends in s' (the top of its ranking, the windows' items excluded): the critic
        learns Q at item embeddings only, so that is where s' is valued (the emitted vector
        mu'(s') is outside what it learns, and bootstrapping from it diverges)."""
        items = self.target.item_embeddings()
        state = self.target.state(next_context, items)
        ranking = self.ranking(next_context, self.target.actor(state), items)
        best = exclude(exclude(ranking, next_context.history), next_context.skipped).argmax(dim=1)
        next_value = self.target.q(state, items[best])
        return rewards + self.params["gamma"] * ((1.0 - terminated) * next_value)[:, None]

    @torch.no_grad()
    def scores(self, context: Context) -> Tensor:
        items = self.net.item_embeddings()
        return self.ranking(context, self.net.actor(self.net.state(context, items)), items)


class KGRL(RLOfflineMethod):
    """KGRL trained on the offline environment over the pseudo-KG; ranks items by
    <mu(s), e_i> with the local-knowledge candidates first."""

    defaults = OFFLINE_DEFAULTS

    def make_learner(self, split: Split) -> Learner:
        item_vectors = self.data.item_vectors.cpu().numpy()
        categories, notes = item_categories(split, self.params["n_pseudo_categories"], self.ctx.seed)
        self.graph = build_knowledge_graph(split, categories, self.params["knn"], with_users=False)
        self.substitutes = [f"KGRL knowledge graph: {pseudo_kg_note(split, self.params['knn'], notes)}", *notes]
        return KGRLLearner(split.n_items, self.data.slate_size, self.data.feature_dim, self.data.item_vectors.shape[1],
                           self.params, self.ctx.device, self.graph, self.node_features(item_vectors))

    def node_features(self, item_vectors: np.ndarray) -> Tensor:
        """H^0: items from the environment's embeddings, a category from the mean of its items."""
        graph = self.graph
        features = np.zeros((graph.n_nodes, item_vectors.shape[1]), dtype=np.float32)
        items = slice(graph.offsets["item"], graph.offsets["item"] + graph.counts["item"])
        features[items] = item_vectors
        contains = graph.relations.index("contains")
        heads = graph.heads[graph.relation_ids == contains]
        tails = graph.tails[graph.relation_ids == contains] - graph.offsets["item"]
        np.add.at(features, heads, item_vectors[tails])
        counts = np.bincount(heads, minlength=graph.n_nodes)[:, None]
        features[counts[:, 0] > 0] /= counts[counts[:, 0] > 0]
        return torch.from_numpy(features).to(self.ctx.device)


class KGRLAgent(RLOnlineAgent):
    """KGRL on a simulator: the same attentive actor-critic, without the knowledge graph."""

    defaults = DEFAULTS
    online_removals = ("KGRL: GCN over the knowledge graph and local knowledge network removed (the simulators "
                       "have no knowledge graph): plain item embeddings, every item a candidate",)

    def make_learner(self) -> Learner:
        return KGRLLearner(self.n_items, self.slate_size, self.feature_dim, self.params["dim"],
                           self.params, self.ctx.device)
