"""The one offline evaluator: full ranking over all items, recall/precision/nDCG@K.

For every user with ground truth at `phase`, the method scores all items; the user's
history at that phase (``split.history(phase)``: train for "valid", train then valid
for "test") is set to -inf; the top K items are taken in the order (score descending,
item id ascending); they are compared with the user's ground truth: the distinct items
of the phase's part that are not in the history. The exact definitions are in
PROTOCOL.md, section "Ranking metrics"; with rel_r = 1 when the item at rank r is
relevant and has a finite score (else 0), hits@K = sum_{r=1..K} rel_r and R = the
number of relevant items:

    recall@K    = hits@K / R
    precision@K = hits@K / K
    nDCG@K      = sum_{r=1..K} rel_r / log2(r + 1)  /  sum_{r=1..min(K, R)} 1 / log2(r + 1)

Users are processed in chunks: one Python loop over chunks, array operations within.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from imrl.data.split import PHASES, Split

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
#: Default chunk: as many users as keep one chunk's scores near 2**25 floats (128 MiB).
SCORES_PER_CHUNK = 2**25
NEG_INF = float("-inf")


@dataclass
class RankingResult:
    """Per-user metrics (for paired per-user statistics) and their means."""

    phase: str
    ks: tuple[int, ...]
    users: np.ndarray                 # int64 [n_users]: the evaluated users, ascending
    per_user: dict[str, np.ndarray]   # "recall@20" -> float64 [n_users], aligned with `users`
    n_users_skipped: int              # users with no ground truth at `phase` (not evaluated)

    @property
    def n_users(self) -> int:
        return len(self.users)

    def as_dict(self) -> dict[str, float]:
        """Means over the evaluated users: {"recall@20": ..., "precision@20": ..., "ndcg@20": ...}."""
        return {name: float(values.mean()) for name, values in self.per_user.items()}


def evaluate(score_fn: ScoreFn, split: Split, phase: str, ks: Sequence[int] = (20,),
             batch_size: int | None = None, device: str | torch.device = "cpu",
             name: str | None = None) -> RankingResult:
    """Rank all items for every user with ground truth at `phase` and score the top K.

    `score_fn(users)` gets an int64 tensor of user ids on `device` and returns float
    scores [len(users), split.n_items] on `device` (in practice
    ``lambda u: method.score(u, phase)``). The evaluator sets the history entries of
    that tensor to -inf while it ranks and then restores them (a non-contiguous tensor
    is copied first), so a method may return a tensor it keeps. An item scored -inf is
    "not recommended": it never counts as a hit. `name` labels the scorer in errors.
    """
    if phase not in PHASES:
        raise KeyError(f"unknown phase {phase!r}; expected one of {PHASES}")
    ks = _checked_ks(ks)
    label = name or _describe(score_fn)
    device = _resolved(torch.device(device))
    n_items, k_max = split.n_items, ks[-1]
    if batch_size is None:
        batch_size = max(1, SCORES_PER_CHUNK // n_items)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    plan = _Plan.build(split, phase, batch_size, device)
    n_eval = len(plan.users)

    # Per chunk only what needs the full score matrix (few large ops: per-op overhead
    # would otherwise dominate on a busy machine); the rest runs once on the top lists.
    top_values, top_items = [], []
    with torch.inference_mode():
        for start in range(0, n_eval, batch_size):
            stop = min(start + batch_size, n_eval)
            scores = _checked_scores(score_fn(plan.users[start:stop]), stop - start, n_items, device, label, phase)
            flat_scores = scores.view(-1)

            # Exclude the history in place and put its scores back after ranking (the tensor
            # may be the method's own). NaN there is still the method's bug.
            lo, hi = plan.history_ptr[start], plan.history_ptr[stop]
            history_index = plan.history_index[lo:hi]      # row-in-chunk * n_items + item
            history_scores = flat_scores.index_select(0, history_index)
            if torch.isnan(history_scores).any():
                rows = history_index[torch.isnan(history_scores)] // n_items
                _raise_nan(label, phase, plan.users[start:stop][rows])
            flat_scores.index_fill_(0, history_index, NEG_INF)

            # topk ranks NaN above everything, so one NaN in a row shows in its first value.
            values, items = torch.topk(scores, min(k_max + 1, n_items), dim=1)
            if torch.isnan(values[:, 0]).any():
                _raise_nan(label, phase, plan.users[start:stop][torch.isnan(values[:, 0])])
            _settle_ties_at_cut(scores, values, items, k_max)
            flat_scores.index_copy_(0, history_index, history_scores)
            top_values.append(values[:, :k_max])
            top_items.append(items[:, :k_max])

        values, items = _ordered(torch.cat(top_values), torch.cat(top_items))

        # Relevance: binary search of (position * n_items + item) in the sorted ground-truth keys.
        query = torch.arange(n_eval, device=device).unsqueeze(1) * n_items + items
        keys = plan.relevant_keys
        found = keys[torch.searchsorted(keys, query).clamp_(max=len(keys) - 1)] == query
        hits = (found & (values > NEG_INF)).to(torch.float64)
        if hits.shape[1] < k_max:                          # fewer items than K: the rest of the list is empty
            hits = torch.nn.functional.pad(hits, (0, k_max - hits.shape[1]))

        discount = 1.0 / torch.log2(torch.arange(k_max, dtype=torch.float64, device=device) + 2.0)  # 1/log2(r+1)
        ideal_dcg = torch.cat([discount.new_zeros(1), discount.cumsum(0)])  # [m] = sum_{r=1..m} 1/log2(r+1)
        hits_at = hits.cumsum(1)                           # hits_at[:, K-1] = hits@K
        dcg_at = (hits * discount).cumsum(1)               # dcg_at[:, K-1] = DCG@K
        n_relevant = plan.n_relevant.to(torch.float64)
        per_user = {}
        for k in ks:
            per_user[f"recall@{k}"] = hits_at[:, k - 1] / n_relevant
            per_user[f"precision@{k}"] = hits_at[:, k - 1] / k
            per_user[f"ndcg@{k}"] = dcg_at[:, k - 1] / ideal_dcg[plan.n_relevant.clamp(max=k)]

    return RankingResult(phase=phase, ks=ks, users=plan.users.cpu().numpy(),
                         per_user={key: value.cpu().numpy() for key, value in per_user.items()},
                         n_users_skipped=split.n_users - n_eval)


def _settle_ties_at_cut(scores: torch.Tensor, values: torch.Tensor, items: torch.Tensor, k: int) -> None:
    """Make the first k of each topk row the top-k set under (score desc, item id asc).

    `values, items` come from topk with one item more than k (when the row has it).
    topk's choice among equal scores is unspecified, so where the k-th and (k+1)-th
    scores are equal (and finite: -inf items never count) the set is rebuilt, in place,
    for those rows only: every item above the k-th score, then the lowest ids at it.
    """
    if values.shape[1] <= k:
        return
    kth = values[:, k - 1]
    tie_at_cut = (values[:, k] == kth) & (kth > NEG_INF)
    if not tie_at_cut.any():
        return
    rows = tie_at_cut.nonzero().squeeze(1)
    row_scores, cut = scores[rows], kth[rows].unsqueeze(1)
    above, at_cut = row_scores > cut, row_scores == cut
    free = k - above.sum(1, keepdim=True)
    chosen = above | (at_cut & (at_cut.cumsum(1) <= free))       # exactly k per row
    chosen_items = chosen.nonzero()[:, 1].view(-1, k)
    items[rows, :k] = chosen_items
    values[rows, :k] = row_scores.gather(1, chosen_items)


def _ordered(values: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's top-k set in the order (score descending, item id ascending): sort by
    id, then stably by score."""
    items, by_id = items.sort(dim=1)
    values, by_score = values.gather(1, by_id).sort(dim=1, descending=True, stable=True)
    return values, items.gather(1, by_score)


@dataclass
class _Plan:
    """Index tensors built once per call, over the evaluated users (position i = users[i])."""

    users: torch.Tensor            # int64 [n_eval]: users with ground truth, ascending
    n_relevant: torch.Tensor       # int64 [n_eval]: R per user
    relevant_keys: torch.Tensor    # int64: position * n_items + item, ascending
    history_ptr: np.ndarray        # int64 [n_eval+1]: CSR offsets into history_index
    history_index: torch.Tensor    # int64: (position % batch_size) * n_items + item, flat in a chunk

    @classmethod
    def build(cls, split: Split, phase: str, batch_size: int, device: torch.device) -> _Plan:
        n_users, n_items = split.n_users, split.n_items
        history_ptr, history_items = split.history(phase)
        truth_ptr, truth_items = split.csr(phase)
        history_owner = np.repeat(np.arange(n_users), np.diff(history_ptr))
        truth_keys = np.repeat(np.arange(n_users), np.diff(truth_ptr)) * n_items + truth_items
        # Ground truth: distinct phase items the user could be shown (history is excluded).
        relevant = np.unique(truth_keys[~np.isin(truth_keys, history_owner * n_items + history_items)])
        n_relevant = np.bincount(relevant // n_items, minlength=n_users)
        users = np.flatnonzero(n_relevant)
        if len(users) == 0:
            raise ValueError(f"split {split.name!r}: no user has a {phase} item outside their history; "
                             "nothing to evaluate")
        position = np.full(n_users, -1, dtype=np.int64)
        position[users] = np.arange(len(users))
        kept = n_relevant[history_owner] > 0
        history_ptr_kept = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum(np.diff(history_ptr)[users], out=history_ptr_kept[1:])

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(array, dtype=np.int64), device=device)

        return cls(
            users=tensor(users),
            n_relevant=tensor(n_relevant[users]),
            relevant_keys=tensor(position[relevant // n_items] * n_items + relevant % n_items),
            history_ptr=history_ptr_kept,
            history_index=tensor(position[history_owner[kept]] % batch_size * n_items + history_items[kept]),
        )


def _checked_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty list of integers >= 1, got {list(ks)}")
    return tuple(sorted({int(k) for k in ks}))


def _checked_scores(scores: torch.Tensor, n_rows: int, n_items: int, device: torch.device,
                    label: str, phase: str) -> torch.Tensor:
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"{label} at phase {phase!r} returned {type(scores).__name__}, expected a torch.Tensor")
    if tuple(scores.shape) != (n_rows, n_items):
        raise ValueError(f"{label} at phase {phase!r} returned scores of shape {tuple(scores.shape)}, "
                         f"expected ({n_rows}, {n_items}) = (users in the batch, n_items)")
    if not scores.is_floating_point():
        raise TypeError(f"{label} at phase {phase!r} returned {scores.dtype} scores, expected a floating dtype")
    if scores.device != device:
        raise ValueError(f"{label} at phase {phase!r} returned scores on {scores.device}, expected {device} "
                         "(pass device= to evaluate)")
    # The history is written in place: a non-contiguous tensor (an expanded row) may
    # share one element among several rows, so it is copied.
    return scores if scores.is_contiguous() else scores.contiguous()


def _raise_nan(label: str, phase: str, users: torch.Tensor) -> None:
    users = torch.unique(users)
    raise FloatingPointError(f"{label} returned NaN scores at phase {phase!r} for {len(users)} user(s) "
                             f"in this batch, e.g. users {users[:5].tolist()}")


def _describe(score_fn: ScoreFn) -> str:
    owner = getattr(score_fn, "__self__", None)
    if owner is not None:
        return f"{type(owner).__name__}.{score_fn.__name__}"
    return getattr(score_fn, "__qualname__", repr(score_fn))


def _resolved(device: torch.device) -> torch.device:
    """'cuda' -> 'cuda:<current>', so that it compares equal to a tensor's device."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device
