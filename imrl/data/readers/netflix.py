"""Netflix Prize ratings, in both layouts, and movie_titles.

- ``training_set.tar`` (or its extracted folder): 17,770 files ``mv_XXXXXXX.txt``; the
  first line is ``MovieID:``, every other line ``CustomerID,Rating,YYYY-MM-DD``.
- Kaggle's ``combined_data_1..4.txt``: those files concatenated, ``MovieID:`` lines
  included. A ``MovieID:`` line is a movie header, never a rating: counting it as one
  is how Table I of the paper reaches 100,498,277 (= 100,480,507 + 17,770).
- ``movie_titles.txt`` / ``movie_titles.csv``: latin-1 ``MovieID,Year,Title``; titles
  hold commas (split at most twice) and the year may be ``NULL``.

The README's ranges are enforced, a value outside them an error naming the file and line:
MovieIDs and CustomerIDs are positive integers, ratings 1-5, release years 1890-2005.

Dates are days: the timestamp is midnight UTC of that day, so a user's ratings of one
day tie (the chronological split breaks ties by file order). The only item attribute
besides the title is the release year, kept as the item category.
"""

from __future__ import annotations

import datetime as dt
import re
import tarfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from imrl.data.interactions import FormatError
from imrl.data.readers.base import (BLOCK_BYTES, Columns, IdIndex, ReadResult, ReadStats, build,
                                    categories_from_names, category_side, first_bad_line, block_lines, is_digits,
                                    numbered_lines, text_blocks)

HEADER = re.compile(rb"^(\d+):[ \t]*\r?$", re.MULTILINE)
MOVIE_FILE = re.compile(r"(?:^|/)mv_([0-9]{7})\.txt$")
MIN_LINE_BYTES = len("1,1,2000-01-01\n")
SECONDS_PER_DAY = 86_400
TYPES = {"customer": pa.int64(), "rating": pa.int8(), "date": pa.date32()}
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
YEARS = (1890, 2005)   # the README's range of YearOfRelease


def check_rating_line(line: str) -> str | None:
    fields = line.split(",")
    if len(fields) != 3:
        return f"expected CustomerID,Rating,YYYY-MM-DD (or a 'MovieID:' header), got {len(fields)} fields"
    customer, rating, date = fields
    if not is_digits(customer) or int(customer) < 1:
        return "expected a positive integer CustomerID"
    if rating not in {"1", "2", "3", "4", "5"}:
        return "expected a Rating from 1 to 5"
    if not is_date(date):
        return "expected a YYYY-MM-DD date"
    return None


def is_date(text: str) -> bool:
    """A YYYY-MM-DD calendar date (pyarrow's date32 reads no other form)."""
    try:
        return DATE.fullmatch(text) is not None and bool(dt.date.fromisoformat(text))
    except ValueError:
        return False


class _Bodies:
    """Rating lines of several movies, parsed together once about 16 MB have gathered."""

    def __init__(self, columns: Columns, users: IdIndex, items: IdIndex, stats: ReadStats):
        self.columns, self.users, self.items, self.stats = columns, users, items, stats
        self.parts: list[tuple[int, bytes, str, int]] = []   # (movie, lines, file, first line number)
        self.size = 0

    def add(self, movie: int, body: bytes, where: str, first_line: int) -> None:
        self.parts.append((movie, body, where, first_line))
        self.size += len(body)
        if self.size >= BLOCK_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.parts:
            return
        parts, self.parts, self.size = self.parts, [], 0
        text = b"".join(body for _, body, _, _ in parts)
        try:
            table = pacsv.read_csv(pa.py_buffer(text),
                                   read_options=pacsv.ReadOptions(column_names=list(TYPES), use_threads=False),
                                   parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
                                   convert_options=pacsv.ConvertOptions(column_types=TYPES, null_values=[]))
            rating = table.column("rating").to_numpy()
            valid = bool(((rating >= 1) & (rating <= 5)).all() and (table.column("customer").to_numpy() >= 1).all())
        except pa.ArrowInvalid:
            valid = False
        if not valid:
            for _, body, where, first_line in parts:
                error = first_bad_line(block_lines(body, first_line, "latin-1", where), check_rating_line, where)
                if error:
                    raise error
            raise FormatError(f"{parts[0][2]}: rating lines could not be parsed")
        counts = np.fromiter((body.count(b"\n") for _, body, _, _ in parts), dtype=np.int64, count=len(parts))
        movies = np.repeat(np.fromiter((m for m, _, _, _ in parts), dtype=np.int64, count=len(parts)), counts)
        days = table.column("date").cast(pa.int32()).to_numpy().astype(np.int64)
        self.columns.append(self.users.encode_ints(table.column("customer").to_numpy()),
                            self.items.encode_ints(movies), rating, days * SECONDS_PER_DAY)
        self.stats.add("rating_lines", table.num_rows)


def _first_line(text: bytes) -> bytes:
    return text.split(b"\n", 1)[0][:200]


def _segments(text: bytes | bytearray, first_line: int, movie: int | None, where: str,
              stats: ReadStats) -> tuple[list[tuple[int, bytes, int]], int | None]:
    """Split text at ``MovieID:`` headers into [(movie, rating lines, first line number)]
    and the movie the text ends in. `movie` is the one it starts in (None: a file start).
    Rating lines never hold a colon, so headers are found by a fast byte search."""
    segments, position, line = [], 0, first_line

    def take(end: int) -> None:
        nonlocal line
        body = bytes(text[position:end])
        if body:
            if movie is None:
                raise FormatError(f"{where}:{line}: rating line before any 'MovieID:' header: {_first_line(body)!r}")
            segments.append((movie, body, line))
            line += body.count(b"\n")

    while (colon := text.find(b":", position)) >= 0:
        start = text.rfind(b"\n", 0, colon) + 1
        end = text.find(b"\n", colon)
        take(start)
        header = HEADER.match(text, start, end + 1)
        if header is None:
            raise FormatError(f"{where}:{line}: expected a 'MovieID:' header or CustomerID,Rating,YYYY-MM-DD, "
                              f"got {bytes(text[start:end])[:200]!r}")
        movie = int(header.group(1))
        if movie < 1:
            raise FormatError(f"{where}:{line}: expected a positive MovieID, got {bytes(text[start:end])[:200]!r}")
        stats.add("movie_header_lines")
        position, line = end + 1, line + 1
    take(len(text))
    return segments, movie


def read_combined(path: Path, bodies: _Bodies, stats: ReadStats) -> None:
    """combined_data_N.txt: the current movie carries over from block to block."""
    movie: int | None = None
    for first_line, block in text_blocks(path):
        segments, movie = _segments(block, first_line, movie, str(path), stats)
        for segment_movie, body, line in segments:
            bodies.add(segment_movie, body, str(path), line)


def _movie_files(path: Path) -> Iterator[tuple[str, int, bytes]]:
    """(name, movie number from the name, content) of every per-movie file, in archive
    (or name) order. Anything else in the archive is an error."""
    if path.is_dir():
        for file in sorted(path.glob("mv_*.txt")):
            match = MOVIE_FILE.search(file.name)
            if match is None:
                raise FormatError(f"{file}: expected a name mv_XXXXXXX.txt")
            yield str(file), int(match.group(1)), file.read_bytes()
        return
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            if member.isdir():
                continue
            match = MOVIE_FILE.search(member.name)
            if not member.isreg() or match is None:
                raise FormatError(f"{path}: unexpected member {member.name!r}; expected training_set/mv_XXXXXXX.txt files")
            yield f"{path}:{member.name}", int(match.group(1)), tar.extractfile(member).read()


def read_training_set(path: Path, bodies: _Bodies, stats: ReadStats) -> None:
    for where, number, content in _movie_files(path):
        if not content.endswith(b"\n"):
            content += b"\n"
        header = HEADER.match(content)
        if header is None or int(header.group(1)) != number:
            raise FormatError(f"{where}:1: expected the header '{number}:', got {_first_line(content)!r}")
        segments, last = _segments(content, 1, None, where, stats)
        if last != number or any(movie != number for movie, _, _ in segments):
            raise FormatError(f"{where}: expected only movie {number}, found another 'MovieID:' header")
        for movie, body, line in segments:
            bodies.add(movie, body, where, line)
        stats.add("movie_files")


def read_titles(path: Path, items: IdIndex, stats: ReadStats) -> tuple[np.ndarray, list[str]]:
    """Release year of every rated movie as its category (-1: NULL year or no title row)."""
    years: dict[int, str | None] = {}
    for number, line in numbered_lines(path, "latin-1"):
        fields = line.split(",", 2)
        if (len(fields) != 3 or not is_digits(fields[0]) or int(fields[0]) < 1
                or not (fields[1] == "NULL" or is_digits(fields[1]) and YEARS[0] <= int(fields[1]) <= YEARS[1])):
            raise FormatError(f"{path}:{number}: expected MovieID,Year,Title (a positive MovieID, a Year from "
                              f"{YEARS[0]} to {YEARS[1]} or NULL): {line[:200]!r}")
        years[int(fields[0])] = None if fields[1] == "NULL" else fields[1]
        stats.add("title_rows")
        stats.add("title_null_years", fields[1] == "NULL")
    names = []
    for raw in items.raw_ids():
        movie = int(raw)
        if movie not in years:
            stats.add("rated_movies_without_title")
        names.append(years.get(movie))
    return categories_from_names(names)


def convert(paths: Mapping[str, list[Path]], options: Mapping[str, Any] | None = None) -> ReadResult:
    stats = ReadStats(files=[str(p) for ps in paths.values() for p in ps])
    rating_files = paths.get("training_set") or paths.get("combined_data")
    if not rating_files:
        raise FormatError("netflix: needs the 'training_set' (tar or folder) or the 'combined_data' files")
    sizes = sum(sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
                for p in rating_files)
    columns, users, items = Columns(sizes // MIN_LINE_BYTES + 1), IdIndex(), IdIndex()
    bodies = _Bodies(columns, users, items, stats)
    for path in rating_files:
        (read_training_set if "training_set" in paths else read_combined)(path, bodies, stats)
    bodies.flush()
    side: dict[str, Any] = {}
    if "titles" in paths:
        side = category_side(stats, read_titles(paths["titles"][0], items, stats),
                             "movie_titles release year (one category per year; NULL = -1)")
    layout = "training_set per-movie files" if "training_set" in paths else "combined_data files"
    return ReadResult(build(columns, users, items, f"Netflix Prize {layout}", **side), stats)
