"""SASRec: Self-Attentive Sequential Recommendation (Kang & McAuley, ICDM 2018).

Equation numbers are those of Section III of the paper. Where the authors' TensorFlow
code (kang205/SASRec), which produced the published numbers, differs from the text, we
follow the code and say so beside the line. ``SelfAttentionBlocks`` is reused by CoCoRec
with other attention masks.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.sequential import LOOP_DEFAULTS, PAD, Examples, SequentialRecommender
from imrl.data.split import Split

DEFAULTS = {
    **LOOP_DEFAULTS,
    "max_len": "auto",        # n: 200 for ML-1M, 50 for the sparser datasets; "auto" picks by mean train length
    "d": 50,
    "n_blocks": 2,
    "n_heads": 1,
    "dropout": 0.2,           # 0.2 on ML-1M, 0.5 on the sparse datasets
    "lr": 1e-3,
    "adam_betas": (0.9, 0.98),  # the authors' code
    "batch_size": 128,
    "loss": "bce",            # "bce": Eq. 11 with one sampled negative per position; "ce": full softmax
    "windows_per_user": "last",  # "last": each user's latest n actions (paper); "all": every window
}


class MaskedAttention(nn.Module):
    """Scaled dot-product attention (Eq. 2) over projections of the input (Eq. 3), with
    a boolean mask of which keys each query may see."""

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        if d % n_heads:
            raise ValueError(f"d={d} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, d = queries.shape
        heads = lambda t: t.view(batch, length, self.n_heads, d // self.n_heads).transpose(1, 2)  # noqa: E731
        q, k, v = heads(self.query(queries)), heads(self.key(keys)), heads(self.value(keys))
        logits = q @ k.transpose(-1, -2) / math.sqrt(d // self.n_heads)                  # Eq. 2
        # A finite fill: a fully masked (padding) query row stays finite, and exp(-1e9) is
        # exactly 0 next to any allowed key, so masked keys get no weight at all.
        logits = logits.masked_fill(~allowed[:, None], -1e9)
        weights = self.dropout(logits.softmax(-1))
        return (weights @ v).transpose(1, 2).reshape(batch, length, d)


class SelfAttentionBlocks(nn.Module):
    """b stacked blocks (Eq. 5) of self-attention and point-wise FFN (Eq. 4), each
    wrapped as in Eq. 6 (LayerNorm, dropout, residual), then a final LayerNorm.

    As in the authors' code: queries are LayerNorm(x) while keys/values are x, and the
    residual adds LayerNorm(x) (Eq. 6 read literally would add x)."""

    def __init__(self, d: int, n_blocks: int, n_heads: int, dropout: float):
        super().__init__()
        norm = lambda: nn.LayerNorm(d, eps=1e-8)  # noqa: E731
        self.attention_norms = nn.ModuleList(norm() for _ in range(n_blocks))
        self.attentions = nn.ModuleList(MaskedAttention(d, n_heads, dropout) for _ in range(n_blocks))
        self.ffn_norms = nn.ModuleList(norm() for _ in range(n_blocks))
        self.ffns = nn.ModuleList(nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Dropout(dropout),
                                                nn.Linear(d, d), nn.Dropout(dropout)) for _ in range(n_blocks))
        self.final_norm = norm()

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """x [B, L, d]; allowed [B, L, L] (query i may attend to key j); real [B, L]."""
        for attention_norm, attention, ffn_norm, ffn in zip(self.attention_norms, self.attentions,
                                                            self.ffn_norms, self.ffns):
            queries = attention_norm(x)
            x = queries + attention(queries, x, allowed)        # S = SA(.) (Eq. 3, 5, 6)
            x = ffn_norm(x)
            x = (x + ffn(x)) * real[..., None]                  # F = FFN(S) (Eq. 4, 6); padding stays 0
        return self.final_norm(x)


class SASRecNet(nn.Module):
    def __init__(self, n_items: int, max_len: int, d: int, n_blocks: int, n_heads: int, dropout: float):
        super().__init__()
        self.item_embedding = nn.Embedding(n_items + 1, d, padding_idx=PAD)   # M, shared with N (Eq. 9)
        self.position_embedding = nn.Embedding(max_len, d)                   # learned P
        self.dropout = nn.Dropout(dropout)
        self.blocks = SelfAttentionBlocks(d, n_blocks, n_heads, dropout)
        self.register_buffer("causal", torch.ones(max_len, max_len, dtype=torch.bool).tril())
        for name, parameter in self.named_parameters():
            if parameter.dim() > 1:
                nn.init.xavier_normal_(parameter)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """F^(b) [B, L, d]: position t summarises tokens[:, :t+1]."""
        real = tokens != PAD
        d = self.item_embedding.embedding_dim
        x = self.item_embedding(tokens) * math.sqrt(d) + self.position_embedding.weight   # Eq. 1 (code scales by sqrt(d))
        x = self.dropout(x) * real[..., None]
        allowed = self.causal[None] & real[:, None, :]   # causality: no query sees a later key, nor padding
        return self.blocks(x, allowed, real)

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """r_{i,t} = F_t M_i^T (Eq. 9) for every item (never the padding token)."""
        return hidden @ self.item_embedding.weight[1:].T


class UnseenItemSampler:
    """Uniform negative items outside the user's training sequence (the code's
    random_neq), by rejection against sorted (user, item) keys."""

    def __init__(self, split: Split, device: torch.device, generator: torch.Generator, max_tries: int = 100):
        indptr, items = split.csr("train")
        owners = np.repeat(np.arange(split.n_users), np.diff(indptr))
        self.stride = split.n_items + 1
        self.keys = torch.as_tensor(np.unique(owners * self.stride + items + 1), device=device)
        self.n_items, self.generator, self.max_tries = split.n_items, generator, max_tries

    def sample(self, users: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        draw = lambda: torch.randint(1, self.n_items + 1, shape, generator=self.generator,  # noqa: E731
                                     device=users.device)
        tokens = draw()
        for _ in range(self.max_tries):   # a user who consumed every item keeps the last draw
            keys = users.view(-1, *[1] * (len(shape) - 1)) * self.stride + tokens
            at = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
            seen = self.keys[at] == keys
            if not seen.any():
                break
            tokens = torch.where(seen, draw(), tokens)
        return tokens


class SASRec(SequentialRecommender):
    defaults = DEFAULTS
    param_schema = {"max_len": {"anyOf": [{"type": "integer", "minimum": 1}, {"const": "auto"}]}}   # for the config check
    example_mode = "sequence"

    def build(self, split: Split) -> nn.Module:
        hp = self.params
        if hp["max_len"] == "auto":   # the paper: n roughly proportional to the mean actions per user
            lengths = np.diff(split.csr("train")[0])
            hp["max_len"] = 200 if lengths[lengths > 0].mean() >= 100 else 50
        if hp["loss"] not in ("bce", "ce"):
            raise ValueError(f"SASRec: params.loss must be 'bce' or 'ce', got {hp['loss']!r}")
        self.negatives = UnseenItemSampler(split, self.device, self.ctx.generator(offset=2))
        return SASRecNet(split.n_items, hp["max_len"], hp["d"], hp["n_blocks"], hp["n_heads"], hp["dropout"])

    def examples(self, split: Split) -> Examples:
        return Examples.from_split(split, "sequence", self.params["max_len"], self.device, self.params["windows_per_user"])

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        hidden = self.model(inputs)
        real = targets != PAD                               # padded positions carry no target
        if self.params["loss"] == "ce":
            logits = self.model.item_scores(hidden[real])
            return F.cross_entropy(logits, targets[real] - 1)
        embedding = self.model.item_embedding
        negatives = self.negatives.sample(users, tuple(targets.shape))             # j not in S^u
        positive_logits = (hidden * embedding(targets)).sum(-1)                    # r_{o_t,t} (Eq. 9)
        negative_logits = (hidden * embedding(negatives)).sum(-1)                  # r_{j,t}
        losses = -(F.logsigmoid(positive_logits) + F.logsigmoid(-negative_logits))  # Eq. 11
        return losses[real].mean()

    def scores(self, tokens: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        return self.model.item_scores(self.model(tokens)[:, -1])
