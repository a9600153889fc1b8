"""The RecBole atomic-file reader on generated .inter/.item/.user files (never real data)
with every header type: counts, options, side information, and a clear error naming
the file, the line and what was expected for each kind of malformed header or line."""

from __future__ import annotations

import numpy as np
import pytest

from imrl.data.interactions import NO_TIMESTAMP, FormatError
from imrl.data.readers import recbole_atomic

INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\ttags:token_seq\tscores:float_seq\n"
         "u1\ti1\t4\t1000\tfunny old\t0.5 1\n"
         'u"2\ti2\t3.5\t1001.6\t\t\n'            # quotes are plain characters; empty sequences are missing values
         "u1\ti3\t5\t999\tnew\t2\n"
         "u3\ti1\t1\t1002\t\t3e2\n"
         "u1\ti1\t2\t1003\t\t\n")
ITEM = ("item_id:token\ttitle:token_seq\tclass:token_seq\tprice:float\n"
        "i1\tThe Film\tDrama Comedy\t9.5\n"
        "i2\tOther\t\t\n"                         # no class: no category
        "i1\tRepeated\tWar\t1\n"                  # a repeated id keeps its first row
        "i9\tNever rated\tHorror\t2\n")           # i3 has no row
USER = ("user_id:token\tage:float\tgender:token\tcity:token\thistory:token_seq\n"
        "u1\t31\tF\tParis\ta b\n"
        'u"2\t\tM\tLyon\t\n'                      # age missing
        "u3\t45\tF\tNice\tc\n"
        "u4\t20\tM\tParis\t\n")                   # a user without interactions: not counted


def files(tmp_path, inter=INTER, item=ITEM, user=USER):
    paths = {}
    for role, suffix, text in (("inter", "inter", inter), ("item", "item", item), ("user", "user", user)):
        if text is not None:
            path = tmp_path / f"toy.{suffix}"
            path.write_text(text, encoding="utf-8")
            paths[role] = [path]
    return paths


def test_counts_values_and_side_information(tmp_path):
    result = recbole_atomic.convert(files(tmp_path), {"top_values": 2})
    data, stats = result.data, result.stats
    assert (data.n_users, data.n_items, len(data.table)) == (3, 3, 5)
    assert list(data.user_ids) == ["u1", 'u"2', "u3"] and list(data.item_ids) == ["i1", "i2", "i3"]
    assert data.table["rating"].tolist() == [4, 3.5, 5, 1, 2]
    assert data.table["timestamp"].tolist() == [1000, 1002, 999, 1002, 1003]     # rounded to seconds
    assert stats.counts == {"inter_lines": 5, "header_lines": 1, "item_lines": 4, "item_lines_repeating_an_id": 1,
                            "items_without_row": 1, "user_lines": 4, "users_without_row": 0}
    # Category: the first token of `class`; none for an empty class or a missing row.
    assert stats.vocabularies["item_categories"] == ["Drama"]
    assert data.item_categories.tolist() == [0, -1, -1]
    # Features of the rating users: age as given (missing flagged), gender one-hot, city
    # one-hot over its 2 most frequent values among them (ties by name), the others together.
    names = stats.vocabularies["user_features"]
    assert names == ["age", "age_missing", "gender=F", "gender=M", "city=Lyon", "city=Nice", "city=(other)"]
    assert data.user_features.tolist() == [[31, 0, 1, 0, 0, 0, 1], [0, 1, 0, 1, 1, 0, 0], [45, 0, 1, 0, 0, 1, 0]]


def test_interactions_alone_and_fields_named_by_options(tmp_path):
    inter = "uid:token\tiid:token\tlabel:float\n7\t8\t1\n7\t9\t0\n"
    result = recbole_atomic.convert(files(tmp_path, inter, None, None),
                                    {"user_field": "uid", "item_field": "iid", "rating_field": "label",
                                     "time_field": None})
    assert result.data.table["rating"].tolist() == [1, 0]
    assert (result.data.table["timestamp"] == NO_TIMESTAMP).all()
    assert result.data.item_categories is None and result.data.user_features is None
    implicit = recbole_atomic.convert(files(tmp_path, inter, None, None),
                                      {"user_field": "uid", "item_field": "iid", "rating_field": None,
                                       "time_field": None})
    assert implicit.data.table["rating"].tolist() == [1, 1]


@pytest.mark.parametrize("inter, message", [
    ("user_id:token\titem_id:token\trating:double\ttimestamp:float\n",
     r"toy.inter:1: header field 3 is 'rating:double', expected name:type with type one of token, float"),
    ("user_id\titem_id:token\trating:float\ttimestamp:float\n", r"toy.inter:1: header field 1 is 'user_id'"),
    ("user_id:token\titem_id:token\trating:float\trating:float\ttimestamp:float\n",
     r"toy.inter:1: field 'rating' appears twice"),
    ("user_id:token\trating:float\ttimestamp:float\n",
     r"toy.inter:1: no field 'item_id' \(item_field\); the header has user_id, rating, timestamp"),
    ("user_id:float\titem_id:token\trating:float\ttimestamp:float\n",
     r"toy.inter:1: field 'user_id' has type 'float', expected token"),
    ("", r"toy.inter:1: empty file"),
])
def test_header_errors(tmp_path, inter, message):
    with pytest.raises(FormatError, match=message):
        recbole_atomic.convert(files(tmp_path, inter, None, None))


HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


@pytest.mark.parametrize("lines, message", [
    ("1\t2\t3\t100\n1\t3\t4\n", r"toy.inter:3: expected 4 tab-separated fields \(user_id:token item_id:token rating:float timestamp:float\)"),
    ("1\t2\tgood\t100\n", r"toy.inter:2: expected a number in rating:float, got 'good'"),
    ("1\t2\t3\t100\n\t3\t4\t100\n", r"toy.inter:3: expected a value in user_id:token \(user_field\)"),
    ("1\t2\t3\t100\n1\t3\t\t100\n", r"toy.inter:3: expected a value in rating:float \(rating_field\)"),
    ("1\t2\tnan\t100\n", r"toy.inter:2: expected a number in rating:float, got 'nan'"),
    ("1\t2\t3\t100\n\n", r"toy.inter:3: expected 4 tab-separated fields"),
])
def test_inter_line_errors(tmp_path, lines, message):
    with pytest.raises(FormatError, match=message):
        recbole_atomic.convert(files(tmp_path, HEADER + lines, None, None))


@pytest.mark.parametrize("item, user, message", [
    ("item_id:token\tclass:token_seq\tprice:float\ni1\tDrama\tcheap\n", None,
     r"toy.item:2: expected a number in price:float, got 'cheap'"),
    ("item_id:token\tclass:token_seq\tsizes:float_seq\ni1\tDrama\t1 x\n", None,
     r"toy.item:2: expected space-separated numbers in sizes:float_seq, got '1 x'"),
    ("item_id:token\tclass:token_seq\ni1\tDrama\textra\n", None, r"toy.item:2: expected 2 tab-separated fields"),
    ("item_id:token\tgenre:token_seq\ni1\tDrama\n", None,
     r"toy.item:1: no field 'class' \(a field read\); the header has item_id, genre"),
    (None, "user_id:token\tage:float\n\t30\n", r"toy.user:2: expected a value in user_id:token \(user_id\)"),
])
def test_item_and_user_errors(tmp_path, item, user, message):
    with pytest.raises(FormatError, match=message):
        recbole_atomic.convert(files(tmp_path, INTER, item, user))


def test_unknown_option_is_named(tmp_path):
    with pytest.raises(KeyError, match=r"recbole-atomic: unknown params \['time'\]"):
        recbole_atomic.convert(files(tmp_path), {"time": "ts"})


def test_category_field_can_be_switched_off(tmp_path):
    item = "item_id:token\tgenre:token\ni1\tDrama\n"
    assert recbole_atomic.convert(files(tmp_path, INTER, item, None), {"category_field": None}).data.item_categories \
        is None
    named = recbole_atomic.convert(files(tmp_path, INTER, item, None), {"category_field": "genre"})
    assert np.array_equal(named.data.item_categories, [0, -1, -1])
