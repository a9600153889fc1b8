"""GoodReads (UCSD Book Graph): the interactions CSV with its id maps, or the dedup
JSON with dates; + genres.

- ``goodreads_interactions.csv``: header ``user_id,book_id,is_read,rating,is_reviewed``,
  numeric ids (re-numbered by the publisher from 0), ``is_read`` and ``is_reviewed`` 0 or
  1, rating 0 = not rated, no timestamps (-1: the split falls back to file order).
  ``user_id_map.csv`` (``user_id_csv,user_id``) and ``book_id_map.csv``
  (``book_id_csv,book_id``) give back the original ids, which become the raw ids, so
  both layouts name users and books alike.
- ``goodreads_interactions_dedup.json.gz``: the same interactions as JSON lines with
  the original ids and dates; the timestamp is ``date_added`` (always present, e.g.
  ``Mon Aug 01 13:41:57 -0700 2016``), the date the book entered the user's shelves.
- genres (optional, ``params.with: [genres]``): ``goodreads_book_genres_initial.json.gz``,
  ``{"book_id": ..., "genres": {"fiction": 12, ...}}`` counted from users' shelves; a
  book's category is its most counted genre (ties: alphabetical).

All are clean publisher files: a malformed line is an error naming the file and line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson

from imrl.data.interactions import NO_TIMESTAMP, FormatError
from imrl.data.readers.base import (Columns, IdIndex, ReadResult, ReadStats, block_lines, build,
                                    categories_from_names, category_side, count_lines, csv_batches, ensure_valid,
                                    expect_header, first_bad_line, is_number, numbered_lines, text_blocks)

CSV_HEADER = "user_id,book_id,is_read,rating,is_reviewed"
DATE_FORMAT = "%a %b %d %H:%M:%S %z %Y"
DEDUP_SCHEMA = pa.schema([("user_id", pa.string()), ("book_id", pa.string()), ("rating", pa.int64()),
                          ("is_read", pa.bool_()), ("date_added", pa.string())])


def check_csv_line(line: str) -> str | None:
    fields = line.split(",")
    if len(fields) != 5 or not all(is_number(f, integer=True) for f in fields):
        return f"expected 5 integer fields {CSV_HEADER}"
    user, book, is_read, rating, is_reviewed = (int(f) for f in fields)
    if user < 0 or book < 0:
        return "expected non-negative user_id and book_id (rows of the id maps)"
    if is_read not in (0, 1) or is_reviewed not in (0, 1):
        return "expected is_read and is_reviewed 0 or 1"
    if not 0 <= rating <= 5:
        return "expected a rating from 0 (not rated) to 5"
    return None


def read_csv(path: Path, columns: Columns, users: IdIndex, items: IdIndex, stats: ReadStats) -> None:
    expect_header(path, CSV_HEADER)
    types = {name: pa.int64() for name in CSV_HEADER.split(",")}
    for batch, where in csv_batches(path, list(types), types, check_csv_line, skip_lines=1):
        rating = batch.column("rating").to_numpy()
        ids = np.concatenate([batch.column("user_id").to_numpy(), batch.column("book_id").to_numpy()])
        flags = np.concatenate([batch.column("is_read").to_numpy(), batch.column("is_reviewed").to_numpy()])
        valid = ((rating >= 0) & (rating <= 5)).all() and (ids >= 0).all() and np.isin(flags, (0, 1)).all()
        ensure_valid(bool(valid), where, path, check_csv_line)
        columns.append(users.encode_ints(batch.column("user_id").to_numpy()),
                       items.encode_ints(batch.column("book_id").to_numpy()),
                       rating, np.full(batch.num_rows, NO_TIMESTAMP, np.int64))
        stats.add("rating_lines", batch.num_rows)
        stats.add("is_read", int(batch.column("is_read").to_numpy().sum()))
        stats.add("rated", int((rating > 0).sum()))


def check_map_line(line: str) -> str | None:
    fields = line.split(",")
    if len(fields) != 2 or not is_number(fields[0], integer=True) or int(fields[0]) < 0:
        return "expected a non-negative integer id, a comma and the original id"
    return None


def original_ids(map_path: Path, csv_ids: np.ndarray, header: str) -> np.ndarray:
    """The original ids of `csv_ids` from an id map ``<x>_csv,<x>``."""
    names = header.split(",")
    expect_header(map_path, header)
    keys, values = [np.zeros(0, np.int64)], []
    types = {names[0]: pa.int64(), names[1]: pa.string()}
    for batch, where in csv_batches(map_path, names, types, check_map_line, skip_lines=1):
        keys.append(batch.column(0).to_numpy())
        ensure_valid(bool((keys[-1] >= 0).all()), where, map_path, check_map_line)
        values += batch.column(1).to_pylist()
    keys = np.concatenate(keys)
    _, first_rows = np.unique(keys, return_index=True)
    if len(first_rows) != len(keys):
        row = int(np.setdiff1d(np.arange(len(keys)), first_rows)[0])
        raise FormatError(f"{map_path}:{row + 2}: {names[0]} {keys[row]} appears a second time")
    lookup = np.full(int(keys.max()) + 1 if len(keys) else 0, -1, dtype=np.int64)
    lookup[keys] = np.arange(len(keys))
    position = np.where(csv_ids < len(lookup), lookup[np.minimum(csv_ids, max(len(lookup) - 1, 0))], -1)
    if (position < 0).any():
        missing = csv_ids[position < 0][:5].tolist()
        raise FormatError(f"{map_path}: no entry for {names[0]} {missing} used in the interactions")
    return np.asarray(values, dtype=object)[position].astype(str)


def check_dedup_line(line: str) -> str | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        return f"not JSON ({err})"
    if not isinstance(record, dict):
        return "expected a JSON object"
    for key, kind in (("user_id", str), ("book_id", str), ("rating", int), ("date_added", str)):
        if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
            return f"expected {key} as {kind.__name__}"
    if not 0 <= record["rating"] <= 5:
        return "expected a rating from 0 to 5"
    if record["date_added"]:
        try:
            pd.to_datetime(record["date_added"], format=DATE_FORMAT)
        except ValueError:
            return "expected date_added like 'Mon Aug 01 13:41:57 -0700 2016'"
    return None


def read_dedup(path: Path, columns: Columns, users: IdIndex, items: IdIndex, stats: ReadStats) -> None:
    parse = pajson.ParseOptions(explicit_schema=DEDUP_SCHEMA, unexpected_field_behavior="ignore")
    read = pajson.ReadOptions(use_threads=False, block_size=1 << 30)
    for first_line, block in text_blocks(path):
        def bad_line() -> FormatError:
            return (first_bad_line(block_lines(block, first_line, "utf-8", path), check_dedup_line, path)
                    or FormatError(f"{path}: lines from {first_line}: could not be parsed"))
        try:
            table = pajson.read_json(pa.py_buffer(block), read_options=read, parse_options=parse)
        except pa.ArrowInvalid:
            raise bad_line() from None
        if table.num_rows != block.count(b"\n") or any(table.column(k).null_count for k in DEDUP_SCHEMA.names):
            raise bad_line()
        rating = table.column("rating").to_numpy()
        dates = table.column("date_added").to_pandas()
        try:
            stamps = pd.to_datetime(dates.where(dates != ""), format=DATE_FORMAT, utc=True)
        except ValueError:
            raise bad_line() from None
        seconds = ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).fillna(NO_TIMESTAMP)
        if ((rating < 0) | (rating > 5)).any():
            raise bad_line()
        columns.append(users.encode_strings(table.column("user_id")), items.encode_strings(table.column("book_id")),
                       rating, seconds.to_numpy(dtype=np.int64))
        stats.add("rating_lines", table.num_rows)
        stats.add("missing_date_added", int(stamps.isna().sum()))
        stats.add("is_read", int(table.column("is_read").to_numpy(zero_copy_only=False).sum()))
        stats.add("rated", int((rating > 0).sum()))


def read_genres(path: Path, book_ids: np.ndarray, stats: ReadStats) -> tuple[np.ndarray, list[str]]:
    wanted: dict[str, str | None] = {str(b): None for b in book_ids}
    for number, line in numbered_lines(path, "utf-8"):
        try:
            record = json.loads(line)
            book, genres = str(record["book_id"]), record["genres"]
            if not isinstance(genres, dict) or not all(isinstance(count, int) and not isinstance(count, bool)
                                                       and count >= 0 for count in genres.values()):
                raise TypeError("genres is not an object of non-negative integer counts")
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise FormatError(f"{path}:{number}: expected {{\"book_id\": ..., \"genres\": {{...}}}} "
                              f"({type(err).__name__}: {err}): {line[:200]!r}") from None
        stats.add("genre_lines")
        if book in wanted and genres:
            wanted[book] = min(genres, key=lambda g: (-genres[g], g))
    stats.add("books_without_genre", sum(v is None for v in wanted.values()))
    return categories_from_names([wanted[str(b)] for b in book_ids])


def convert(paths: Mapping[str, list[Path]], options: Mapping[str, Any] | None = None) -> ReadResult:
    stats = ReadStats(files=[str(p) for ps in paths.values() for p in ps])
    users, items = IdIndex(), IdIndex()
    path = paths["interactions"][0]
    if path.name.endswith(".csv"):
        if "user_map" not in paths or "book_map" not in paths:
            raise FormatError(f"{path}: the CSV layout needs user_id_map.csv and book_id_map.csv")
        columns = Columns(count_lines(path))
        read_csv(path, columns, users, items, stats)
        user_ids = original_ids(paths["user_map"][0], users.raw_ids().astype(np.int64), "user_id_csv,user_id")
        item_ids = original_ids(paths["book_map"][0], items.raw_ids().astype(np.int64), "book_id_csv,book_id")
        source = "GoodReads goodreads_interactions.csv (+ id maps)"
    else:
        columns = Columns()
        read_dedup(path, columns, users, items, stats)
        user_ids, item_ids = users.raw_ids(), items.raw_ids()
        source = "GoodReads goodreads_interactions_dedup.json.gz"
    side: dict[str, Any] = {}
    if "genres" in paths:
        side = category_side(stats, read_genres(paths["genres"][0], item_ids, stats),
                             "goodreads_book_genres_initial: most counted shelf genre")
    data = build(columns, users, items, source, **side)
    data.user_ids, data.item_ids = user_ids, item_ids
    return ReadResult(data, stats)
