"""CoCoRec: Category-aware Collaborative Sequential Recommendation (Cai et al., SIGIR 2021).

p(next = i | history) = sum over the top `beam` categories c of
                        p(c | categories of the recent actions) * p(i | c, history)

1. Category predictor: self-attention over the categories of the last `category_window`
   actions gives p(c) (tied category embeddings).
2. In-category encoder: self-attention in which each action attends only to earlier
   actions of its own category, i.e. within the user's per-category sub-sequences; the
   output at the latest action of category c is the user's in-category pattern for c
   (a learned vector per category when the window holds no action of c).
3. Collaborative module: the pattern attends over the in-category patterns of the
   `n_neighbours` most similar other users, retrieved from a memory of `memory_users`
   training users rebuilt before each epoch, and the result is added to it.
4. Short-term encoder: causal self-attention over the last `short_window` actions.
5. p(i | c, history) = softmax_i( W [pattern_c ; short] . e_i ).
Training: cross-entropy of the next category plus cross-entropy of the next item given
its true category (the authors' code trains both heads together); scoring: the mixture
over the top `beam` categories (the authors' evaluation, beam 5).

Categories come from Split.item_categories (unknown, -1, becomes its own category);
without them, pseudo-categories = k-means over SVD factors of the training interactions,
recorded in ``substitutes``. Simplifications, labelled: Adam instead of the code's
Adagrad; full softmax instead of sampled softmax; the in-category sub-sequences are cut
from the last max_len actions rather than the whole history; the neighbour memory holds
a sample of users, not all of them.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
import torch.nn.functional as F
from scipy.cluster.vq import kmeans2
from torch import nn

from baselines.sasrec import SelfAttentionBlocks
from baselines.sequential import LOOP_DEFAULTS, PAD, Examples, SequentialRecommender
from imrl.data.split import Split

DEFAULTS = {
    **LOOP_DEFAULTS,
    "max_len": 100,
    "d": 64,
    "n_blocks": 1,
    "n_heads": 1,
    "dropout": 0.2,
    "short_window": 30,        # the code's window_size
    "category_window": 5,      # the code's cate_window_size
    "beam": 5,
    "memory_users": 1024,
    "n_neighbours": 10,
    "n_pseudo_categories": 20,
    "pseudo_rank": 32,
    "lr": 1e-3,
    "batch_size": 128,
}


def pseudo_categories(split: Split, n_clusters: int, rank: int, rng: np.random.Generator) -> np.ndarray:
    """k-means clusters [n_items] of the items' rank-`rank` SVD factors of the binary
    user x item training matrix (items never seen in training share the zero vector)."""
    indptr, items = split.csr("train")
    owners = np.repeat(np.arange(split.n_users), np.diff(indptr))
    matrix = scipy.sparse.csr_matrix((np.ones(len(items)), (owners, items)), shape=(split.n_users, split.n_items))
    rank = max(1, min(rank, min(matrix.shape) - 1))
    _, singular, vt = scipy.sparse.linalg.svds(matrix, k=rank, v0=rng.standard_normal(min(matrix.shape)))
    factors = vt.T * singular
    factors /= np.linalg.norm(factors, axis=1, keepdims=True).clip(min=1e-12)
    _, labels = kmeans2(factors, min(n_clusters, split.n_items), minit="++", rng=rng)
    return labels


class CoCoRecNet(nn.Module):
    def __init__(self, token_category: torch.Tensor, n_categories: int, max_len: int, d: int, n_blocks: int,
                 n_heads: int, dropout: float, short_window: int, category_window: int):
        super().__init__()
        self.item_embedding = nn.Embedding(len(token_category), d, padding_idx=PAD)
        self.category_embedding = nn.Embedding(n_categories + 1, d, padding_idx=PAD)
        self.item_positions, self.category_positions = nn.Embedding(max_len, d), nn.Embedding(max_len, d)
        self.no_history = nn.Embedding(n_categories + 1, d)     # pattern of a category absent from the window
        self.in_category = SelfAttentionBlocks(d, n_blocks, n_heads, dropout)
        self.short_term = SelfAttentionBlocks(d, n_blocks, n_heads, dropout)
        self.category_encoder = SelfAttentionBlocks(d, n_blocks, n_heads, dropout)
        self.fuse = nn.Linear(2 * d, d)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("token_category", token_category)  # category token (1..C) of each item token
        position = torch.arange(max_len)
        lag = position[:, None] - position[None, :]
        self.register_buffer("causal", lag >= 0)
        self.register_buffer("short_causal", (lag >= 0) & (lag < short_window))
        self.register_buffer("category_causal", (lag >= 0) & (lag < category_window))
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_normal_(parameter)

    def embed(self, table: nn.Embedding, positions: nn.Embedding, tokens: torch.Tensor) -> torch.Tensor:
        x = table(tokens) * math.sqrt(table.embedding_dim) + positions.weight
        return self.dropout(x) * (tokens != PAD)[..., None]

    def encode(self, tokens: torch.Tensor):
        """(in-category outputs, short-term outputs, next-category logits, categories),
        all per position of the windows `tokens` [B, L]."""
        real = tokens != PAD
        categories = self.token_category[tokens]                                   # 0 at padding
        x = self.embed(self.item_embedding, self.item_positions, tokens)
        keys = real[:, None, :]
        same_category = categories[:, :, None] == categories[:, None, :]
        patterns = self.in_category(x, self.causal & same_category & keys, real)    # step 2
        short = self.short_term(x, self.short_causal & keys, real)                  # step 4
        z = self.embed(self.category_embedding, self.category_positions, categories)
        category_hidden = self.category_encoder(z, self.category_causal & keys, real)
        category_logits = category_hidden @ self.category_embedding.weight[1:].T   # step 1
        return patterns, short, category_logits, categories

    def pattern_for(self, patterns: torch.Tensor, categories: torch.Tensor, query: torch.Tensor,
                    visible: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(pattern [B, Q, d], found [B, Q]) of the categories `query` [B, Q]: the
        in-category output at the latest (visible [Q, L]) action of that category."""
        match = categories[:, None, :] == query[:, :, None]                         # [B, Q, L]
        if visible is not None:
            match = match & visible
        order = torch.arange(1, match.shape[-1] + 1, device=match.device)
        latest = (match * order).argmax(-1)
        found = match.any(-1)
        gathered = patterns.gather(1, latest[..., None].expand(-1, -1, patterns.shape[-1]))
        return torch.where(found[..., None], gathered, self.no_history(query)), found

    def item_logits(self, pattern: torch.Tensor, short: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([pattern, short], -1)) @ self.item_embedding.weight[1:].T   # step 5


class CoCoRec(SequentialRecommender):
    defaults = DEFAULTS
    example_mode = "sequence"

    def build(self, split: Split) -> nn.Module:
        hp = self.params
        if split.item_categories is not None:
            observed = np.asarray(split.item_categories, dtype=np.int64)
            _, categories = np.unique(np.where(observed < 0, observed.max() + 1, observed), return_inverse=True)
        else:
            categories = pseudo_categories(split, hp["n_pseudo_categories"], hp["pseudo_rank"], self.ctx.rng(offset=5))
            self.substitutes.append(
                f"cocorec: item categories are pseudo-categories (k-means, k={hp['n_pseudo_categories']}, over "
                f"rank-{hp['pseudo_rank']} SVD factors of the training interactions); the dataset has none")
        n_categories = int(categories.max()) + 1
        token_category = torch.as_tensor(np.concatenate([[PAD], categories + 1]), dtype=torch.long)
        with_train = np.flatnonzero(np.diff(split.csr("train")[0]) > 0)
        chosen = self.ctx.rng(offset=6).permutation(with_train)[:hp["memory_users"]]
        self.memory_users = torch.as_tensor(np.sort(chosen), device=self.device)
        return CoCoRecNet(token_category, n_categories, hp["max_len"], hp["d"], hp["n_blocks"], hp["n_heads"],
                          hp["dropout"], hp["short_window"], hp["category_window"])

    def examples(self, split: Split) -> Examples:
        return Examples.from_split(split, "sequence", self.params["max_len"], self.device, "all")

    @torch.no_grad()
    def refresh(self) -> None:
        """Rebuild the neighbour memory: every memory user's in-category pattern per
        category, from their training windows."""
        was_training = self.model.training
        self.model.eval()
        tokens = self.history_tokens(self.memory_users, "valid")                   # = the training sequence
        patterns, _, _, categories = self.model.encode(tokens)
        n_categories = self.model.category_embedding.num_embeddings - 1
        every = torch.arange(1, n_categories + 1, device=self.device).expand(len(tokens), -1)
        self.memory_patterns, self.memory_present = self.model.pattern_for(patterns, categories, every)
        self.model.train(was_training)

    def collaborate(self, pattern: torch.Tensor, category: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """Step 3 for flat queries [N, d] of category tokens [N]: attention over the
        patterns of the n_neighbours most similar other memory users."""
        out = torch.zeros_like(pattern)
        for c in category.unique():
            rows = category == c
            keys = self.memory_patterns[:, c - 1]                                     # [M, d]
            usable = self.memory_present[:, c - 1] & (self.memory_users[None] != users[rows][:, None])
            similarity = (pattern[rows] @ keys.T / math.sqrt(keys.shape[-1])).masked_fill(~usable, -1e9)
            top, neighbours = similarity.topk(min(self.params["n_neighbours"], len(keys)), dim=-1)
            weights = top.softmax(-1) * usable.gather(1, neighbours)                  # no usable neighbour: 0
            out[rows] = (weights[..., None] * keys[neighbours]).sum(1)
        return out

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        model = self.model
        patterns, short, category_logits, categories = model.encode(inputs)
        real = targets != PAD
        next_category = model.token_category[targets]                             # the target's category
        pattern, _ = model.pattern_for(patterns, categories, next_category, visible=model.causal)
        pattern, short = pattern[real], short[real]
        pattern = pattern + self.collaborate(pattern, next_category[real], users[:, None].expand_as(real)[real])
        item_loss = F.cross_entropy(model.item_logits(pattern, short), targets[real] - 1)
        category_loss = F.cross_entropy(category_logits[real], next_category[real] - 1)
        return item_loss + category_loss

    def scores(self, tokens: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        patterns, short, category_logits, categories = self.model.encode(tokens)
        beam = min(self.params["beam"], category_logits.shape[-1])
        log_p_category, top = category_logits[:, -1].log_softmax(-1).topk(beam, dim=-1)   # [B, beam]
        pattern, _ = self.model.pattern_for(patterns, categories, top + 1)
        flat = self.collaborate(pattern.flatten(0, 1), (top + 1).flatten(), users.repeat_interleave(beam))
        pattern = pattern + flat.view_as(pattern)
        log_p_item = self.model.item_logits(pattern, short[:, -1:].expand_as(pattern)).log_softmax(-1)
        return torch.logsumexp(log_p_category[..., None] + log_p_item, dim=1)
