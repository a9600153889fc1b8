"""Our SASRec and STAMP under the protocols of their published reference numbers.

Protocols (each builds its own leave-one-out split from the ratings file):

- "sasrec-paper" (Kang & McAuley, ICDM 2018, and the authors' code kang205/SASRec):
  every rating is an interaction; users and items with fewer than 5 ratings are dropped
  (one counting pass, as the authors' preprocessing script); each user's interactions in
  time order; the last one is test, the one before valid, the rest train; the test
  item is ranked against 100 items drawn uniformly (with replacement) from the items
  outside the user's training sequence and the target; HR@10 and NDCG@10.
- "recbole" (RecBole's published ML-1M benchmark): ratings >= 3; 10-core on users and
  items, repeated until stable; leave-one-out in time order; the test item ranked
  against every item with nothing excluded (RecBole ranks sequential models without
  removing the history); Hit@10 and NDCG@10.

Training is ours in both: the method's fit() with early stopping on the valid item
(full-ranking metric of the project's evaluator), at most --epochs epochs. Popularity
runs under each protocol in the same run as the measured in-run peer; the published
references are for MovieLens-1M only, so on another file the ratio to them says how far
the dataset and protocol move the numbers, not whether the implementation is right.

Data: --ratings PATH (MovieLens-1M format, "UserID::MovieID::Rating::Timestamp"), and,
unless --no-ml100k, the MovieLens-100k copy inside the installed ``recbole`` wheel
(``pip install --no-deps recbole==1.2.1``; read from site-packages, never copied), both
through the suite's readers (``imrl.data.readers``), the copy located and its sha256
checked by the source registry (``imrl.data.sources``, dataset ml-100k, variant recbole).

    python bench/validate_baselines.py [--ratings ratings.dat] [--epochs 200] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # runnable from a checkout, installed or not
from baselines.popularity import Popularity  # noqa: E402
from baselines.sasrec import SASRec  # noqa: E402
from baselines.stamp import STAMP  # noqa: E402
from imrl.api import RunContext  # noqa: E402
from imrl.data import sources  # noqa: E402
from imrl.data.download import VerificationError, verify  # noqa: E402
from imrl.data.interactions import Interactions  # noqa: E402
from imrl.data.preprocess import binarise, chronological_split, kcore, reindex, take  # noqa: E402
from imrl.data.readers import movielens1m, recbole_atomic  # noqa: E402
from imrl.data.readers.base import Columns, IdIndex, ReadStats, count_lines  # noqa: E402
from imrl.data.split import Split  # noqa: E402

K = 10
N_SAMPLED_NEGATIVES = 100

#: Published ML-1M numbers: (HR@10, NDCG@10) per (protocol, method).
PUBLISHED = {
    ("sasrec-paper", "SASRec"): (0.8245, 0.5905, "Kang & McAuley 2018, Table III"),
    ("recbole", "SASRec"): (0.2468, 0.1286, "RecBole benchmark, ML-1M"),
    ("recbole", "STAMP"): (0.2147, 0.1214, "RecBole benchmark, ML-1M"),
}

#: Method parameters per protocol: the method's paper defaults, plus what the protocol fixes.
PROTOCOL_PARAMS = {
    "sasrec-paper": {SASRec: {}, STAMP: {}},
    # RecBole's benchmark settings: max length 50, embedding 64, full-softmax CE for SASRec.
    "recbole": {SASRec: {"loss": "ce", "max_len": 50, "d": 64, "windows_per_user": "all"},
                STAMP: {"max_len": 50, "d": 64}},
}


def read_ml1m(path: Path) -> pd.DataFrame:
    """A ratings.dat through the ml-1m reader -> table (user, item, rating, timestamp; file order kept)."""
    columns, users, items = Columns(count_lines(path)), IdIndex(), IdIndex()
    movielens1m.read_ratings(path, columns, users, items, ReadStats())
    return columns.table()


def recbole_ml100k() -> tuple[Path | None, str]:
    """The ml-100k.inter of the installed recbole package, and what its verification against
    the registry's size and sha256 found."""
    spec = sources.remote_file("ml-100k", "ml-100k.inter")
    path = sources.package_file(spec)
    if path is None:
        return None, f"not available: {spec.manual}"
    try:
        verify(path, spec.checksums)
    except VerificationError as err:
        return path, f"differs from the registry's copy: {err}"
    return path, "size and sha256 as in the registry"


def protocol_split(raw: pd.DataFrame, protocol: str, name: str) -> Split:
    """The protocol's filter, then leave-one-out in time order (ties: file order)."""
    users, items = pd.factorize(raw["user"])[0], pd.factorize(raw["item"])[0]
    table = pd.DataFrame({"user": users.astype(np.int32), "item": items.astype(np.int32),
                          "rating": raw["rating"].astype(np.float32).to_numpy(),
                          "timestamp": raw["timestamp"].astype(float).astype(np.int64).to_numpy()})
    if protocol == "sasrec-paper":     # one counting pass over the whole file, as the authors' script
        keep = (np.bincount(users)[users] >= 5) & (np.bincount(items)[items] >= 5)
        table = take(table, np.flatnonzero(keep))
    else:
        table = kcore(binarise(table, 3.0), 10)
    data = reindex(Interactions(table, int(users.max()) + 1, int(items.max()) + 1, source=name))
    # Fractions this small round to the minimum of one item: the last item is test, the one before valid.
    parts = chronological_split(data.table, valid_frac=1e-12, test_frac=1e-12, min_interactions=3)
    return Split(name=f"{name}/{protocol}", n_users=data.n_users, n_items=data.n_items,
                 train=parts.train, valid=parts.valid, test=parts.test)


def hit_and_ndcg(ranks: np.ndarray) -> tuple[float, float]:
    """HR@K and NDCG@K of 0-based ranks of the one held-out item."""
    hit = ranks < K
    return float(hit.mean()), float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())


def test_ranks(method, split: Split, protocol: str, rng: np.random.Generator) -> np.ndarray:
    """0-based rank of each user's test item: among 100 sampled negatives
    ("sasrec-paper") or among all items, history included ("recbole")."""
    test_ptr, test_items = split.csr("test")
    train_ptr, train_items = split.csr("train")
    users = np.flatnonzero(np.diff(test_ptr) > 0)
    ranks = []
    for chunk in np.array_split(users, max(1, len(users) // 512)):
        with torch.no_grad():
            scores = method.score(torch.as_tensor(chunk), "test").float().cpu().numpy()
        targets = test_items[test_ptr[chunk]]
        target_scores = scores[np.arange(len(chunk)), targets]
        if protocol == "recbole":
            ranks.append((scores > target_scores[:, None]).sum(1))
            continue
        for row, user in enumerate(chunk):
            excluded = set(train_items[train_ptr[user]:train_ptr[user + 1]].tolist()) | {int(targets[row])}
            negatives = []
            while len(negatives) < N_SAMPLED_NEGATIVES:   # the reference code's rejection loop
                item = int(rng.integers(split.n_items))
                if item not in excluded:
                    negatives.append(item)
            ranks.append(np.array([(scores[row, negatives] > target_scores[row]).sum()]))
    return np.concatenate(ranks)


def run(raw: pd.DataFrame, dataset: str, protocols: list[str], epochs: int, device: torch.device, seed: int) -> None:
    for protocol in protocols:
        split = protocol_split(raw, protocol, dataset)
        n = len(split.train) + len(split.valid) + len(split.test)
        print(f"\n{dataset} under {protocol}: {split.n_users:,} users, {split.n_items:,} items, {n:,} interactions")
        print(f"{'method':<11}{'HR@10':>8}{'NDCG@10':>9}   {'published ML-1M':<17}{'ours/published':<16}"
              f"{'NDCG/Popularity':<17}{'epochs (best)':>13}{'s/epoch':>9}   params")
        popularity_ndcg = None
        for cls in (Popularity, SASRec, STAMP):
            ctx = RunContext(seed=seed, device=device, budget={"epochs": epochs}, log=lambda line: None)
            params = {} if cls is Popularity else {**PROTOCOL_PARAMS[protocol][cls], "valid_metric": f"ndcg@{K}"}
            method = cls(params, ctx)
            method.fit(split)
            hr, ndcg = hit_and_ndcg(test_ranks(method, split, protocol, np.random.default_rng(seed)))
            name = cls.__name__
            published = PUBLISHED.get((protocol, name))
            reference = f"{published[0]:.4f} {published[1]:.4f}" if published else "-"
            ratio = f"{hr / published[0]:.2f}   {ndcg / published[1]:.2f}" if published else "-"
            log = getattr(method, "train_log", [])
            if log:
                best = max(range(len(log)), key=lambda e: log[e][f"ndcg@{K}"])
                seconds = np.mean([row["train_seconds"] for row in log])
                trained, shown = f"{len(log)} ({best + 1})", f"{seconds:.2f}"
                shown_params = {k: method.params[k] for k in ("loss", "max_len", "d", "lr", "batch_size")
                                if k in method.params}
            else:
                trained, shown, shown_params = "-", "-", {}
            if cls is Popularity:
                popularity_ndcg = ndcg
            versus_popularity = f"{ndcg / max(popularity_ndcg, 1e-12):.2f}"
            print(f"{name:<11}{hr:>8.4f}{ndcg:>9.4f}   {reference:<17}{ratio:<16}{versus_popularity:<17}{trained:>13}"
                  f"{shown:>9}   {shown_params}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=Path, help="a MovieLens-1M-format ratings.dat")
    parser.add_argument("--no-ml100k", action="store_true", help="skip the MovieLens-100k copy of the recbole wheel")
    parser.add_argument("--protocols", default="sasrec-paper,recbole")
    parser.add_argument("--epochs", type=int, default=200, help="maximum epochs (early stopping on valid)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    protocols = args.protocols.split(",")
    unknown = sorted(set(protocols) - set(PROTOCOL_PARAMS))
    if unknown:
        parser.error(f"unknown protocol(s) {unknown}; expected some of {sorted(PROTOCOL_PARAMS)}")

    datasets = []
    if args.ratings is not None:
        if not args.ratings.exists():
            parser.error(f"--ratings {args.ratings}: file not found")
        datasets.append((args.ratings.name, read_ml1m(args.ratings)))
    if not args.no_ml100k:
        path, note = recbole_ml100k()
        print(f"MovieLens-100k: {path or 'skipped'} ({note})")
        if path is not None:
            datasets.append(("ml-100k", recbole_atomic.convert({"inter": [path]}).data.table))
    if not datasets:
        print("nothing to validate: give --ratings or install recbole 1.2.1", file=sys.stderr)
        return 2
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, seed {args.seed}, "
          f"at most {args.epochs} epochs (patience 10 on valid NDCG@{K})")
    started = time.perf_counter()
    for name, raw in datasets:
        run(raw, name, protocols, args.epochs, torch.device(args.device), args.seed)
    print(f"\ntotal {time.perf_counter() - started:.0f} s. Published references (MovieLens-1M):")
    for (protocol, method), (hr, ndcg, source) in PUBLISHED.items():
        print(f"  {protocol:<13}{method:<8}HR@10 {hr:.4f}  NDCG@10 {ndcg:.4f}  ({source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
