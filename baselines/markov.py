"""Markov: a first-order sequential baseline. Scores are the counts of training
transitions from the user's last consumed item to each item (consecutive pairs in
every training history), with item popularity as a small tie-breaker."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from imrl.api import OfflineMethod
from imrl.data.split import Split


class Markov(OfflineMethod):
    defaults = {}

    def fit(self, split: Split) -> None:
        indptr, items = split.csr("train")
        # Consecutive pairs within a user: every position except each user's last one.
        is_last = np.zeros(len(items), dtype=bool)
        is_last[indptr[1:][np.diff(indptr) > 0] - 1] = True
        src, dst = items[:-1][~is_last[:-1]], items[1:][~is_last[:-1]]
        n = split.n_items
        self.transitions = sp.csr_matrix((np.ones(len(src), np.float32), (src, dst)), shape=(n, n))
        popularity = np.bincount(items, minlength=n).astype(np.float32)
        self.tie_break = torch.from_numpy(popularity / (popularity.max() + 1.0))  # < 1: never outweighs a transition
        self.last_item = {phase: self._last_items(*split.history(phase)) for phase in ("valid", "test")}

    @staticmethod
    def _last_items(indptr: np.ndarray, items: np.ndarray) -> np.ndarray:
        has_history = np.diff(indptr) > 0
        last = np.full(len(indptr) - 1, -1, dtype=np.int64)
        last[has_history] = items[indptr[1:][has_history] - 1]
        return last

    def score(self, users: torch.Tensor, phase: str) -> torch.Tensor:
        last = self.last_item[phase][users.cpu().numpy()]
        rows = self.transitions[np.maximum(last, 0)].toarray()
        rows[last < 0] = 0.0
        return (torch.from_numpy(rows) + self.tie_break).to(self.ctx.device)
