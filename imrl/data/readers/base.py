"""What every reader shares: id indexing, column accumulation, counted skips, and
precise errors (file and line) for the fast pyarrow paths.

Readers stream: they hold one chunk of raw text at a time plus the growing columns
(int32 user, int32 item, float32 rating, int64 timestamp), so peak memory is a small
multiple of the final table.
"""

from __future__ import annotations

import gzip
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from imrl.data.interactions import COLUMNS, FormatError, Interactions
from imrl.data.sources import SOURCE_KEYS

BLOCK_BYTES = 16 << 20          # text handed to pyarrow at a time
MAX_EXAMPLES = 5                # skipped lines quoted in the stats
_INTEGER = re.compile(r"[ \t]*-?[0-9]+[ \t]*")   # as pyarrow reads integers
DEFAULT_MAX_SKIPPED_FRACTION = 0.01


# --------------------------------------------------------------------------------------
# Raw ids -> contiguous ids

class IdIndex:
    """Raw ids -> contiguous int32 ids, numbered in order of first appearance.

    Non-negative integer ids use a dense lookup table (vectorised); anything else (strings,
    huge or negative integers) a dict."""

    DENSE_LIMIT = 1 << 26

    def __init__(self) -> None:
        self._dense: np.ndarray | None = None        # raw int -> id, -1 = unseen
        self._dense_raw: list[np.ndarray] = []       # raw ints, in id order
        self._lookup: dict[Any, int] | None = None   # used once anything is not a small int

    def __len__(self) -> int:
        return len(self._lookup) if self._lookup is not None else sum(len(c) for c in self._dense_raw)

    def encode_ints(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw)
        if self._lookup is None and (raw.size == 0 or (raw.min() >= 0 and raw.max() < self.DENSE_LIMIT)):
            return self._encode_dense(raw.astype(np.int64, copy=False))
        return self._encode_lookup(raw.tolist())

    def encode_strings(self, values: pa.Array | pa.ChunkedArray | Iterable[str]) -> np.ndarray:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        array = values if isinstance(values, pa.Array) else pa.array(list(values), type=pa.string())
        encoded = array.dictionary_encode()
        codes = self._encode_lookup(encoded.dictionary.to_pylist())
        return codes[encoded.indices.to_numpy(zero_copy_only=False)]

    def encode(self, values: list) -> np.ndarray:
        """Python ints or strings, as ``encode_ints`` or ``encode_strings``."""
        if values and isinstance(values[0], int):
            return self.encode_ints(np.asarray(values, dtype=np.int64))
        return self.encode_strings(values)

    def raw_ids(self) -> np.ndarray:
        if self._lookup is not None:
            return np.asarray([str(k) for k in self._lookup])
        return (np.concatenate(self._dense_raw) if self._dense_raw else np.zeros(0, np.int64)).astype(str)

    def _encode_dense(self, raw: np.ndarray) -> np.ndarray:
        if raw.size == 0:
            return np.zeros(0, np.int32)
        need = int(raw.max()) + 1
        if self._dense is None or len(self._dense) < need:
            grown = np.full(min(self.DENSE_LIMIT, max(need, 2 * (0 if self._dense is None else len(self._dense)))),
                            -1, dtype=np.int32)
            if self._dense is not None:
                grown[: len(self._dense)] = self._dense
            self._dense = grown
        codes = self._dense[raw]
        new = codes < 0
        if new.any():
            unique, first = np.unique(raw[new], return_index=True)
            fresh = unique[np.argsort(first, kind="stable")]
            start = len(self)
            self._dense[fresh] = np.arange(start, start + len(fresh), dtype=np.int32)
            self._dense_raw.append(fresh)
            codes = self._dense[raw]
        return codes

    def _encode_lookup(self, values: list) -> np.ndarray:
        if self._lookup is None:   # switch from dense to dict, keeping the ids given so far
            previous = np.concatenate(self._dense_raw).tolist() if self._dense_raw else []
            self._lookup = {v: i for i, v in enumerate(previous)}
            self._dense, self._dense_raw = None, []
        lookup = self._lookup
        # setdefault's default is evaluated before insertion: a new value gets the next id.
        return np.fromiter((lookup.setdefault(v, len(lookup)) for v in values), dtype=np.int32, count=len(values))


# --------------------------------------------------------------------------------------
# Columns

class Columns:
    """Growing columns of the interactions table.

    Each column is one numpy array sized by `capacity` (an upper bound on the rows, such
    as the file's line count: pages never written are never resident), grown in place
    when exceeded and trimmed at the end (``ndarray.resize`` reallocates; large blocks
    are remapped, not copied). The peak is thus about the final size, not chunks plus
    their concatenation."""

    GROWTH = 1.25
    DEFAULT_CAPACITY = 1 << 22

    def __init__(self, capacity: int | None = None) -> None:
        capacity = max(1, capacity or self.DEFAULT_CAPACITY)
        self._arrays = {name: np.empty(capacity, dtype) for name, dtype in COLUMNS.items()}
        self.rows = 0

    def append(self, user: np.ndarray, item: np.ndarray, rating: np.ndarray, timestamp: np.ndarray) -> None:
        n = len(user)
        end = self.rows + n
        for name, values in (("user", user), ("item", item), ("rating", rating), ("timestamp", timestamp)):
            if len(values) != n:
                raise ValueError(f"column {name} has {len(values)} values, expected {n}")
            array = self._arrays[name]
            if end > len(array):
                array.resize(max(int(len(array) * self.GROWTH), end), refcheck=False)
            array[self.rows:end] = values
        self.rows = end

    def table(self) -> pd.DataFrame:
        """The columns trimmed to their length, as a DataFrame that shares their memory."""
        for array in self._arrays.values():
            array.resize(self.rows, refcheck=False)
        table = pd.DataFrame(self._arrays, copy=False)
        self._arrays = {name: np.empty(0, dtype) for name, dtype in COLUMNS.items()}
        self.rows = 0
        return table


class RowBuffer:
    """Rows parsed one by one in Python, handed to the columns in chunks (ids are
    encoded a chunk at a time)."""

    def __init__(self, columns: Columns, users: IdIndex, items: IdIndex, chunk_rows: int = 200_000):
        self.columns, self.users, self.items, self.chunk_rows = columns, users, items, chunk_rows
        self.rows: list[tuple[Any, Any, float, int]] = []

    def add(self, user: Any, item: Any, rating: float, timestamp: int) -> None:
        self.rows.append((user, item, rating, timestamp))
        if len(self.rows) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            user, item, rating, timestamp = (list(column) for column in zip(*self.rows))
            self.columns.append(self.users.encode(user), self.items.encode(item),
                                np.asarray(rating, np.float32), np.asarray(timestamp, np.int64))
            self.rows.clear()


# --------------------------------------------------------------------------------------
# What a reader saw

@dataclass
class ReadStats:
    """Counts a reader reports beside the table (``reader.json``): lines read, header
    lines, quirks met, and every skipped line counted by reason."""

    files: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)            # reason -> lines
    skipped_per_file: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    vocabularies: dict[str, list[str]] = field(default_factory=dict)   # e.g. category id -> name

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + int(n)

    def skip(self, path: Path | str, line: int, reason: str, text: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.skipped_per_file[str(path)] = self.skipped_per_file.get(str(path), 0) + 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{path}:{line}: {reason}: {text[:120]!r}")

    def check_skips(self, path: Path | str, kept: int, max_fraction: float) -> None:
        """A known-dirty format may lose a few lines, never a large share: past
        `max_fraction` of `path`'s lines the file is probably not in the format we think."""
        skipped = self.skipped_per_file.get(str(path), 0)
        if skipped and skipped > max_fraction * (kept + skipped):
            raise FormatError(f"{path}: skipped {skipped:,} malformed lines of {kept + skipped:,} "
                              f"(more than {max_fraction:.1%}): {self.skipped}; first: {self.examples}")

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "counts": self.counts, "skipped": self.skipped,
                "skipped_per_file": self.skipped_per_file, "skipped_examples": self.examples,
                "vocabularies": self.vocabularies}


@dataclass
class ReadResult:
    data: Interactions
    stats: ReadStats


def category_side(stats: ReadStats, coded: tuple[np.ndarray, list[str]], origin: str) -> dict[str, Any]:
    """``build`` arguments for item categories (codes, vocabulary) read from `origin`;
    the vocabulary (category id -> name) goes to reader.json."""
    categories, vocabulary = coded
    stats.vocabularies["item_categories"] = vocabulary
    return {"item_categories": categories, "side_info": {"item_categories": origin}}


def build(columns: Columns, users: IdIndex, items: IdIndex, source: str, **side: Any) -> Interactions:
    data = Interactions(table=columns.table(), n_users=len(users), n_items=len(items), source=source,
                        user_ids=users.raw_ids(), item_ids=items.raw_ids(), **side)
    data.validate(source)
    return data


# --------------------------------------------------------------------------------------
# Text and errors

def decode_line(raw: bytes | bytearray, encoding: str, path: Path | str, number: int) -> str:
    """One line's text; bytes that are not `encoding` are an error naming the file and line."""
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise FormatError(f"{path}:{number}: not {encoding} text ({err.reason} at byte {err.start}): "
                          f"{bytes(raw[:200])!r}") from None


def numbered_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line break) of a plain or gzip file whose
    lines end at \\n only (a stray \\r inside a line does not split it)."""
    with open_binary(path) as fh:
        for number, raw in enumerate(fh, start=1):
            yield number, decode_line(raw, encoding, path, number).rstrip("\r\n")


def first_bad_line(lines: Iterable[tuple[int, str]], check: Callable[[str], str | None],
                   path: Path) -> FormatError | None:
    """The first of the numbered `lines` that `check` rejects, as an error naming the
    file, the line and what was expected."""
    for number, line in lines:
        problem = check(line)
        if problem:
            return FormatError(f"{path}:{number}: {problem}: {line[:200]!r}")
    return None


def expect_header(path: Path, expected: str, encoding: str = "utf-8") -> None:
    first = next(numbered_lines(path, encoding), (1, ""))[1].lstrip("\ufeff")
    if first != expected:
        raise FormatError(f"{path}:1: expected the header {expected!r}, got {first[:200]!r}")


def open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def text_blocks(path: Path, skip_lines: int = 0, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, bytearray]]:
    """(number of the block's first line, bytes) of whole lines, about `block_bytes`
    at a time, after `skip_lines` header lines. Each block ends with a line break."""
    with open_binary(path) as fh:
        for _ in range(skip_lines):
            fh.readline()
        line_number = skip_lines + 1
        while block := bytearray(fh.read(block_bytes)):
            block += fh.readline()          # complete the last line in place
            if not block.endswith(b"\n"):
                block += b"\n"
            yield line_number, block
            line_number += block.count(b"\n")


def count_lines(path: Path) -> int:
    """Lines of a plain file (a last line without a break counts): sizes the columns."""
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK_BYTES):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def block_lines(block: bytes | bytearray, first_line: int, encoding: str, path: Path | str
                ) -> Iterator[tuple[int, str]]:
    """(line number, text) of the block's lines; a line that is not `encoding` text is an
    error naming `path` and the line."""
    for number, raw in enumerate(block.split(b"\n")[:-1], start=first_line):
        yield number, decode_line(raw, encoding, path, number).rstrip("\r")


def csv_batches(path: Path, names: list[str], types: dict[str, pa.DataType], check: Callable[[str], str | None],
                skip_lines: int = 0, delimiter: str = ",", encoding: str = "utf-8", quoted: bool = True
                ) -> Iterator[tuple[pa.Table, tuple[int, bytearray]]]:
    """A well-formed delimited file, parsed by pyarrow one ~16 MB block at a time (so
    memory stays bounded). A parse or conversion failure becomes a FormatError naming
    the first bad line (found by re-reading that block with `check`).

    A delimiter of several characters (MovieLens-1M's ``::``) is turned into a tab
    before parsing, since pyarrow splits on one character; a tab already in such a file
    then fails the parse and is reported by `check`. `quoted`: whether ``"`` quotes
    fields (RecBole's atomic files have no quoting)."""
    multi = len(delimiter) > 1
    read = pacsv.ReadOptions(column_names=names, encoding=encoding, use_threads=False)
    parse = pacsv.ParseOptions(delimiter="\t" if multi else delimiter, quote_char='"' if quoted else False,
                               ignore_empty_lines=False, newlines_in_values=False)
    convert = pacsv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False,
                                   quoted_strings_can_be_null=False)
    for first_line, block in text_blocks(path, skip_lines):
        text = block.replace(delimiter.encode(encoding), b"\t") if multi else block
        try:
            table = pacsv.read_csv(pa.py_buffer(text), read_options=read, parse_options=parse,
                                   convert_options=convert)
        except pa.ArrowInvalid as err:
            raise (first_bad_line(block_lines(block, first_line, encoding, path), check, path)
                   or FormatError(f"{path}: lines from {first_line}: {err}")) from None
        yield table, (first_line, block)


def ensure_valid(ok: bool, where: tuple[int, bytearray], path: Path, check: Callable[[str], str | None],
                 encoding: str = "utf-8") -> None:
    """Raise the block's first bad line when a vectorised check of its values failed."""
    if not ok:
        first_line, block = where
        raise (first_bad_line(block_lines(block, first_line, encoding, path), check, path)
               or FormatError(f"{path}: lines {first_line}..: values out of range (no single bad line found)"))


def is_digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes '²' (which ``int`` refuses) and '٣'
    (which ``int`` reads as 3)."""
    return text.isascii() and text.isdigit()


def is_number(text: str, integer: bool = False) -> bool:
    """Whether `text` is a number as pyarrow reads one: an integer when `integer` (ASCII
    digits, no '+' nor '_', which ``int`` accepts), else a finite float."""
    if integer:
        return _INTEGER.fullmatch(text) is not None
    if not text.isascii() or "_" in text:
        return False
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def categories_from_names(names: list[str | None]) -> tuple[np.ndarray, list[str]]:
    """Per-item category names -> (int32 codes numbered by sorted name, -1 unknown; names)."""
    vocabulary = sorted({n for n in names if n})
    code = {n: i for i, n in enumerate(vocabulary)}
    return np.asarray([code.get(n, -1) if n else -1 for n in names], dtype=np.int32), vocabulary


def feature_matrix(n_rows: int, numeric: Mapping[str, Any], tokens: Mapping[str, list[str | None]],
                   top_values: int | None = None) -> tuple[np.ndarray, list[str]]:
    """User features [n_users, d] from per-user columns, and the name of each feature.

    A numeric column is taken as given, a missing value (NaN) as 0 with a
    ``<name>_missing`` flag column when any is missing. A token column is one-hot over
    its values in sorted order (over the `top_values` most frequent, the rest sharing
    ``<name>=(other)``, when set); a missing token (None) sets none of them."""
    blocks, names = [np.zeros((n_rows, 0))], []
    for name, values in numeric.items():
        values = np.asarray(values, dtype=np.float64)
        missing = np.isnan(values)
        blocks.append(np.where(missing, 0.0, values)[:, None])
        names.append(name)
        if missing.any():
            blocks.append(missing[:, None].astype(np.float64))
            names.append(f"{name}_missing")
    for name, values in tokens.items():
        frequency = Counter(v for v in values if v is not None)
        ranked = sorted(frequency, key=lambda v: (-frequency[v], v))
        kept = sorted(ranked[:top_values])
        column = {value: j for j, value in enumerate(kept)}
        other = len(kept) if len(kept) < len(frequency) else None
        one_hot = np.zeros((len(values), len(kept) + (other is not None)))
        for row, value in enumerate(values):
            if value is not None:
                one_hot[row, column.get(value, other)] = 1.0
        blocks.append(one_hot)
        names += [f"{name}={value}" for value in kept] + ([f"{name}=(other)"] if other is not None else [])
    return np.concatenate(blocks, axis=1).astype(np.float32), names


def resolve_options(options: Mapping[str, Any] | None, defaults: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A reader's options: its defaults overridden by the dataset's ``params`` (whose
    source keys, see ``imrl.data.sources.SOURCE_KEYS``, belong to the downloader)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(SOURCE_KEYS) - set(defaults))
    if unknown:
        raise KeyError(f"{where}: unknown params {unknown}; valid: {', '.join([*SOURCE_KEYS, *defaults])}")
    return {**defaults, **{key: value for key, value in options.items() if key in defaults}}
