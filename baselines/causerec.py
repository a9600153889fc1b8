"""CauseRec: Counterfactual User Sequence Synthesis for Sequential Recommendation
(Zhang et al., SIGIR 2021).

The user encoder is the paper's "naive deep candidate generation" architecture: K
interest proposals are extracted from the item sequence by self-attentive pooling,
A = softmax(W2 tanh(W1 X^T)), C = A X; the user vector is an MLP of their mean, and
items are scored by dot product. Training, per (sequence, target) example:

1. Concepts: the items of the sequence ("item" level, CauseRec-Item) or the K interest
   proposals ("interest" level, CauseRec-Interest).
2. Concept scores: the dot product of each concept with the target item's embedding;
   the top-scoring half of the concepts is indispensable, the rest dispensable.
3. Counterfactual transformation: replacing `replace_ratio` of the indispensable
   concepts by concepts of other users (a first-in-first-out memory of previous
   batches) gives counterfactual negatives; replacing dispensable ones, positives.
4. Losses: recommendation (softmax cross-entropy over all items) + lambda_identity *
   identity-level contrast (the observed user vector is closer to the counterfactual
   positive than to the negative) + lambda_interest * interest-level contrast (the
   target item is closer to the counterfactual positive than to the negative), both
   triplet margin losses on L2-normalised vectors.
Simplifications, labelled: full softmax instead of sampled softmax; concepts replaced by
memory entries drawn uniformly; one counterfactual positive and negative per example
unless n_counterfactuals says otherwise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from baselines.sequential import LOOP_DEFAULTS, PAD, SequentialRecommender, random_subset
from imrl.data.split import Split

DEFAULTS = {
    **LOOP_DEFAULTS,
    "level": "item",           # "item" (CauseRec-Item) or "interest" (CauseRec-Interest)
    "max_len": 20,
    "d": 64,
    "n_interests": 20,         # K interest proposals
    "attention_hidden": 128,   # rows of W1
    "mlp_hidden": 256,
    "replace_ratio": 0.5,      # share of the (in)dispensable concepts replaced
    "memory_size": 1024,
    "n_counterfactuals": 1,    # counterfactual positives and negatives per example
    "margin": 1.0,
    "lambda_identity": 1.0,
    "lambda_interest": 1.0,
    "lr": 1e-3,
    "batch_size": 1024,
}


class CauseRecNet(nn.Module):
    def __init__(self, n_items: int, d: int, n_interests: int, attention_hidden: int, mlp_hidden: int):
        super().__init__()
        self.item_embedding = nn.Embedding(n_items + 1, d, padding_idx=PAD)
        self.w1 = nn.Linear(d, attention_hidden, bias=False)
        self.w2 = nn.Linear(attention_hidden, n_interests, bias=False)
        self.mlp = nn.Sequential(nn.Linear(d, mlp_hidden), nn.ReLU(), nn.Linear(mlp_hidden, mlp_hidden), nn.ReLU(),
                                 nn.Linear(mlp_hidden, d))
        nn.init.normal_(self.item_embedding.weight, 0.0, 1.0 / math.sqrt(d))

    def interests(self, tokens: torch.Tensor) -> torch.Tensor:
        """Interest proposals C = A X [B, K, d], A = softmax(W2 tanh(W1 X^T)) over the
        real positions."""
        x = self.item_embedding(tokens)
        logits = self.w2(torch.tanh(self.w1(x))).transpose(1, 2)              # [B, K, L]
        logits = logits.masked_fill((tokens == PAD)[:, None], -1e9)           # finite: empty windows stay finite
        return logits.softmax(-1) @ x

    def user(self, concepts: torch.Tensor) -> torch.Tensor:
        return self.mlp(concepts.mean(-2))

    def item_scores(self, users: torch.Tensor) -> torch.Tensor:
        return users @ self.item_embedding.weight[1:].T


def split_concepts(scores: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(indispensable, dispensable) masks [B, N]: among the real concepts of each row, the
    top-scoring ceil(half) are indispensable, the others dispensable."""
    rank = scores.masked_fill(~real, -torch.inf).argsort(1, descending=True).argsort(1)
    indispensable = (rank < torch.ceil(real.sum(1, keepdim=True) / 2)) & real
    return indispensable, real & ~indispensable


class CauseRec(SequentialRecommender):
    defaults = DEFAULTS
    example_mode = "prefix"

    def build(self, split: Split) -> nn.Module:
        hp = self.params
        if hp["level"] not in ("item", "interest"):
            raise ValueError(f"CauseRec: params.level must be 'item' or 'interest', got {hp['level']!r}")
        self.generator = self.ctx.generator(offset=4)
        self.memory = None                                   # concepts of previous batches (FIFO)
        return CauseRecNet(split.n_items, hp["d"], hp["n_interests"], hp["attention_hidden"], hp["mlp_hidden"])

    def replace_concepts(self, concepts: torch.Tensor, replace: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """A copy of `concepts` (tokens [B, L] or interests [B, K, d]) whose entries
        `replace` [B, N] are memory entries drawn uniformly; the rest is unchanged."""
        drawn = torch.randint(len(memory), (int(replace.sum()),), generator=self.generator, device=self.device)
        edited = concepts.clone()
        edited[replace] = memory[drawn]
        return edited

    def counterfactual_user(self, inputs: torch.Tensor, interests: torch.Tensor, replace: torch.Tensor,
                            memory: torch.Tensor) -> torch.Tensor:
        if self.params["level"] == "item":
            return self.model.user(self.model.interests(self.replace_concepts(inputs, replace, memory)))
        return self.model.user(self.replace_concepts(interests, replace, memory))

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        hp, model = self.params, self.model
        interests = model.interests(inputs)
        observed = model.user(interests)
        recommendation = F.cross_entropy(model.item_scores(observed), targets - 1)

        target = model.item_embedding(targets)                                      # [B, d]
        if hp["level"] == "item":                                                   # step 1-2
            concepts, real = model.item_embedding(inputs), inputs != PAD
            new_memory = inputs[real]
        else:
            concepts, real = interests, torch.ones(interests.shape[:2], dtype=torch.bool, device=self.device)
            new_memory = interests.detach().flatten(0, 1)
        indispensable, dispensable = split_concepts((concepts * target[:, None]).sum(-1).detach(), real)
        new_memory = new_memory.detach()
        memory = new_memory if self.memory is None else self.memory     # the first batch draws from itself

        identity = interest = torch.zeros((), device=self.device)
        normalise = lambda v: F.normalize(v, dim=-1)  # noqa: E731
        quota = lambda mask: torch.ceil(hp["replace_ratio"] * mask.sum(1, keepdim=True))  # noqa: E731
        for _ in range(hp["n_counterfactuals"]):                                   # step 3
            negative = self.counterfactual_user(
                inputs, interests, random_subset(indispensable, quota(indispensable), self.generator), memory)
            positive = self.counterfactual_user(
                inputs, interests, random_subset(dispensable, quota(dispensable), self.generator), memory)
            negative, positive = normalise(negative), normalise(positive)
            identity = identity + F.triplet_margin_loss(normalise(observed), positive, negative, margin=hp["margin"])
            interest = interest + F.triplet_margin_loss(normalise(target), positive, negative, margin=hp["margin"])
        self.memory = torch.cat([self.memory, new_memory]) if self.memory is not None else new_memory
        self.memory = self.memory[-hp["memory_size"]:]
        scale = 1.0 / hp["n_counterfactuals"]
        return recommendation + scale * (hp["lambda_identity"] * identity + hp["lambda_interest"] * interest)  # step 4

    def scores(self, tokens: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        return self.model.item_scores(self.model.user(self.model.interests(tokens)))
