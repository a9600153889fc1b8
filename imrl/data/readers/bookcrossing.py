"""Book-Crossing (BX-CSV-Dump): ratings, + user demographics.

Every file is ``;``-separated with every field double-quoted (``NULL`` ages bare),
latin-1, with backslash escapes inside fields (``\\"``). BX-Book-Ratings.csv:
``"User-ID";"ISBN";"Book-Rating"``; ratings 1-10 are explicit, 0 is implicit (the user
interacted with the book without rating it), kept with rating 0.0. There are no
timestamps (-1): the split falls back to file order. BX-Users.csv:
``"User-ID";"Location";"Age"``, the demographic user features:

- ``age``: age / 100 where the age is plausible (``min_age``..``max_age``), else 0,
  with ``age_missing`` = 1 (NULL or implausible);
- the country (last comma-separated part of Location, lower case) one-hot over the
  ``top_countries`` most frequent among the rating users, then ``country_other`` and
  ``country_unknown`` (empty or ``n/a``).

ISBNs are kept as written (no normalisation), so the counts match the raw file. The
dump is known to be dirty: a line that does not split into the expected quoted fields
is a counted skip (examples in reader.json), and more than ``max_skipped_fraction`` fails.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from imrl.data.interactions import NO_TIMESTAMP, FormatError
from imrl.data.readers.base import (DEFAULT_MAX_SKIPPED_FRACTION, Columns, IdIndex, ReadResult, ReadStats, RowBuffer,
                                    build, count_lines, is_digits, numbered_lines, resolve_options)

DEFAULTS = {"top_countries": 20, "min_age": 5, "max_age": 100, "max_skipped_fraction": DEFAULT_MAX_SKIPPED_FRACTION}
ENCODING = "latin-1"
RATINGS_HEADER = ["User-ID", "ISBN", "Book-Rating"]
USERS_HEADER = ["User-ID", "Location", "Age"]
UNKNOWN_COUNTRIES = {"", "n/a", "na", "none", "null"}
_FIELD = r'(?:"((?:[^"\\]|\\.)*)"|([^";]*))'
_ESCAPE = re.compile(r"\\(.)")


def field_splitter(n: int) -> re.Pattern:
    return re.compile("^" + ";".join([_FIELD] * n) + r"\s*$")


RATING_LINE, USER_LINE = field_splitter(3), field_splitter(3)


def split_fields(pattern: re.Pattern, line: str) -> list[str] | None:
    """The unescaped fields of `line`, or None when it does not split as expected."""
    match = pattern.match(line)
    if match is None:
        return None
    groups = match.groups()
    return [_ESCAPE.sub(r"\1", quoted) if quoted is not None else bare
            for quoted, bare in zip(groups[0::2], groups[1::2])]


def _expect_header(path: Path, line: str, expected: list[str]) -> None:
    if split_fields(field_splitter(len(expected)), line.lstrip("\ufeff")) != expected:
        raise FormatError(f"{path}:1: expected the header {';'.join(map(repr, expected))}, got {line[:200]!r}")


def read_ratings(path: Path, rows: RowBuffer, stats: ReadStats) -> None:
    for number, line in numbered_lines(path, ENCODING):
        if number == 1:
            _expect_header(path, line, RATINGS_HEADER)
            stats.add("header_lines")
            continue
        fields = split_fields(RATING_LINE, line)
        if fields is None:
            stats.skip(path, number, "not three ';'-separated quoted fields", line)
            continue
        user, isbn, rating = fields
        if not is_digits(user) or not isbn or not is_digits(rating) or int(rating) > 10:
            stats.skip(path, number, "expected a numeric User-ID, an ISBN and a rating 0-10", line)
            continue
        rows.add(int(user), isbn, float(rating), NO_TIMESTAMP)
        stats.add("rating_lines")
        stats.add("implicit_ratings", rating == "0")
    rows.flush()


def read_demographics(path: Path, users: IdIndex, opts: Mapping[str, Any], stats: ReadStats
                      ) -> tuple[np.ndarray, list[str]]:
    """User features [n_users, 2 + top_countries + 2] for the rating users."""
    index = {int(raw): row for row, raw in enumerate(users.raw_ids())}
    ages = np.full(len(index), np.nan)
    countries: list[str | None] = [None] * len(index)
    seen = np.zeros(len(index), dtype=bool)
    for number, line in numbered_lines(path, ENCODING):
        if number == 1:
            _expect_header(path, line, USERS_HEADER)
            continue
        fields = split_fields(USER_LINE, line)
        if fields is None or not is_digits(fields[0]) or not (is_digits(fields[2]) or fields[2] == "NULL"):
            stats.skip(path, number, "expected \"User-ID\";\"Location\";Age (Age a number or NULL)", line)
            continue
        stats.add("users_rows")
        row = index.get(int(fields[0]))
        if row is None:
            continue
        seen[row] = True
        if fields[2] != "NULL":
            age = int(fields[2])
            if opts["min_age"] <= age <= opts["max_age"]:
                ages[row] = age
            else:
                stats.add("implausible_ages")
        country = fields[1].rsplit(",", 1)[-1].strip().strip('"').lower()
        countries[row] = None if country in UNKNOWN_COUNTRIES else country
    stats.add("rating_users_without_users_row", int((~seen).sum()))
    frequency = Counter(c for c in countries if c is not None)
    top = sorted(frequency.items(), key=lambda kv: (-kv[1], kv[0]))[: int(opts["top_countries"])]
    column = {country: 2 + j for j, (country, _) in enumerate(top)}
    other, unknown = 2 + len(top), 3 + len(top)
    features = np.zeros((len(index), 4 + len(top)), dtype=np.float32)
    missing = np.isnan(ages)
    features[:, 0] = np.where(missing, 0.0, ages / 100.0)
    features[:, 1] = missing
    for row, country in enumerate(countries):
        features[row, unknown if country is None else column.get(country, other)] = 1.0
    names = ["age", "age_missing", *(f"country_{c}" for c, _ in top), "country_other", "country_unknown"]
    return features, names


def convert(paths: Mapping[str, list[Path]], options: Mapping[str, Any] | None = None) -> ReadResult:
    opts = resolve_options(options, DEFAULTS, "book-crossing")
    stats = ReadStats(files=[str(p) for ps in paths.values() for p in ps])
    columns = Columns(sum(count_lines(p) for p in paths["ratings"]))
    users, items = IdIndex(), IdIndex()
    for path in paths["ratings"]:
        read_ratings(path, RowBuffer(columns, users, items), stats)
        stats.check_skips(path, columns.rows, float(opts["max_skipped_fraction"]))
    side: dict[str, Any] = {}
    if "users" in paths:
        features, names = read_demographics(paths["users"][0], users, opts, stats)
        stats.check_skips(paths["users"][0], stats.counts.get("users_rows", 0), float(opts["max_skipped_fraction"]))
        stats.vocabularies["user_features"] = names
        side = {"user_features": features,
                "side_info": {"user_features": "BX-Users.csv age and country (one-hot over the most frequent)"}}
    if "books" in paths:
        stats.add("books_lines", count_lines(paths["books"][0]) - 1)   # minus the header
    return ReadResult(build(columns, users, items, "Book-Crossing BX-Book-Ratings.csv", **side), stats)
