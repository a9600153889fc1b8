"""LibraryThing reviews, in the two layouts lthing_data.tar.gz has shipped.

- ``reviews.json``: one Python dict literal a line (single quotes: not JSON), e.g.
  ``{'work': '3206242', 'stars': 5.0, 'unixtime': 1194393600, 'user': 'van_stef', ...}``.
- ``reviews.txt``: a header line, then ``reviews[('user', 'work')] = {...}`` lines.

Keys used: ``user``, ``work`` (from the key tuple when the dict lacks them), ``stars``
(half stars 0.5-5; may be missing: the review has no rating, kept with rating 0.0) and
``unixtime`` (may be missing: timestamp -1, the split's documented fallback then orders
the row; a negative one is a skipped line). The dump is known to hold lines that do not parse; each is a counted skip
(with examples in reader.json), and more than ``max_skipped_fraction`` of them fails.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Mapping

from imrl.data.readers.base import (DEFAULT_MAX_SKIPPED_FRACTION, Columns, IdIndex, ReadResult, ReadStats, RowBuffer,
                                    build, numbered_lines, resolve_options)
from imrl.data.interactions import NO_TIMESTAMP

DEFAULTS = {"max_skipped_fraction": DEFAULT_MAX_SKIPPED_FRACTION}
ASSIGNMENT = "reviews["
SEPARATOR = "] = "
NO_STARS = 0.0


def parse_line(line: str) -> tuple[str, str, Any, Any] | str:
    """(user, work, stars or None, unixtime or None), or the reason the line is skipped."""
    key: Any = None
    text = line
    if line.startswith(ASSIGNMENT):
        cut = line.find(SEPARATOR)
        if cut < 0:
            return "assignment without ' = '"
        try:
            key = ast.literal_eval(line[len(ASSIGNMENT):cut])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return "unparsable key"
        text = line[cut + len(SEPARATOR):]
    try:
        record = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return "unparsable dict literal"
    if not isinstance(record, dict):
        return "not a dict"
    user, work = record.get("user"), record.get("work")
    if isinstance(key, tuple) and len(key) == 2:
        user = key[0] if user is None else user
        work = key[1] if work is None else work
    if not isinstance(user, str) or not user or work is None or str(work) == "":
        return "missing user or work"
    stars, time = record.get("stars"), record.get("unixtime")
    if stars is not None and (isinstance(stars, bool) or not isinstance(stars, (int, float)) or not 0 <= stars <= 5):
        return "stars not a number in [0, 5]"
    if time is not None and (isinstance(time, bool) or not isinstance(time, int) or time < 0):
        return "unixtime not a non-negative integer"
    return user, str(work), stars, time


def read_reviews(path: Path, rows: RowBuffer, stats: ReadStats) -> None:
    for number, line in numbered_lines(path, "utf-8"):
        if not line.strip():
            stats.add("blank_lines")
            continue
        if number == 1 and not line.startswith((ASSIGNMENT, "{")):
            stats.add("header_lines")
            continue
        parsed = parse_line(line)
        if isinstance(parsed, str):
            stats.skip(path, number, parsed, line)
            continue
        user, work, stars, time = parsed
        stats.add("review_lines")
        stats.add("missing_stars", stars is None)
        stats.add("missing_unixtime", time is None)
        rows.add(user, work, NO_STARS if stars is None else float(stars), NO_TIMESTAMP if time is None else time)
    rows.flush()


def convert(paths: Mapping[str, list[Path]], options: Mapping[str, Any] | None = None) -> ReadResult:
    opts = resolve_options(options, DEFAULTS, "librarything")
    stats = ReadStats(files=[str(p) for ps in paths.values() for p in ps])
    columns, users, items = Columns(), IdIndex(), IdIndex()
    for path in paths["reviews"]:
        read_reviews(path, RowBuffer(columns, users, items), stats)
        stats.check_skips(path, stats.counts.get("review_lines", 0), float(opts["max_skipped_fraction"]))
    return ReadResult(build(columns, users, items, "LibraryThing reviews"), stats)
