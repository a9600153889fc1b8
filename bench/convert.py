"""Conversion speed and memory of the MovieLens and Netflix readers at full scale.

Generates (once, cached in a temp directory) a MovieLens-20M-format ratings.csv of
20,000,263 rows and a Netflix training_set.tar of 17,770 per-movie files holding
20,000,000 ratings, plus half-size copies of each; converts each file in a fresh
subprocess (reader + writing the interactions parquet, maps and meta.json) and prints
wall time and peak RSS (ru_maxrss of that subprocess).

Targets (2-core machine): MovieLens-20M conversion under 60 s and under 3 GB peak RSS;
reader peak RSS at most 2.5 x its final columnar arrays (20 bytes a row: int32 user,
int32 item, float32 rating, int64 timestamp). Running at two sizes separates the fixed
cost of the interpreter and libraries (the intercept) from the per-row cost (the slope).

    python bench/convert.py [--cache DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ML_ROWS = 20_000_263
NETFLIX_RATINGS = 20_000_000
NETFLIX_MOVIES = 17_770
BYTES_PER_ROW = 4 + 4 + 4 + 8
ML_TARGET_SECONDS, ML_TARGET_BYTES, RSS_RATIO_TARGET = 60.0, 3e9, 2.5

HALF_STARS = pa.array([f"{0.5 * k:.1f}" for k in range(1, 11)])


def zipf_weights(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


def generate_movielens(path: Path, rows: int, seed: int = 0) -> None:
    """ratings.csv like ml-20m's: sorted by user, >= 20 ratings a user, popular movies
    drawn from a Zipf law over 26,744 ids spread up to 131,262, half stars, unix seconds."""
    rng = np.random.default_rng(seed)
    n_users = max(1, min(138_493, rows // 20))
    extra = rng.pareto(1.2, n_users)
    counts = 20 + np.floor(extra / extra.sum() * (rows - 20 * n_users)).astype(np.int64)
    counts[: rows - counts.sum()] += 1
    movie_ids = np.sort(rng.choice(np.arange(1, 131_263), 26_744, replace=False))
    popularity = zipf_weights(len(movie_ids), 0.9)
    users = np.repeat(np.arange(1, n_users + 1, dtype=np.int64), counts)
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(b"userId,movieId,rating,timestamp\n")
        for start in range(0, rows, 2_000_000):
            n = min(2_000_000, rows - start)
            table = pa.table({
                "userId": users[start:start + n],
                "movieId": movie_ids[rng.choice(len(movie_ids), n, p=popularity)],
                "rating": pc.take(HALF_STARS, pa.array(rng.integers(0, 10, n))),
                "timestamp": rng.integers(789_652_009, 1_427_784_002, n),
            })
            sink = io.BytesIO()
            pacsv.write_csv(table, sink, options)
            out.write(sink.getvalue())
    os.replace(tmp, path)


def generate_netflix(path: Path, ratings: int, seed: int = 1) -> None:
    """training_set.tar: mv_0000001.txt .. mv_0017770.txt, each `MovieID:` then
    `CustomerID,Rating,YYYY-MM-DD` lines; movie sizes from a Zipf law, >= 1 rating each."""
    rng = np.random.default_rng(seed)
    per_movie = 1 + np.floor(zipf_weights(NETFLIX_MOVIES, 0.7)[rng.permutation(NETFLIX_MOVIES)]
                             * (ratings - NETFLIX_MOVIES)).astype(np.int64)
    per_movie[: ratings - per_movie.sum()] += 1
    customers = np.sort(rng.choice(np.arange(1, 2_649_430), 480_189, replace=False))
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, "w") as tar:
        directory = tarfile.TarInfo("training_set")
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(directory)
        for first in range(0, NETFLIX_MOVIES, 500):
            movies = np.arange(first, min(first + 500, NETFLIX_MOVIES))
            sizes = per_movie[movies]
            n = int(sizes.sum())
            table = pa.table({
                "customer": customers[rng.integers(0, len(customers), n)],
                "rating": rng.integers(1, 6, n),
                "date": pa.array(rng.integers(10_906, 13_149, n).astype("int32"), type=pa.date32()),
            })
            sink = io.BytesIO()
            pacsv.write_csv(table, sink, options)
            text = sink.getvalue()
            ends = np.flatnonzero(np.frombuffer(text, np.uint8) == 10) + 1
            bounds = np.concatenate([[0], ends[np.cumsum(sizes) - 1]])
            for k, movie in enumerate(movies + 1):
                body = f"{movie}:\n".encode() + text[bounds[k]:bounds[k + 1]]
                info = tarfile.TarInfo(f"training_set/mv_{movie:07d}.txt")
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    os.replace(tmp, path)


CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
from imrl.data.convert import convert_paths
kind, path = sys.argv[1], Path(sys.argv[2])
roles = {"movielens": ("ml-20m", {"ratings": [path]}), "netflix": ("netflix", {"training_set": [path]})}
dataset, paths = roles[kind]
with tempfile.TemporaryDirectory() as out:
    start = time.perf_counter()
    meta = convert_paths(dataset, paths, {}, Path(out))
    seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rows": meta["n_interactions"], "users": meta["n_users"],
                  "items": meta["n_items"],
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def measure(kind: str, path: Path) -> dict:
    """Convert in a fresh interpreter so that ru_maxrss is this conversion's peak alone."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", CHILD, kind, str(path)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{kind} conversion of {path} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "imrl-bench-convert",
                        help="where the generated raw files are kept between runs")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    cases = [("movielens", "ratings.csv", generate_movielens, ML_ROWS),
             ("netflix", "training_set.tar", generate_netflix, NETFLIX_RATINGS)]
    print(f"{'reader':<10} {'rows':>12} {'file MB':>8} {'time s':>7} {'peak MB':>8} {'arrays MB':>9} {'peak/arrays':>11}")
    verdicts = []
    for kind, name, generate, full in cases:
        results = {}
        for rows in (full // 2, full):
            path = args.cache / f"{rows}-{name}"
            if not path.exists():
                print(f"generating {path} ...", file=sys.stderr, flush=True)
                generate(path, rows)
            result = measure(kind, path)
            if result["rows"] != rows:
                raise SystemExit(f"{kind}: converted {result['rows']:,} rows, generated {rows:,}")
            arrays = rows * BYTES_PER_ROW
            results[rows] = result
            print(f"{kind:<10} {rows:>12,} {path.stat().st_size / 1e6:>8.0f} {result['seconds']:>7.1f} "
                  f"{result['peak_rss'] / 1e6:>8.0f} {arrays / 1e6:>9.0f} {result['peak_rss'] / arrays:>11.2f}")
        half, whole = results[full // 2], results[full]
        slope = (whole["peak_rss"] - half["peak_rss"]) / ((full - full // 2) * BYTES_PER_ROW)
        intercept = whole["peak_rss"] - slope * full * BYTES_PER_ROW
        ratio = whole["peak_rss"] / (full * BYTES_PER_ROW)
        print(f"{kind:<10} per-row peak RSS slope = {slope:.2f} x arrays; fixed cost = {intercept / 1e6:.0f} MB")
        verdicts.append((f"{kind}: peak RSS at full size <= {RSS_RATIO_TARGET} x arrays", ratio <= RSS_RATIO_TARGET,
                         f"{ratio:.2f}"))
        verdicts.append((f"{kind}: per-row slope <= {RSS_RATIO_TARGET} x arrays", slope <= RSS_RATIO_TARGET,
                         f"{slope:.2f}"))
        if kind == "movielens":
            verdicts.append((f"movielens: conversion < {ML_TARGET_SECONDS:.0f} s", whole["seconds"] < ML_TARGET_SECONDS,
                             f"{whole['seconds']:.1f} s"))
            verdicts.append((f"movielens: peak RSS < {ML_TARGET_BYTES / 1e9:.0f} GB", whole["peak_rss"] < ML_TARGET_BYTES,
                             f"{whole['peak_rss'] / 1e9:.2f} GB"))
    for label, ok, value in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {value}")
    sys.exit(0 if all(ok for _, ok, _ in verdicts) else 1)


if __name__ == "__main__":
    main()
