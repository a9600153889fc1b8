"""STAMP: Short-Term Attention/Memory Priority model (Liu et al., KDD 2018).

Symbols are those of Section 3 of the paper (STMP's m_s, m_t, h_s, h_t and trilinear
score; STAMP's attention alpha_i and m_a); hyper-parameters are
the authors' released configuration (uestcnlp/STAMP, config/nn_param.conf, "stamp_rsc").
STAMP is session-based: here a user's "session" is the window of their last max_len
items, and every prefix of the training sequences is one example (as in the paper's
data preparation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.sequential import LOOP_DEFAULTS, PAD, SequentialRecommender
from imrl.data.split import Split

DEFAULTS = {
    **LOOP_DEFAULTS,
    "max_len": 50,            # session window (the paper's sessions are shorter than this)
    "d": 100,                 # edim
    "lr": 0.003,              # init_lr
    "batch_size": 512,
    "weight_std": 0.05,       # stddev of the normal initialisation of the weights
    "embedding_std": 0.002,   # emb_stddev
    "clip_grad_norm": 150.0,  # max_grad_norm
}


class STAMPNet(nn.Module):
    def __init__(self, n_items: int, d: int, weight_std: float, embedding_std: float):
        super().__init__()
        self.item_embedding = nn.Embedding(n_items + 1, d, padding_idx=PAD)
        self.w1, self.w2, self.w3 = (nn.Linear(d, d, bias=False) for _ in range(3))
        self.b_a = nn.Parameter(torch.zeros(d))
        self.w0 = nn.Linear(d, 1, bias=False)
        self.mlp_a, self.mlp_b = nn.Linear(d, d), nn.Linear(d, d)
        for name, parameter in self.named_parameters():
            if name.endswith("weight"):
                nn.init.normal_(parameter, 0.0, embedding_std if name.startswith("item_") else weight_std)
            else:
                nn.init.zeros_(parameter)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """x_i, with the code's lookup max_norm=1 (rescaled copies; the table itself is
        left alone, since it is also the output layer)."""
        x = self.item_embedding(tokens)
        return x / x.norm(dim=-1, keepdim=True).clamp(min=1.0)

    def represent(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """h_s * h_t [B, d] for embedded windows x [B, L, d] whose last position is the
        last click x_t (windows are left-padded)."""
        mask = real[..., None].float()
        m_s = (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)          # m_s: general interest, the session mean
        x_t = x[:, -1]                                                # m_t = x_t: the last click
        alpha = self.w0(torch.sigmoid(self.w1(x) + (self.w2(x_t) + self.w3(m_s) + self.b_a)[:, None]))  # alpha_i
        m_a = (alpha * mask * x).sum(1) + m_s   # m_a = sum alpha_i x_i, plus m_s as in the authors' code and RecBole
        h_s = torch.tanh(self.mlp_a(m_a))                             # h_s = f(W_s m_a + b_s), MLP cell A
        h_t = torch.tanh(self.mlp_b(x_t))                             # h_t = f(W_t m_t + b_t), MLP cell B
        return h_s * h_t

    def logits(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """z_i = <h_s, h_t, x_i> (the trilinear product) for every item. The
        paper puts a sigmoid before the softmax; the authors' code feeds the raw
        products to the softmax cross-entropy, and so do we."""
        return self.represent(x, real) @ self.item_embedding.weight[1:].T


class STAMP(SequentialRecommender):
    defaults = DEFAULTS
    example_mode = "prefix"

    def build(self, split: Split) -> nn.Module:
        return STAMPNet(split.n_items, self.params["d"], self.params["weight_std"], self.params["embedding_std"])

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.logits(self.model.embed(tokens), tokens != PAD)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(inputs), targets - 1)      # softmax cross-entropy over all items

    def scores(self, tokens: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        return self.logits(tokens)
