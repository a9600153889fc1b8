"""Amazon product data (2014): ratings-only CSV or 5-core reviews, + categories.

- ratings-only CSV: headerless ``user,item,rating,timestamp`` (stars 1-5, unix seconds,
  not negative: -1 is the suite's "no timestamp").
- 5-core reviews: one JSON object a line (gzip), of which we read ``reviewerID``,
  ``asin``, ``overall`` (1-5) and ``unixReviewTime`` (not negative).
- metadata (optional, ``params.with: [metadata]``): one product a line, a Python dict
  literal in the 2014 release (single quotes; JSON in later ones). ``categories`` is a
  list of category paths (``[['CDs & Vinyl', 'Rock', 'Classic Rock'], ...]``); an item's
  category is the first path's entry at ``category_depth`` (1: the level under the root
  shared by the whole file), or the path's last entry when it is shorter.

The rating files are clean publisher files: a malformed line is an error naming the
file and line. Metadata is side information from a known-dirty dump: a line that does
not parse is a counted skip.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from imrl.data.interactions import FormatError
from imrl.data.readers.base import (DEFAULT_MAX_SKIPPED_FRACTION, Columns, IdIndex, ReadResult, ReadStats, RowBuffer,
                                    build, categories_from_names, category_side, count_lines, csv_batches, ensure_valid, is_number,
                                    numbered_lines, resolve_options)

DEFAULTS = {"category_depth": 1, "max_skipped_fraction": DEFAULT_MAX_SKIPPED_FRACTION}
REVIEW_KEYS = ("reviewerID", "asin", "overall", "unixReviewTime")
STARS = (1.0, 5.0)
ASIN = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")


def check_rating_line(line: str) -> str | None:
    fields = line.split(",")
    if len(fields) != 4:
        return f"expected 4 fields user,item,rating,timestamp, got {len(fields)}"
    if not fields[0] or not fields[1]:
        return "expected non-empty user and item ids"
    if not is_number(fields[2]) or not is_number(fields[3], integer=True):
        return "expected a numeric rating and an integer timestamp"
    if not STARS[0] <= float(fields[2]) <= STARS[1]:
        return f"expected a rating from {STARS[0]} to {STARS[1]}"
    if int(fields[3]) < 0:
        return "expected a non-negative timestamp (unix seconds)"
    return None


def read_ratings_csv(path: Path, columns: Columns, users: IdIndex, items: IdIndex, stats: ReadStats) -> None:
    types = {"user": pa.string(), "item": pa.string(), "rating": pa.float32(), "timestamp": pa.int64()}
    for batch, where in csv_batches(path, list(types), types, check_rating_line):
        rating, timestamp = batch.column("rating").to_numpy(), batch.column("timestamp").to_numpy()
        valid = ((rating >= STARS[0]) & (rating <= STARS[1])).all() and (timestamp >= 0).all()
        ensure_valid(bool(valid), where, path, check_rating_line)
        columns.append(users.encode_strings(batch.column("user")), items.encode_strings(batch.column("item")),
                       rating, timestamp)
        stats.add("rating_lines", batch.num_rows)


def _review(line: str, path: Path, number: int) -> tuple[str, str, float, int]:
    try:
        record = json.loads(line)
        user, item, rating, time = (record[key] for key in REVIEW_KEYS)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise FormatError(f"{path}:{number}: expected a JSON object with {', '.join(REVIEW_KEYS)} "
                          f"({type(err).__name__}: {err}): {line[:200]!r}") from None
    if not (isinstance(user, str) and isinstance(item, str) and isinstance(rating, (int, float))
            and not isinstance(rating, bool) and STARS[0] <= rating <= STARS[1]
            and isinstance(time, int) and not isinstance(time, bool) and time >= 0):
        raise FormatError(f"{path}:{number}: expected string reviewerID and asin, overall a number from {STARS[0]} "
                          f"to {STARS[1]} and unixReviewTime a non-negative integer: {line[:200]!r}")
    return user, item, float(rating), time


def read_reviews_json(path: Path, rows: RowBuffer, stats: ReadStats) -> None:
    for number, line in numbered_lines(path, "utf-8"):
        if not line.strip():
            stats.add("blank_lines")
            continue
        rows.add(*_review(line, path, number))
        stats.add("review_lines")
    rows.flush()


def _category_path(record: dict[str, Any]) -> list[str]:
    categories = record.get("categories")
    if isinstance(categories, list) and categories and isinstance(categories[0], list):
        return [str(c) for c in categories[0]]
    flat = record.get("category")   # later releases: one flat path
    return [str(c) for c in flat] if isinstance(flat, list) else []


def read_categories(path: Path, items: IdIndex, depth: int, max_skipped: float, stats: ReadStats
                    ) -> tuple[np.ndarray, list[str]]:
    """Category of every item from the metadata file; only lines of items we have are
    parsed (the file covers the whole category)."""
    wanted = {str(raw): None for raw in items.raw_ids()}
    lines = 0
    for number, line in numbered_lines(path, "utf-8"):
        lines += 1
        match = ASIN.search(line)
        if match is None:
            stats.skip(path, number, "no asin", line)
            continue
        if match.group(1) not in wanted:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            try:
                record = ast.literal_eval(line)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                stats.skip(path, number, "not a dict literal", line)
                continue
        if not isinstance(record, dict):
            stats.skip(path, number, "not a dict literal", line)
            continue
        route = _category_path(record)
        wanted[match.group(1)] = route[depth] if len(route) > depth else (route[-1] if route else None)
    stats.add("metadata_lines", lines)
    stats.add("items_without_category", sum(v is None for v in wanted.values()))
    stats.check_skips(path, lines - stats.skipped_per_file.get(str(path), 0), max_skipped)
    return categories_from_names(list(wanted.values()))


def convert(paths: Mapping[str, list[Path]], options: Mapping[str, Any] | None = None) -> ReadResult:
    opts = resolve_options(options, DEFAULTS, "amazon-cd")
    stats = ReadStats(files=[str(p) for ps in paths.values() for p in ps])
    users, items = IdIndex(), IdIndex()
    if "ratings" in paths:
        columns = Columns(sum(count_lines(p) for p in paths["ratings"]))
        for path in paths["ratings"]:
            read_ratings_csv(path, columns, users, items, stats)
        source = "Amazon CDs and Vinyl ratings-only CSV"
    elif "reviews" in paths:
        columns = Columns()
        for path in paths["reviews"]:
            read_reviews_json(path, RowBuffer(columns, users, items), stats)
        source = "Amazon CDs and Vinyl 5-core reviews"
    else:
        raise FormatError("amazon-cd: needs the 'ratings' CSV or the 'reviews' JSON file")
    side: dict[str, Any] = {}
    if "metadata" in paths:
        coded = read_categories(paths["metadata"][0], items, int(opts["category_depth"]),
                                float(opts["max_skipped_fraction"]), stats)
        side = category_side(stats, coded, f"metadata categories (first path, depth {opts['category_depth']})")
    return ReadResult(build(columns, users, items, source, **side), stats)
