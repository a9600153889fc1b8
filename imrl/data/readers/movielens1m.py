"""MovieLens-1M: ratings.dat (+ genres from movies.dat, demographics from users.dat).

Every file is ``::``-separated with no header. ratings.dat:
``UserID::MovieID::Rating::Timestamp``, whole stars 1-5, unix seconds (not negative). movies.dat
(latin-1): ``MovieID::Title::Genres``, genres ``a|b|c``; it lists 3,883 movies, of which
3,706 are rated. users.dat: ``UserID::Gender::Age::Occupation::Zip-code``, the age and
occupation as the README's codes. Clean publisher files: any malformed line is an error
naming the file and line.

Item category: the first listed genre, as for the other MovieLens datasets. User
features: gender, age group and occupation one-hot (named as in the README), and the
first digit of the zip code (US postal region) one-hot, as for MovieLens-100K.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from imrl.data.interactions import FormatError
from imrl.data.readers.base import (Columns, IdIndex, ReadResult, ReadStats, build, categories_from_names,
                                    category_side, count_lines, csv_batches, ensure_valid, feature_matrix, is_digits,
                                    is_number, numbered_lines, resolve_options)
from imrl.data.readers.movielens100k import STARS, zip_region

SEPARATOR = "::"
ENCODING = "latin-1"
AGE_GROUPS = {"1": "Under 18", "18": "18-24", "25": "25-34", "35": "35-44", "45": "45-49", "50": "50-55",
              "56": "56+"}
OCCUPATIONS = ("other or not specified", "academic/educator", "artist", "clerical/admin", "college/grad student",
               "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
               "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist", "self-employed",
               "technician/engineer", "tradesman/craftsman", "unemployed", "writer")


def check_rating_line(line: str) -> str | None:
    fields = line.split(SEPARATOR)
    if len(fields) != 4:
        return f"expected 4 '::'-separated fields UserID::MovieID::Rating::Timestamp, got {len(fields)}"
    user, movie, rating, timestamp = fields
    if not (is_number(user, True) and is_number(movie, True) and is_number(timestamp, True)):
        return "expected integer UserID, MovieID and Timestamp"
    if not is_number(rating):
        return "expected a numeric Rating"
    if float(rating) not in STARS:
        return "expected a Rating of whole stars 1 to 5"
    if int(timestamp) < 0:
        return "expected a non-negative Timestamp (unix seconds)"
    return None


def read_ratings(path: Path, columns: Columns, users: IdIndex, items: IdIndex, stats: ReadStats) -> None:
    types = {"user": pa.int64(), "item": pa.int64(), "rating": pa.float32(), "timestamp": pa.int64()}
    for batch, where in csv_batches(path, list(types), types, check_rating_line, delimiter=SEPARATOR, quoted=False):
        rating, timestamp = batch.column(2).to_numpy(), batch.column(3).to_numpy()
        ensure_valid(bool(np.isin(rating, STARS).all() and (timestamp >= 0).all()), where, path, check_rating_line)
        columns.append(users.encode_ints(batch.column(0).to_numpy()), items.encode_ints(batch.column(1).to_numpy()),
                       rating, timestamp)
        stats.add("rating_lines", batch.num_rows)


def read_genres(path: Path, items: IdIndex, stats: ReadStats) -> tuple[np.ndarray, list[str]]:
    """The first listed genre of every rated movie (-1: no movies.dat row)."""
    first: dict[str, str] = {}
    for number, line in numbered_lines(path, ENCODING):
        fields = line.split(SEPARATOR)
        if len(fields) != 3 or not is_digits(fields[0]) or not fields[2]:
            raise FormatError(f"{path}:{number}: expected MovieID::Title::Genres (an integer id, genres a|b|c): "
                              f"{line[:200]!r}")
        first[fields[0]] = fields[2].split("|")[0]
        stats.add("movies_rows")
    names = [first.get(raw) for raw in items.raw_ids()]
    stats.add("rated_movies_without_movies_row", names.count(None))
    return categories_from_names(names)


def read_demographics(path: Path, users: IdIndex, stats: ReadStats) -> tuple[np.ndarray, list[str]]:
    rows: dict[str, tuple[str, str, str, str]] = {}
    for number, line in numbered_lines(path, ENCODING):
        fields = line.split(SEPARATOR)
        if (len(fields) != 5 or not is_digits(fields[0]) or fields[1] not in ("M", "F") or fields[2] not in AGE_GROUPS
                or not is_digits(fields[3]) or int(fields[3]) >= len(OCCUPATIONS)):
            raise FormatError(f"{path}:{number}: expected UserID::Gender::Age::Occupation::Zip-code (gender M or F, "
                              f"age one of {', '.join(AGE_GROUPS)}, occupation 0-{len(OCCUPATIONS) - 1}): "
                              f"{line[:200]!r}")
        rows[fields[0]] = (fields[1], AGE_GROUPS[fields[2]], OCCUPATIONS[int(fields[3])], zip_region(fields[4]))
        stats.add("users_rows")
    ordered = [rows.get(raw) for raw in users.raw_ids()]
    stats.add("rating_users_without_users_row", ordered.count(None))
    tokens = {name: [None if row is None else row[j] for row in ordered]
              for j, name in enumerate(("gender", "age_group", "occupation", "zip_region"))}
    return feature_matrix(len(ordered), {}, tokens)


def convert(paths: Mapping[str, list[Path]], options: Mapping[str, Any] | None = None) -> ReadResult:
    resolve_options(options, {}, "ml-1m")   # the format is fixed: only source keys (variant, files)
    stats = ReadStats(files=[str(p) for ps in paths.values() for p in ps])
    columns = Columns(count_lines(paths["ratings"][0]))
    users, items = IdIndex(), IdIndex()
    read_ratings(paths["ratings"][0], columns, users, items, stats)
    side = category_side(stats, read_genres(paths["movies"][0], items, stats),
                         "movies.dat genres (first listed genre of each movie)")
    features, names = read_demographics(paths["users"][0], users, stats)
    stats.vocabularies["user_features"] = names
    side["user_features"] = features
    side["side_info"]["user_features"] = "gender, age group, occupation, zip-code region"
    return ReadResult(build(columns, users, items, "MovieLens-1M ratings.dat", **side), stats)
