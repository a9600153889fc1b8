"""MovieLens-100K: u.data (+ genres from u.item, demographics from u.user), or the same
data as RecBole atomic files (ml-100k.inter, .item, .user; ``recbole_atomic``).

u.data: ``user id<TAB>item id<TAB>rating<TAB>timestamp``, whole stars 1-5, unix seconds
(not negative), no header. u.item: latin-1, ``|``-separated ``movie id|title|release date|video release
date|IMDb URL`` then 19 genre flags (0/1) in ``GENRES`` order. u.user:
``user id|age|gender|occupation|zip code``. Clean publisher files: any malformed line is
an error naming the file and line.

Both layouts give the same table, ids and side information:

- item category: the first flagged genre of the movie (RecBole's ``class`` lists the
  flagged genres in the same order), as for the other MovieLens datasets; the
  "unknown" flag is no genre;
- user features: age / 100, gender and occupation one-hot, and the first digit of the
  zip code (the US postal region) one-hot, zip codes that do not start with a digit
  (Canadian ones) sharing ``zip_region=non-US``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from imrl.data.interactions import FormatError
from imrl.data.readers import recbole_atomic
from imrl.data.readers.base import (Columns, IdIndex, ReadResult, ReadStats, build, categories_from_names,
                                    category_side, count_lines, csv_batches, ensure_valid, feature_matrix, is_digits,
                                    is_number, numbered_lines, resolve_options)

ENCODING = "latin-1"
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
NO_GENRE = "unknown"
ITEM_FIELDS = 5 + len(GENRES)
STARS = (1.0, 2.0, 3.0, 4.0, 5.0)   # MovieLens-100K's and -1M's ratings
USER_FIELDS = ("age", "gender", "occupation", "zip_code")   # RecBole's .user names of u.user's columns


def check_rating_line(line: str) -> str | None:
    fields = line.split("\t")
    if len(fields) != 4:
        return f"expected 4 tab-separated fields (user id, item id, rating, timestamp), got {len(fields)}"
    user, item, rating, timestamp = fields
    if not (is_number(user, True) and is_number(item, True) and is_number(timestamp, True)):
        return "expected integer user id, item id and timestamp"
    if not is_number(rating):
        return "expected a numeric rating"
    if float(rating) not in STARS:
        return "expected a rating of whole stars 1 to 5"
    if int(timestamp) < 0:
        return "expected a non-negative timestamp (unix seconds)"
    return None


def read_ratings(path: Path, columns: Columns, users: IdIndex, items: IdIndex, stats: ReadStats) -> None:
    types = {"user": pa.int64(), "item": pa.int64(), "rating": pa.float32(), "timestamp": pa.int64()}
    for batch, where in csv_batches(path, list(types), types, check_rating_line, delimiter="\t", quoted=False):
        rating, timestamp = batch.column(2).to_numpy(), batch.column(3).to_numpy()
        ensure_valid(bool(np.isin(rating, STARS).all() and (timestamp >= 0).all()), where, path, check_rating_line)
        columns.append(users.encode_ints(batch.column(0).to_numpy()), items.encode_ints(batch.column(1).to_numpy()),
                       rating, timestamp)
        stats.add("rating_lines", batch.num_rows)


def first_genre(genres: list[str]) -> str | None:
    """The first of a movie's genres in flag order, "unknown" being none."""
    return next((genre for genre in genres if genre != NO_GENRE), None)


def read_genres(path: Path, stats: ReadStats) -> dict[str, str | None]:
    """u.item: movie id -> first flagged genre."""
    first: dict[str, str | None] = {}
    for number, line in numbered_lines(path, ENCODING):
        fields = line.split("|")
        flags = fields[5:]
        if len(fields) != ITEM_FIELDS or not is_digits(fields[0]) or any(f not in ("0", "1") for f in flags):
            raise FormatError(f"{path}:{number}: expected {ITEM_FIELDS} '|'-separated fields: movie id|title|"
                              f"release date|video release date|IMDb URL|19 genre flags 0 or 1: {line[:200]!r}")
        first[fields[0]] = first_genre([genre for genre, flag in zip(GENRES, flags) if flag == "1"])
        stats.add("movies_rows")
    return first


def age_problem(values: tuple[str, ...]) -> str | None:
    return None if is_digits(values[0]) else f"expected an integer age, got {values[0]!r}"


def read_demographics(path: Path, stats: ReadStats) -> dict[str, tuple[str, ...]]:
    """u.user: user id -> (age, gender, occupation, zip code)."""
    rows: dict[str, tuple[str, ...]] = {}
    for number, line in numbered_lines(path, ENCODING):
        fields = line.split("|")
        problem = (age_problem(tuple(fields[1:])) if len(fields) == 5 and is_digits(fields[0]) else
                   "expected 5 '|'-separated fields: user id (an integer)|age|gender|occupation|zip code")
        if problem:
            raise FormatError(f"{path}:{number}: {problem}: {line[:200]!r}")
        rows[fields[0]] = tuple(fields[1:])
        stats.add("users_rows")
    return rows


def zip_region(code: str) -> str:
    return code[0] if is_digits(code[:1]) else "non-US"


def demographic_features(rows: Mapping[str, tuple[str, ...]], users: IdIndex,
                         stats: ReadStats) -> tuple[np.ndarray, list[str]]:
    """Features of the rating users from their (age, gender, occupation, zip code)."""
    ordered = [rows.get(raw) for raw in users.raw_ids()]
    stats.add("rating_users_without_users_row", sum(row is None for row in ordered))

    def column(j: int, convert=str) -> list:
        return [None if row is None else convert(row[j]) for row in ordered]

    ages = [np.nan if age is None else age / 100 for age in column(0, int)]
    tokens = {"gender": column(1), "occupation": column(2), "zip_region": column(3, zip_region)}
    return feature_matrix(len(ordered), {"age": ages}, tokens)


def genre_names(first: Mapping[str, str | None], items: IdIndex, stats: ReadStats) -> list[str | None]:
    raw_ids = items.raw_ids()
    stats.add("rated_movies_without_movies_row", sum(raw not in first for raw in raw_ids))
    return [first.get(raw) for raw in raw_ids]


def convert(paths: Mapping[str, list[Path]], options: Mapping[str, Any] | None = None) -> ReadResult:
    resolve_options(options, {}, "ml-100k")   # the format is fixed: only source keys (variant, files)
    stats = ReadStats(files=[str(p) for ps in paths.values() for p in ps])
    users, items = IdIndex(), IdIndex()
    if "inter" in paths:     # the recbole variant: atomic files with RecBole's field names
        atomic = recbole_atomic.DEFAULTS
        columns = Columns(count_lines(paths["inter"][0]))
        recbole_atomic.read_inter(paths["inter"][0], columns, users, items, stats, atomic)
        classes = recbole_atomic.read_rows(paths["item"][0], "item_id", ["class"], stats, atomic["encoding"])
        first = {item: first_genre(values[0].split()) for item, values in classes.items()}
        demographics = recbole_atomic.read_rows(paths["user"][0], "user_id", list(USER_FIELDS), stats,
                                                atomic["encoding"], check=age_problem)
        genres_from, source = f"{paths['item'][0].name} class", "MovieLens-100K (RecBole atomic ml-100k.inter)"
    else:
        columns = Columns(count_lines(paths["ratings"][0]))
        read_ratings(paths["ratings"][0], columns, users, items, stats)
        first = read_genres(paths["movies"][0], stats)
        demographics = read_demographics(paths["users"][0], stats)
        genres_from, source = "u.item genre flags", "MovieLens-100K u.data"
    side = category_side(stats, categories_from_names(genre_names(first, items, stats)),
                         f"{genres_from} (first genre of each movie)")
    features, names = demographic_features(demographics, users, stats)
    stats.vocabularies["user_features"] = names
    side["user_features"] = features
    side["side_info"]["user_features"] = "age, gender, occupation, zip-code region"
    return ReadResult(build(columns, users, items, source, **side), stats)
