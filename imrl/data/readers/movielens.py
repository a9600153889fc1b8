"""MovieLens ratings.csv (+ genres from movies.csv).

ratings.csv: header ``userId,movieId,rating,timestamp``, UTF-8, half stars 0.5-5, unix
seconds, one rating a line. movies.csv: ``movieId,title,genres``, titles quoted when
they contain commas, genres ``a|b|c`` or ``(no genres listed)``. Both are clean
publisher files, so any malformed line is an error naming the file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from imrl.data.interactions import FormatError
from imrl.data.readers.base import (Columns, IdIndex, ReadResult, ReadStats, build, categories_from_names,
                                    category_side, count_lines, csv_batches, ensure_valid, expect_header, is_number)

RATINGS_HEADER = "userId,movieId,rating,timestamp"
MOVIES_HEADER = "movieId,title,genres"
NO_GENRES = "(no genres listed)"


def check_rating_line(line: str) -> str | None:
    fields = line.split(",")
    if len(fields) != 4:
        return f"expected 4 fields {RATINGS_HEADER}, got {len(fields)}"
    user, movie, rating, timestamp = fields
    if not (is_number(user, True) and is_number(movie, True) and is_number(timestamp, True)):
        return "expected integer userId, movieId and timestamp"
    if not is_number(rating):
        return "expected a numeric rating"
    return None


def read_ratings(path: Path, columns: Columns, users: IdIndex, items: IdIndex, stats: ReadStats) -> None:
    expect_header(path, RATINGS_HEADER)
    types = {"userId": pa.int64(), "movieId": pa.int64(), "rating": pa.float32(), "timestamp": pa.int64()}
    for batch, where in csv_batches(path, list(types), types, check_rating_line, skip_lines=1):
        rating = batch.column(2).to_numpy()
        ensure_valid(bool(np.isfinite(rating).all()), where, path, check_rating_line)
        columns.append(users.encode_ints(batch.column(0).to_numpy()), items.encode_ints(batch.column(1).to_numpy()),
                       rating, batch.column(3).to_numpy())
        stats.add("rating_lines", batch.num_rows)
    stats.add("header_lines", 1)


def read_genres(path: Path, items: IdIndex, stats: ReadStats) -> tuple[np.ndarray, list[str]]:
    """The first listed genre of every rated movie (-1: none listed, or no movies.csv row)."""
    expect_header(path, MOVIES_HEADER)
    read = pacsv.ReadOptions(skip_rows=1, column_names=["movieId", "title", "genres"])
    convert = pacsv.ConvertOptions(column_types={"movieId": pa.int64(), "title": pa.string(), "genres": pa.string()},
                                   null_values=[], strings_can_be_null=False)
    try:
        table = pacsv.read_csv(str(path), read_options=read, convert_options=convert)
    except pa.ArrowInvalid as err:
        raise FormatError(f"{path}: expected rows {MOVIES_HEADER} (titles quoted when they hold commas): {err}") from None
    first_genre = {movie: genres.split("|")[0] for movie, genres in
                   zip(table.column("movieId").to_pylist(), table.column("genres").to_pylist())}
    stats.add("movies_rows", table.num_rows)
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
