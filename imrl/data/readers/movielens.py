"""MovieLens ratings.csv (+ genres from movies.csv).

ratings.csv: header ``userId,movieId,rating,timestamp``, UTF-8, half stars 0.5-5, unix
seconds (never negative: -1 is the suite's "no timestamp"), one rating a line.
movies.csv: ``movieId,title,genres``, titles quoted when they contain commas, genres
``a|b|c`` or ``(no genres listed)``. Both are clean publisher files, so any malformed
line or value outside those ranges is an error naming the file and line.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from imrl.data.readers.base import (Columns, IdIndex, ReadResult, ReadStats, build, categories_from_names,
                                    category_side, count_lines, csv_batches, ensure_valid, expect_header, is_number)

RATINGS_HEADER = "userId,movieId,rating,timestamp"
MOVIES_HEADER = "movieId,title,genres"
NO_GENRES = "(no genres listed)"
MIN_RATING, MAX_RATING = 0.5, 5.0


def check_rating_line(line: str) -> str | None:
    fields = line.split(",")
    if len(fields) != 4:
        return f"expected 4 fields {RATINGS_HEADER}, got {len(fields)}"
    user, movie, rating, timestamp = fields
    if not (is_number(user, True) and is_number(movie, True) and is_number(timestamp, True)):
        return "expected integer userId, movieId and timestamp"
    if not is_number(rating):
        return "expected a numeric rating"
    if not (MIN_RATING <= float(rating) <= MAX_RATING and (2 * float(rating)).is_integer()):
        return f"expected a rating from {MIN_RATING} to {MAX_RATING} in half stars"
    if int(timestamp) < 0:
        return "expected a non-negative timestamp (unix seconds)"
    return None


def check_movie_line(line: str) -> str | None:
    fields = next(csv.reader([line]))
    if len(fields) != 3 or not is_number(fields[0], integer=True):
        return f"expected {MOVIES_HEADER} (an integer movieId, titles quoted when they hold commas)"
    return None


def read_ratings(path: Path, columns: Columns, users: IdIndex, items: IdIndex, stats: ReadStats) -> None:
    expect_header(path, RATINGS_HEADER)
    types = {"userId": pa.int64(), "movieId": pa.int64(), "rating": pa.float32(), "timestamp": pa.int64()}
    for batch, where in csv_batches(path, list(types), types, check_rating_line, skip_lines=1):
        rating, timestamp = batch.column(2).to_numpy(), batch.column(3).to_numpy()
        in_range = (rating >= MIN_RATING) & (rating <= MAX_RATING) & (rating * 2 == np.round(rating * 2))
        ensure_valid(bool(in_range.all() and (timestamp >= 0).all()), where, path, check_rating_line)
        columns.append(users.encode_ints(batch.column(0).to_numpy()), items.encode_ints(batch.column(1).to_numpy()),
                       rating, timestamp)
        stats.add("rating_lines", batch.num_rows)
    stats.add("header_lines", 1)


def read_genres(path: Path, items: IdIndex, stats: ReadStats) -> tuple[np.ndarray, list[str]]:
    """The first listed genre of every rated movie (-1: none listed, or no movies.csv row)."""
    expect_header(path, MOVIES_HEADER)
    types = {"movieId": pa.int64(), "title": pa.string(), "genres": pa.string()}
    first_genre = {}
    for batch, _ in csv_batches(path, list(types), types, check_movie_line, skip_lines=1):
        first_genre.update((movie, genres.split("|")[0]) for movie, genres in
                           zip(batch.column("movieId").to_pylist(), batch.column("genres").to_pylist()))
        stats.add("movies_rows", batch.num_rows)
    names = []
    for raw in items.raw_ids():
        genre = first_genre.get(int(raw))
        if genre is None:
            stats.add("rated_movies_without_movies_row")
        names.append(None if genre in (None, NO_GENRES) else genre)
    return categories_from_names(names)


def convert(paths: Mapping[str, list[Path]], options: Mapping[str, Any] | None = None) -> ReadResult:
    stats = ReadStats(files=[str(p) for ps in paths.values() for p in ps])
    columns = Columns(sum(count_lines(p) for p in paths["ratings"]))
    users, items = IdIndex(), IdIndex()
    for path in paths["ratings"]:
        read_ratings(path, columns, users, items, stats)
    side: dict[str, Any] = {}
    if "movies" in paths:
        side = category_side(stats, read_genres(paths["movies"][0], items, stats),
                             "movies.csv genres (first listed genre of each movie)")
    data = build(columns, users, items, "MovieLens ratings.csv", **side)
    return ReadResult(data, stats)
