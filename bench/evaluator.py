"""Throughput of the offline evaluator against its bare lower bound, measured in one run.

Split (built in memory): --users users x --items items, per user about 20 train,
2 valid and 2 test items drawn uniformly at random (with replacement). Scorer: a
user-embedding x item-embedding matmul, d = --dim. Evaluator: ``imrl.eval.ranking.evaluate``
at phase "test", K=20. Bound: the same chunked matmul + topk(20) with nothing else,
same chunk size. Timings are interleaved (bound, evaluator) after one warm-up each;
best and median of --repeats are printed; the ratio target is evaluator/bound <= 1.5.

    python bench/evaluator.py [--users 20000] [--items 50000] [--dim 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # runnable from a checkout, installed or not
from imrl.data.split import Split  # noqa: E402
from imrl.eval.ranking import SCORES_PER_CHUNK, evaluate  # noqa: E402

K = 20
TARGET_RATIO = 1.5
PART_SIZES = {"train": 20, "valid": 2, "test": 2}


def random_split(n_users: int, n_items: int, rng: np.random.Generator) -> Split:
    parts = {}
    for name, per_user in PART_SIZES.items():
        users = np.repeat(np.arange(n_users, dtype=np.int32), per_user)
        parts[name] = pd.DataFrame({
            "user": users,
            "item": rng.integers(0, n_items, len(users), dtype=np.int32),
            "rating": np.ones(len(users), dtype=np.float32),
            "timestamp": np.arange(len(users), dtype=np.int64),
        })
    return Split(name="bench", n_users=n_users, n_items=n_items, **parts)


def bound(user_emb: torch.Tensor, item_emb: torch.Tensor, chunk: int) -> None:
    """The least any full-ranking evaluator must do: score every item, take the top K."""
    with torch.inference_mode():
        for start in range(0, len(user_emb), chunk):
            torch.topk(user_emb[start:start + chunk] @ item_emb.T, K, dim=1)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    split = random_split(args.users, args.items, rng)
    split.history("test"), split.csr("test")          # the split's own cached CSR, built once per split
    built = time.perf_counter() - started
    user_emb = torch.randn(args.users, args.dim, generator=generator)
    item_emb = torch.randn(args.items, args.dim, generator=generator)
    chunk = max(1, SCORES_PER_CHUNK // args.items)    # the evaluator's default chunk

    def run_evaluator():
        return evaluate(lambda users: user_emb.index_select(0, users) @ item_emb.T, split, "test", ks=(K,),
                        batch_size=chunk)

    print(f"evaluator bench: {args.users} users x {args.items} items, d={args.dim}, K={K}, phase test, "
          f"chunk {chunk} users; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"split: {len(split.train)} train / {len(split.valid)} valid / {len(split.test)} test interactions, "
          f"built in {built:.2f} s")

    result = run_evaluator()                          # warm-up (and the metrics shown below)
    bound(user_emb, item_emb, chunk)
    bound_times, evaluator_times = [], []
    for _ in range(args.repeats):
        bound_times.append(timed(lambda: bound(user_emb, item_emb, chunk)))
        evaluator_times.append(timed(run_evaluator))

    print(f"evaluated users: {result.n_users} (skipped {result.n_users_skipped}); metrics at random: "
          + ", ".join(f"{key} {value:.6f}" for key, value in result.as_dict().items()))
    for label, times, n in (("bound (matmul + topk)", bound_times, args.users),
                            ("evaluator", evaluator_times, result.n_users)):
        best, median = min(times), statistics.median(times)
        print(f"{label:>22}: times {' '.join(f'{t:.3f}' for t in times)} s; best {best:.3f} s "
              f"({n / best:,.0f} users/s), median {median:.3f} s ({n / median:,.0f} users/s)")
    ratio_best = min(evaluator_times) / min(bound_times)
    ratio_median = statistics.median(evaluator_times) / statistics.median(bound_times)
    verdict = "ok" if ratio_best <= TARGET_RATIO else "OVER TARGET"
    print(f"ratio evaluator/bound: best {ratio_best:.3f}, median {ratio_median:.3f} "
          f"(target <= {TARGET_RATIO}): {verdict}")
    return 0 if ratio_best <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
