"""PGPR: Xian, Fu, Muthukrishnan, de Melo, Zhang, "Reinforcement Knowledge Graph Reasoning
for Explainable Recommendation", SIGIR 2019 (arXiv:1906.05237); reference code
orcax/PGPR (PyTorch 1.0, read, not copied).

The paper, read top to bottom in ``TransE``, ``KGWalk``, ``PathActorCritic`` and ``PGPR``:

- Knowledge-graph embeddings (the paper's Section 3.2, a TransE-style model): entities
  and relations in one space, a triple (h, r, t) scored <h + r, t>, trained with negative
  sampling against tails of the same type; the RL agent uses them frozen.
- The walk (Section 3.3, the MDP): a state s_t = (u, e_t, h_t) with the one-step history
  h_t = (e_{t-1}, r_t) is the vector [u; e_t; e_{t-1}; r_t]; the actions at e_t are its
  outgoing edges to unvisited nodes plus a self-loop; when there are more than
  ``max_acts`` they are pruned to those with the highest user-conditioned score
  <u + r_path(type), e'> (the paper's "user-conditional action pruning"); paths have at
  most 3 hops.
- Terminal reward (the paper's soft reward): for a path that follows a valid pattern and
  ends at an item i, max(0, <u + r_purchase, e_i> / max_j <u + r_purchase, e_j>); else 0.
- Policy and value network (the paper's actor-critic with action masking): two ELU
  layers with dropout, a softmax over the masked action slots and a value head;
  REINFORCE with the value as baseline, an entropy bonus and action dropout, the
  learning rate decayed linearly (the reference code's schedule).
- Recommendation (the paper's beam search): keep the ``beam`` most probable actions per
  hop (25, 5, 1), collect the items the paths end at, and rank them by
  <u + r_purchase, e_i>. Items not reached are not recommended (-inf for the evaluator).

Adaptations (METHODS.md, "RL baselines"):
- The knowledge graph is a pseudo-KG (``baselines.side_info``): users with their
  training items (purchase), item categories or pseudo-categories (belongs_to), an item
  co-occurrence kNN graph (co_occurs, the stand-in for also-bought); the valid path
  patterns are user-purchase-item then purchased_by-user-purchase-item,
  belongs_to-category-contains-item, or co_occurs-item-co_occurs-item.
- The walks are PGPR's own environment (the knowledge graph), not the offline
  recommendation environment; the budget's ``env_steps`` counts their hops and every
  batch of ``n_envs`` walks is one update.
- Online (simulators: no knowledge graph and no persistent users), only the agent
  survives: the start node is the observation (projected to a user embedding), the
  actions are the simulator's items, the one hop ends there, and the simulator's reward
  replaces the TransE reward; slates draw k distinct items from the policy renormalised
  over the available items, and the update uses the same renormalised policy.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.rl_common import (Context, EpisodeBuffer, Learner, RLOnlineAgent, TrainingStats, masked, rl_budget,
                                 seed_torch, with_availability)
from baselines.side_info import KnowledgeGraph, build_knowledge_graph, item_categories, pseudo_kg_note
from imrl.api import OfflineMethod
from imrl.checkpoint import Checkpointer
from imrl.data.split import Split
from imrl.eval.selection import ValidationSelection, validation_metric

DEFAULTS: dict[str, Any] = {
    "kge_dim": 32,                # TransE dimension
    "kge_epochs": 5,              # passes over the graph's edges to train TransE
    "kge_batch_size": 1024,
    "kge_lr": 1e-2,
    "kge_negatives": 4,
    "knn": 10,                    # co-occurrence neighbours per item in the pseudo-KG
    "max_acts": 250,              # the reference code's max_acts
    "max_path_len": 3,
    "hidden": [512, 256],
    "lr": 1e-4,
    "gamma": 0.99,
    "ent_weight": 1e-3,
    "act_dropout": 0.5,
    "beam": [25, 5, 1],           # the reference code's topk
    "n_pseudo_categories": 20,
    "episodes_per_update": 16,    # online: finished episodes per actor-critic update
    "n_envs": 32,                 # users walking at once, one update per batch (the reference batch_size)
}

#: The relations that lead from a user to nodes of each type (for the pruning score).
USER_TO_TYPE = {"user": [], "item": ["purchase"], "category": ["purchase", "belongs_to"]}
PATTERNS = (("purchase", "purchased_by", "purchase"),
            ("purchase", "belongs_to", "contains"),
            ("purchase", "co_occurs", "co_occurs"))


class TransE(nn.Module):
    """Entity and relation embeddings; score(h, r, t) = <h + r, t>. The last relation row
    is the self-loop, fixed at zero."""

    def __init__(self, n_nodes: int, n_relations: int, dim: int):
        super().__init__()
        self.entities = nn.Parameter(torch.randn(n_nodes, dim) / math.sqrt(dim))
        self.relations = nn.Parameter(torch.randn(n_relations, dim) / math.sqrt(dim))

    def relation_table(self) -> Tensor:
        return torch.cat([self.relations, self.relations.new_zeros(1, self.relations.shape[1])])

    def loss(self, heads: Tensor, relations: Tensor, tails: Tensor, negatives: Tensor) -> Tensor:
        """-log sigmoid(<h + r, t>) - sum_neg log sigmoid(-<h + r, t'>)."""
        source = self.entities[heads] + self.relations[relations]
        positive = (source * self.entities[tails]).sum(1)
        negative = (source[:, None] * self.entities[negatives]).sum(2)
        return -(F.logsigmoid(positive) + F.logsigmoid(-negative).sum(1)).mean()


def train_transe(graph: KnowledgeGraph, params: dict[str, Any], device: torch.device) -> TransE:
    model = TransE(graph.n_nodes, len(graph.relations), params["kge_dim"]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=params["kge_lr"])
    heads = torch.from_numpy(graph.heads).to(device)
    relations = torch.from_numpy(graph.relation_ids).to(device)
    tails = torch.from_numpy(graph.tails).to(device)
    # Negatives are drawn among the nodes of the tail's type.
    tail_type = [graph.relation_tail_types[name] for name in graph.relations]
    offset = torch.tensor([graph.offsets[t] for t in tail_type], device=device)
    count = torch.tensor([graph.counts[t] for t in tail_type], device=device)
    for _ in range(params["kge_epochs"]):
        for batch in torch.randperm(len(heads), device=device).split(params["kge_batch_size"]):
            r = relations[batch]
            draws = torch.rand(len(batch), params["kge_negatives"], device=device)
            negatives = offset[r][:, None] + (draws * count[r][:, None]).long()
            loss = model.loss(heads[batch], r, tails[batch], negatives)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.requires_grad_(False)


class KGWalk:
    """The batched path-walking environment over a knowledge graph with frozen TransE
    embeddings: action lists, states and rewards of paths [B, T+1] (nodes) with their
    relations [B, T]."""

    def __init__(self, graph: KnowledgeGraph, transe: TransE, max_acts: int, device: torch.device):
        self.graph, self.max_acts, self.device = graph, max_acts, device
        indptr, relation_ids, tails = graph.csr
        self.indptr = torch.from_numpy(indptr).to(device)
        self.edge_relations = torch.from_numpy(relation_ids).to(device)
        self.edge_tails = torch.from_numpy(tails).to(device)
        self.entities, self.relations = transe.entities.detach(), transe.relation_table().detach()
        self.self_loop = len(graph.relations)
        rel = {name: i for i, name in enumerate(graph.relations)}
        self.relation_index = rel
        self.user_offset, self.item_offset = graph.offsets["user"], graph.offsets["item"]
        self.n_items = graph.counts["item"]
        # Per node: <r_path(type), e>, where r_path is the relation path from a user to a node
        # of that type (PGPR's pruning score <u + r_path, e'> = <u, e'> + this).
        self.node_bias = torch.zeros(graph.n_nodes, device=device)
        for name, relation_path in USER_TO_TYPE.items():
            nodes = slice(graph.offsets[name], graph.offsets[name] + graph.counts[name])
            r_path = sum((self.relations[rel[r]] for r in relation_path), torch.zeros_like(self.relations[0]))
            self.node_bias[nodes] = self.entities[nodes] @ r_path
        self.patterns = torch.tensor([[rel[r] for r in pattern] for pattern in PATTERNS], device=device)
        self.items_embedded = self.entities[self.item_offset:self.item_offset + self.n_items]
        users = torch.arange(graph.counts["user"], device=device) + self.user_offset
        self.user_item_scale = self.user_item_scores(users).max(1).values   # soft reward scale: max_j <u + r, e_j>

    def user_item_scores(self, users: Tensor) -> Tensor:
        """<u + r_purchase, e_i> [B, n_items] (global user node ids)."""
        purchase = self.relations[self.relation_index["purchase"]]
        return (self.entities[users] + purchase) @ self.items_embedded.T

    def actions(self, users: Tensor, paths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(relations, tails, valid) [B, 1 + max_acts] at the paths' last nodes: slot 0 the
        self-loop, then the pruned unvisited out-edges sorted by (relation, tail)."""
        current = paths[:, -1]
        start, degree = self.indptr[current], self.indptr[current + 1] - self.indptr[current]
        width = max(int(degree.max()), 1)
        slots = torch.arange(width, device=self.device)
        edge = (start[:, None] + slots).clamp(max=max(len(self.edge_tails) - 1, 0))
        relations, tails = self.edge_relations[edge], self.edge_tails[edge]
        valid = (slots < degree[:, None]) & ~(tails[:, :, None] == paths[:, None, :]).any(2)
        if width > self.max_acts:   # user-conditional pruning: the max_acts best <u + r_path, e'>
            distinct, row = torch.unique(users, return_inverse=True)
            user_node = self.entities[distinct] @ self.entities.T + self.node_bias   # [U, n_nodes]
            score = user_node[row[:, None], tails]
            keep = score.masked_fill(~valid, -torch.inf).topk(self.max_acts, dim=1).indices
            relations, tails, valid = relations.gather(1, keep), tails.gather(1, keep), valid.gather(1, keep)
        key = torch.where(valid, relations * self.graph.n_nodes + tails, torch.iinfo(torch.int64).max)
        order = key.argsort(dim=1, stable=True)
        relations, tails, valid = relations.gather(1, order), tails.gather(1, order), valid.gather(1, order)
        pad = self.max_acts - relations.shape[1]
        if pad > 0:
            relations, tails, valid = F.pad(relations, (0, pad)), F.pad(tails, (0, pad)), F.pad(valid, (0, pad))
        loop = torch.full_like(current[:, None], self.self_loop)
        return (torch.cat([loop, relations], 1), torch.cat([current[:, None], tails], 1),
                torch.cat([torch.ones_like(valid[:, :1]), valid], 1))

    def state(self, paths: Tensor, path_relations: Tensor) -> Tensor:
        """[u; e_t; e_{t-1}; r_t] (zeros for the history at the start)."""
        user, current = self.entities[paths[:, 0]], self.entities[paths[:, -1]]
        if paths.shape[1] == 1:
            return torch.cat([user, current, torch.zeros_like(user), torch.zeros_like(user)], 1)
        return torch.cat([user, current, self.entities[paths[:, -2]], self.relations[path_relations[:, -1]]], 1)

    def reward(self, paths: Tensor, path_relations: Tensor) -> Tensor:
        """The soft terminal reward of complete paths."""
        final = paths[:, -1]
        is_item = (final >= self.item_offset) & (final < self.item_offset + self.n_items)
        follows = (path_relations[:, None, :] == self.patterns[None]).all(2).any(1)
        purchase = self.relations[self.relation_index["purchase"]]
        score = ((self.entities[paths[:, 0]] + purchase) * self.entities[final]).sum(1)
        scale = self.user_item_scale[paths[:, 0] - self.user_offset]
        soft = score.clamp(min=0.0) / scale.clamp(min=1e-8)   # max(0, score / scale); 0 when no item scores > 0
        return torch.where(is_item & follows, soft, torch.zeros_like(score))


class PathActorCritic(nn.Module):
    """The reference code's ActorCritic: ELU layers with dropout 0.5, masked softmax over
    action slots, a value head."""

    def __init__(self, state_dim: int, act_dim: int, hidden: list[int]):
        super().__init__()
        self.l1, self.l2 = nn.Linear(state_dim, hidden[0]), nn.Linear(hidden[0], hidden[1])
        self.actor, self.critic = nn.Linear(hidden[1], act_dim), nn.Linear(hidden[1], 1)

    def forward(self, state: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(log-probabilities [B, act_dim] (-inf where masked), values [B])."""
        x = F.dropout(F.elu(self.l1(state)), p=0.5, training=self.training)
        x = F.dropout(F.elu(self.l2(x)), p=0.5, training=self.training)
        logits = self.actor(x).masked_fill(~mask, -torch.inf)
        return torch.log_softmax(logits, dim=1), self.critic(x).squeeze(1)


def actor_critic_loss(log_probs: Tensor, entropy: Tensor, values: Tensor, returns: Tensor,
                      ent_weight: float) -> tuple[Tensor, dict[str, float]]:
    """REINFORCE with the value as baseline, value regression and an entropy bonus (the
    reference code's loss)."""
    advantage = returns - values
    actor = -(log_probs * advantage.detach()).mean()
    critic = advantage.pow(2).mean()
    loss = actor + critic - ent_weight * entropy.mean()
    return loss, {"loss": loss.item(), "actor_loss": actor.item(), "critic_loss": critic.item()}


def masked_entropy(log_probs: Tensor) -> Tensor:
    probs = log_probs.exp()
    return -(probs * torch.nan_to_num(log_probs, neginf=0.0)).sum(-1)


class PGPR(OfflineMethod):
    """PGPR on the pseudo-KG of the split; recommends by beam search."""

    defaults = DEFAULTS

    def fit(self, split: Split) -> None:
        p, budget = self.params, rl_budget(self.ctx)
        seed_torch(self.ctx)
        device = self.ctx.device
        categories, notes = item_categories(split, p["n_pseudo_categories"], self.ctx.seed)
        self.graph = build_knowledge_graph(split, categories, p["knn"], with_users=True)
        self.substitutes = [f"PGPR knowledge graph: {pseudo_kg_note(split, p['knn'], notes)}", *notes]
        self.transe = train_transe(self.graph, p, device)
        self.walk = KGWalk(self.graph, self.transe, p["max_acts"], device)
        self.policy = PathActorCritic(4 * p["kge_dim"], p["max_acts"] + 1, p["hidden"]).to(device)
        self.split = split
        self.training = self.train_agent(budget)

    def train_agent(self, budget: dict[str, float]) -> TrainingStats:
        """Batches of n_envs users walk max_path_len hops; one update per batch; the policy
        with the best validation recall@20 (every ``validate_every`` updates and at the end,
        imrl/eval/selection.py) is kept. Between batches the loop saves the policy, its
        optimiser and the counters when a checkpoint is due; a resumed run rebuilds the graph
        and TransE (deterministic for the seed) and goes on from the last save."""
        p, device, start = self.params, self.ctx.device, time.perf_counter()
        indptr, offset = self.graph.csr[0], self.graph.offsets["user"]
        nodes = np.arange(offset, offset + self.graph.counts["user"])
        users = torch.from_numpy(nodes[indptr[nodes + 1] > indptr[nodes]]).to(device)   # users with a purchase
        walks = max(1, math.ceil(budget["env_steps"] / (p["n_envs"] * p["max_path_len"])))
        checkpoint = Checkpointer(self.ctx, "offline", type(self))
        saved = checkpoint.restore()
        if saved is None:
            loop = {"batch": 0, "stats": TrainingStats(), "total_reward": 0.0, "policy": self.policy,
                    "optimizer": torch.optim.Adam(self.policy.parameters(), lr=p["lr"]),
                    "selection": ValidationSelection(budget["validate_every"])}
        else:
            loop = saved["loop"]
        self.policy, optimizer, stats, selection = loop["policy"], loop["optimizer"], loop["stats"], loop["selection"]
        self.policy.train()
        while loop["batch"] < walks:
            batch = loop["batch"]
            for group in optimizer.param_groups:   # linear decay, as the reference code
                group["lr"] = p["lr"] * max(1e-4, 1.0 - batch / walks)
            batch_users = users[torch.randint(len(users), (p["n_envs"],), device=device)]
            log_probs, entropies, values, rewards, _ = self.rollout(batch_users, sample=True)
            returns = torch.zeros_like(rewards)
            following = torch.zeros_like(rewards[:, 0])
            for t in reversed(range(rewards.shape[1])):
                following = rewards[:, t] + p["gamma"] * following
                returns[:, t] = following
            loss, _ = actor_critic_loss(log_probs, entropies, values, returns, p["ent_weight"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            stats.updates += 1
            stats.env_steps += rewards.numel()
            loop["total_reward"] += float(rewards.sum())
            loop["batch"] += 1
            if selection.due(stats.updates):
                self._validate(selection, stats.updates)
            if loop["batch"] < walks and checkpoint.due():
                checkpoint.save({"where": f"walk batch {loop['batch']} of {walks}", "loop": loop})
        self._validate(selection, stats.updates)   # the last policy is a candidate too
        self.policy.load_state_dict(selection.best_state)
        self.diagnostics = {"environment": {"kind": "knowledge_graph"},
                            "validation_selection": selection.summary()}
        self.policy.eval()
        stats.seconds = time.perf_counter() - start   # of this process (a resumed run: since it resumed)
        stats.reward = loop["total_reward"] / max(stats.env_steps, 1)
        return stats

    def _validate(self, selection: ValidationSelection, updates: int) -> None:
        self.policy.eval()   # the beam search as at test time: no dropout
        value = validation_metric(lambda users: self.score(users, "valid"), self.split, selection.metric,
                                  self.ctx.device)
        self.policy.train()
        selection.record(updates, value, lambda: copy.deepcopy(self.policy.state_dict()))

    def rollout(self, users: Tensor, sample: bool):
        """One walk per user; (log-probs, entropies, values, rewards) [B, hops] and the
        paths (nodes [B, hops+1], relations [B, hops])."""
        p, walk = self.params, self.walk
        paths, path_relations = users[:, None], users.new_zeros(len(users), 0)
        log_probs, entropies, values, rewards = [], [], [], []
        for hop in range(p["max_path_len"]):
            relations, tails, valid = walk.actions(users, paths)
            mask = valid
            if p["act_dropout"] > 0:   # action dropout (never the self-loop, only where >= 5 actions)
                keep = torch.rand(valid.shape, device=valid.device) >= p["act_dropout"]
                keep[:, 0] = True
                mask = torch.where(valid.sum(1, keepdim=True) >= 5, valid & keep, valid)
            action_log_probs, value = self.policy(walk.state(paths, path_relations), mask)
            choice = torch.multinomial(action_log_probs.exp(), 1).squeeze(1)
            log_probs.append(action_log_probs.gather(1, choice[:, None]).squeeze(1))
            entropies.append(masked_entropy(action_log_probs))
            values.append(value)
            paths = torch.cat([paths, tails.gather(1, choice[:, None])], 1)
            path_relations = torch.cat([path_relations, relations.gather(1, choice[:, None])], 1)
            last = hop == p["max_path_len"] - 1
            rewards.append(walk.reward(paths, path_relations) if last else torch.zeros(len(users), device=users.device))
        return (torch.stack(log_probs, 1), torch.stack(entropies, 1), torch.stack(values, 1),
                torch.stack(rewards, 1), (paths, path_relations))

    @torch.no_grad()
    def beam_search(self, users: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(paths [B, P, hops+1], relations [B, P, hops], path probabilities [B, P]) of the
        beam: at hop h the ``beam[h]`` most probable actions of every path so far."""
        walk, batch = self.walk, len(users)
        paths, path_relations = users[:, None], users.new_zeros(len(users), 0)
        probs = torch.ones(batch, device=users.device)
        path_users = users
        for width in self.params["beam"]:
            relations, tails, valid = walk.actions(path_users, paths)
            log_probs, _ = self.policy(walk.state(paths, path_relations), valid)
            top = log_probs.topk(min(width, log_probs.shape[1]), dim=1)
            ok = torch.isfinite(top.values)   # fewer valid actions than the beam width
            rows = torch.arange(len(paths), device=users.device)[:, None].expand_as(top.indices)[ok]
            chosen = top.indices[ok]
            paths = torch.cat([paths[rows], tails[rows, chosen][:, None]], 1)
            path_relations = torch.cat([path_relations[rows], relations[rows, chosen][:, None]], 1)
            probs = probs[rows] * top.values[ok].exp()
            path_users = path_users[rows]
        owner = (path_users[:, None] == users[None]).float().argmax(1)
        return self._per_user(owner, batch, paths, path_relations, probs)

    @staticmethod
    def _per_user(owner: Tensor, batch: int, *arrays: Tensor) -> tuple[Tensor, ...]:
        """Regroup path rows by user, padded with -1 (and probability 0) to a common count."""
        counts = torch.bincount(owner, minlength=batch)
        width = int(counts.max()) if len(owner) else 0
        order = owner.argsort(stable=True)
        position = torch.arange(len(owner), device=owner.device) - (counts.cumsum(0) - counts)[owner[order]]
        out = []
        for array in arrays:
            shape = (batch, width, *array.shape[1:])
            grouped = torch.full(shape, -1 if not array.is_floating_point() else 0.0, dtype=array.dtype,
                                 device=array.device)
            grouped[owner[order], position] = array[order]
            out.append(grouped)
        return tuple(out)

    def recommend(self, users: Tensor) -> Tensor:
        """Scores [B, n_items]: <u + r_purchase, e_i> for the items the beam reaches, -inf
        for the others."""
        nodes = users + self.graph.offsets["user"]
        paths, _, _ = self.beam_search(nodes)
        final = paths[:, :, -1]
        is_item = (final >= self.walk.item_offset) & (final < self.walk.item_offset + self.walk.n_items)
        reached = torch.zeros(len(users), self.walk.n_items + 1, dtype=torch.bool, device=users.device)
        reached.scatter_(1, torch.where(is_item, final - self.walk.item_offset, self.walk.n_items), True)
        scores = self.walk.user_item_scores(nodes)
        return scores.masked_fill(~reached[:, :-1], -torch.inf)

    def score(self, users: torch.Tensor, phase: str) -> torch.Tensor:
        return torch.cat([self.recommend(chunk.to(self.ctx.device)) for chunk in users.split(256)])


def slate_log_probs(log_probs: Tensor, slate: Tensor) -> Tensor:
    """log-probability [B, k] of each slot's item when the slate is drawn one item after
    another without replacement from softmax(log_probs)."""
    taken = torch.zeros_like(log_probs, dtype=torch.bool)
    out = []
    for j in range(slate.shape[1]):
        remaining = log_probs.masked_fill(taken, -torch.inf)
        remaining = remaining - torch.logsumexp(remaining, dim=1, keepdim=True)
        out.append(remaining.gather(1, slate[:, j:j + 1]).squeeze(1))
        taken = taken.scatter(1, slate[:, j:j + 1], True)   # not in place: autograd saw `taken`
    return torch.stack(out, 1)


class OneHopLearner(Learner):
    """PGPR's agent on a simulator: start node = the observation projected to a user
    embedding, state [u; u; 0; 0] as at PGPR's first hop, one hop to an item."""

    def __init__(self, n_items: int, slate_size: int, feature_dim: int, params: dict[str, Any], device: torch.device):
        self.n_items, self.slate_size, self.params = n_items, slate_size, params
        dim = params["kge_dim"]
        self.user_projection = nn.Linear(feature_dim, dim).to(device)
        self.policy = PathActorCritic(4 * dim, n_items, params["hidden"]).to(device)
        parameters = [*self.user_projection.parameters(), *self.policy.parameters()]
        self.optimizer = torch.optim.Adam(parameters, lr=params["lr"])
        self.episodes = EpisodeBuffer(params["gamma"])
        self.acted_available: Tensor | None = None

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        u = self.user_projection(features)
        state = torch.cat([u, u, torch.zeros_like(u), torch.zeros_like(u)], 1)
        return self.policy(state, torch.ones(len(u), self.n_items, dtype=torch.bool, device=u.device))

    @torch.no_grad()
    def act(self, context: Context, available: Tensor | None, explore: bool) -> Tensor:
        self.policy.train(explore)
        log_probs = masked(self.forward(context.features)[0], available).log_softmax(1)   # renormalised
        if explore:   # sample the slate without replacement
            self.acted_available = available
            return torch.multinomial(log_probs.exp(), self.slate_size, replacement=False)
        return log_probs.topk(self.slate_size, dim=1).indices   # beam search over one hop

    def observe(self, context, slate, slot_rewards, next_context, terminated, truncated) -> None:
        data = with_availability({"features": context.features, "slate": slate}, self.acted_available)
        self.episodes.add(data, slot_rewards, terminated | truncated)

    def update(self) -> dict[str, float]:
        p = self.params
        if self.episodes.n_complete < p["episodes_per_update"]:
            return {}
        data, returns = self.episodes.pop_complete()
        self.policy.train()
        log_probs, values = self.forward(data["features"])
        log_probs = masked(log_probs, data.get("available")).log_softmax(1)
        loss, diagnostics = actor_critic_loss(slate_log_probs(log_probs, data["slate"]), masked_entropy(log_probs),
                                              values[:, None].expand_as(returns), returns, p["ent_weight"])
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return diagnostics

    @torch.no_grad()
    def scores(self, context: Context) -> Tensor:
        self.policy.eval()
        return self.forward(context.features)[0]


class PGPRAgent(RLOnlineAgent):
    """PGPR on a simulator: its actor-critic, one hop from the observation to an item."""

    defaults = DEFAULTS
    online_removals = ("PGPR: knowledge graph, TransE embeddings, action pruning, path patterns and multi-hop "
                       "walks removed (the simulators have no knowledge graph and no persistent users): one hop "
                       "from the observation to an item, the simulator's reward in place of the TransE reward",)

    def make_learner(self) -> Learner:
        return OneHopLearner(self.n_items, self.slate_size, self.feature_dim, self.params, self.ctx.device)
