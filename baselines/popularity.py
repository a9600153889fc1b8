"""Popularity: every user gets the items with the most training interactions."""

from __future__ import annotations

import numpy as np
import torch

from imrl.api import OfflineMethod
from imrl.data.split import Split


class Popularity(OfflineMethod):
    defaults = {}

    def fit(self, split: Split) -> None:
        _, items = split.csr("train")
        counts = np.bincount(items, minlength=split.n_items).astype(np.float32)
        self.counts = torch.from_numpy(counts).to(self.ctx.device)

    def score(self, users: torch.Tensor, phase: str) -> torch.Tensor:
        return self.counts.expand(len(users), -1)
