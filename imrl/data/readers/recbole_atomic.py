"""RecBole atomic files: ``.inter`` (+ optional ``.item`` genres, ``.user`` features).

Every atomic file is UTF-8, tab-separated, without quoting, and starts with a typed
header ``name:type`` per field, the type one of ``token`` (a string), ``float``,
``token_seq`` (space-separated strings) or ``float_seq`` (space-separated numbers);
a field may be empty (a missing value). For example::

    user_id:token   item_id:token   rating:float    timestamp:float

The fields read are named by options, with RecBole's defaults: ``user_field``
(``user_id``) and ``item_field`` (``item_id``), tokens; ``rating_field`` (``rating``)
and ``time_field`` (``timestamp``), floats, or null for a dataset without them
(every rating 1.0; no timestamps, so file order). Timestamps are rounded to whole
seconds and must not be negative (-1 is the suite's "no timestamp"). The item category
is the first token of ``category_field`` (``class``) in the ``.item`` file; the user
features are the ``.user`` file's float fields as given and its token fields one-hot over
their ``top_values`` most frequent values (``imrl.data.readers.base.feature_matrix``);
sequence fields are not used.

A header that is not ``name:type`` with a known type, a missing field or a field of
the wrong type, and a line with the wrong number of fields or a value that is not of
its field's type are errors naming the file, the line and what was expected. In the
``.inter`` file (often large, parsed by pyarrow) the values checked are those of the
fields read; in ``.item`` and ``.user`` every value is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imrl.data.interactions import NO_TIMESTAMP, FormatError
from imrl.data.readers.base import (Columns, IdIndex, ReadResult, ReadStats, build, categories_from_names,
                                    category_side, count_lines, csv_batches, ensure_valid, feature_matrix, is_number,
                                    numbered_lines, resolve_options)

TYPES = ("token", "float", "token_seq", "float_seq")
DEFAULTS = {"user_field": "user_id", "item_field": "item_id", "rating_field": "rating", "time_field": "timestamp",
            "category_field": "class", "top_values": 20, "encoding": "utf-8"}


@dataclass(frozen=True)
class Header:
    """The typed header of one atomic file."""

    path: Path
    fields: tuple[tuple[str, str], ...]   # (name, type) in file order

    @property
    def text(self) -> str:
        return " ".join(f"{name}:{kind}" for name, kind in self.fields)

    def index(self, name: str, kinds: tuple[str, ...], option: str) -> int:
        """Column of field `name`, which must have one of `kinds`; `option` is the
        reader option that names it (quoted in the error)."""
        for column, (field_name, kind) in enumerate(self.fields):
            if field_name == name:
                if kind not in kinds:
                    raise FormatError(f"{self.path}:1: field {name!r} has type {kind!r}, expected "
                                      f"{' or '.join(kinds)}")
                return column
        raise FormatError(f"{self.path}:1: no field {name!r} ({option}); the header has "
                          f"{', '.join(n for n, _ in self.fields)}")


def read_header(path: Path, encoding: str) -> Header:
    for _, line in numbered_lines(path, encoding):
        break
    else:
        raise FormatError(f"{path}:1: empty file, expected a header of name:type fields")
    fields = []
    for position, entry in enumerate(line.lstrip("\ufeff").split("\t"), start=1):
        name, _, kind = entry.rpartition(":")
        if not name or kind not in TYPES:
            raise FormatError(f"{path}:1: header field {position} is {entry!r}, expected name:type with type "
                              f"one of {', '.join(TYPES)}")
        if any(name == seen for seen, _ in fields):
            raise FormatError(f"{path}:1: field {name!r} appears twice in the header")
        fields.append((name, kind))
    return Header(path, tuple(fields))


def value_problem(name: str, kind: str, value: str) -> str | None:
    """Why `value` is not a valid value of field `name` of type `kind` (empty = missing is valid)."""
    if kind == "float" and value and not is_number(value):
        return f"expected a number in {name}:float, got {value!r}"
    if kind == "float_seq" and not all(is_number(v) for v in value.split()):
        return f"expected space-separated numbers in {name}:float_seq, got {value!r}"
    return None


def line_problem(header: Header, line: str, required: Mapping[int, str]) -> str | None:
    """What is wrong with one data line: its field count, a value not of its field's
    type, or an empty value in a `required` column (column -> option naming it)."""
    values = line.split("\t")
    if len(values) != len(header.fields):
        return f"expected {len(header.fields)} tab-separated fields ({header.text}), got {len(values)}"
    for column, ((name, kind), value) in enumerate(zip(header.fields, values)):
        if column in required and not value:
            return f"expected a value in {name}:{kind} ({required[column]})"
        problem = value_problem(name, kind, value)
        if problem:
            return problem
    return None


def _has_empty(values: pa.ChunkedArray) -> bool:
    return bool(pc.any(pc.equal(values, "")).as_py())


def read_inter(path: Path, columns: Columns, users: IdIndex, items: IdIndex, stats: ReadStats,
               opts: Mapping[str, Any]) -> None:
    header = read_header(path, opts["encoding"])
    user = header.index(opts["user_field"], ("token",), "user_field")
    item = header.index(opts["item_field"], ("token",), "item_field")
    numbers = {key: header.index(opts[key], ("float",), key) for key in ("rating_field", "time_field") if opts[key]}
    required = {user: "user_field", item: "item_field", **{column: key for key, column in numbers.items()}}
    names = [name for name, _ in header.fields]
    # Only the fields read are converted; the others stay text (their values are checked on error only).
    types = {name: pa.float64() if column in numbers.values() else pa.string() for column, name in enumerate(names)}

    def check(line: str) -> str | None:
        problem = line_problem(header, line, required)
        if problem is None and "time_field" in numbers and float(line.split("\t")[numbers["time_field"]]) < 0:
            return f"expected a non-negative {opts['time_field']}"
        return problem

    for batch, where in csv_batches(path, names, types, check, skip_lines=1, delimiter="\t",
                                    encoding=opts["encoding"], quoted=False):
        n = batch.num_rows
        user_ids, item_ids = batch.column(user), batch.column(item)
        rating = batch.column(numbers["rating_field"]).to_numpy() if "rating_field" in numbers else np.ones(n)
        time = batch.column(numbers["time_field"]).to_numpy() if "time_field" in numbers else None
        ok = not (_has_empty(user_ids) or _has_empty(item_ids)) and bool(np.isfinite(rating).all()) \
            and (time is None or bool((np.isfinite(time) & (time >= 0)).all()))
        ensure_valid(ok, where, path, check, opts["encoding"])
        timestamp = np.full(n, NO_TIMESTAMP, np.int64) if time is None else np.rint(time).astype(np.int64)
        columns.append(users.encode_strings(user_ids), items.encode_strings(item_ids), rating.astype(np.float32),
                       timestamp)
        stats.add("inter_lines", n)
    stats.add("header_lines", 1)


def read_rows(path: Path, key_field: str, fields: list[str], stats: ReadStats, encoding: str,
              check: Callable[[tuple[str, ...]], str | None] | None = None) -> dict[str, tuple[str, ...]]:
    """Rows of an ``.item`` or ``.user`` file: key -> the values of `fields` (the key
    field a token, every line checked against the header's types, and by `check` on the
    values of `fields`). A key seen twice keeps its first row (counted)."""
    header = read_header(path, encoding)
    key = header.index(key_field, ("token",), "the id field")
    wanted = [header.index(name, TYPES, "a field read") for name in fields]
    rows: dict[str, tuple[str, ...]] = {}
    kind = path.suffix.lstrip(".")
    for number, line in numbered_lines(path, encoding):
        if number == 1:
            continue
        problem = line_problem(header, line, {key: key_field})
        values = line.split("\t")
        chosen = tuple(values[column] for column in wanted) if problem is None else ()
        problem = problem or (check(chosen) if check else None)
        if problem:
            raise FormatError(f"{path}:{number}: {problem}: {line[:200]!r}")
        stats.add(f"{kind}_lines")
        if values[key] in rows:
            stats.add(f"{kind}_lines_repeating_an_id")
            continue
        rows[values[key]] = chosen
    return rows


def first_tokens(rows: Mapping[str, tuple[str, ...]], ids: IdIndex, stats: ReadStats, kind: str) -> list[str | None]:
    """The first token of each id's only requested field (None: no row, or empty)."""
    names: list[str | None] = []
    for raw in ids.raw_ids():
        row = rows.get(raw)
        if row is None:
            stats.add(f"{kind}_without_row")
        names.append(row[0].split()[0] if row and row[0].strip() else None)
    return names


def user_features(path: Path, users: IdIndex, stats: ReadStats,
                  opts: Mapping[str, Any]) -> tuple[np.ndarray, list[str]]:
    header = read_header(path, opts["encoding"])
    used = [(name, kind) for name, kind in header.fields if name != opts["user_field"] and kind in ("token", "float")]
    rows = read_rows(path, opts["user_field"], [name for name, _ in used], stats, opts["encoding"])
    ordered = [rows.get(raw) for raw in users.raw_ids()]
    stats.add("users_without_row", sum(row is None for row in ordered))
    numeric, tokens = {}, {}
    for j, (name, kind) in enumerate(used):
        values = [row[j] if row and row[j] else None for row in ordered]
        if kind == "float":
            numeric[name] = [np.nan if v is None else float(v) for v in values]
        else:
            tokens[name] = values
    return feature_matrix(len(ordered), numeric, tokens, top_values=int(opts["top_values"]))


def convert(paths: Mapping[str, list[Path]], options: Mapping[str, Any] | None = None) -> ReadResult:
    opts = resolve_options(options, DEFAULTS, "recbole-atomic")
    stats = ReadStats(files=[str(p) for ps in paths.values() for p in ps])
    columns = Columns(sum(count_lines(p) for p in paths["inter"]))
    users, items = IdIndex(), IdIndex()
    for path in paths["inter"]:
        read_inter(path, columns, users, items, stats, opts)
    side: dict[str, Any] = {}
    if "item" in paths and opts["category_field"]:
        path = paths["item"][0]
        rows = read_rows(path, opts["item_field"], [opts["category_field"]], stats, opts["encoding"])
        names = first_tokens(rows, items, stats, "items")
        side = category_side(stats, categories_from_names(names),
                             f"{path.name} {opts['category_field']} (first token of each item)")
    if "user" in paths:
        path = paths["user"][0]
        features, names = user_features(path, users, stats, opts)
        stats.vocabularies["user_features"] = names
        side["user_features"] = features
        side["side_info"] = {**side.get("side_info", {}), "user_features": f"{path.name} token and float fields"}
    return ReadResult(build(columns, users, items, f"RecBole atomic {paths['inter'][0].name}", **side), stats)
