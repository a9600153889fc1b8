"""Each reader on generated files of its format: the counts equal what the generator
wrote, every quirk is handled, and a malformed line is an error naming the file and
line (or, where the format is known to be dirty, a counted skip)."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from imrl.data.interactions import NO_TIMESTAMP, FormatError
from imrl.data.readers import amazon, bookcrossing, goodreads, librarything, movielens, netflix
from imrl.data.readers.base import Columns, IdIndex
from tests import raw_fixtures as rf


def write(directory: Path, files: dict[str, bytes]) -> dict[str, Path]:
    paths = {}
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths[name] = path
    return paths


def check_counts(result, fixture: rf.RawFixture) -> None:
    data, stats = result.data, result.stats
    assert (data.n_users, data.n_items, len(data.table)) == (fixture.users, fixture.items, fixture.interactions)
    for key, value in fixture.counts.items():
        assert stats.counts.get(key, 0) == value, key
    assert sum(stats.skipped.values()) == fixture.skipped
    data.validate("test")


def test_movielens(tmp_path):
    fixture = rf.movielens()
    p = write(tmp_path, fixture.inner["ml-20m.zip"])
    result = movielens.convert({"ratings": [p["ml-20m/ratings.csv"]], "movies": [p["ml-20m/movies.csv"]]})
    check_counts(result, fixture)
    table = result.data.table
    assert set(np.unique(table["rating"])) <= {0.5, 1.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0}
    # the fourth movie has "(no genres listed)"; the others a genre
    vocabulary = result.stats.vocabularies["item_categories"]
    assert set(vocabulary) <= {"Action", "Comedy", "Drama", "IMAX"}
    assert (result.data.item_categories == -1).sum() == 1


def test_movielens_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,three,1112484676\n")
    with pytest.raises(FormatError, match=r"ratings.csv:3: expected a numeric rating"):
        movielens.convert({"ratings": [path]})
    path.write_text("user,movie,rating,timestamp\n1,2,3.5,1112486027\n")
    with pytest.raises(FormatError, match=r"ratings.csv:1: expected the header"):
        movielens.convert({"ratings": [path]})


def test_netflix_training_set_and_combined_layouts_agree(tmp_path):
    fixture = rf.netflix()
    p = write(tmp_path, fixture.inner["nf_prize_dataset.tar.gz"])
    per_movie = netflix.convert({"training_set": [p["download/training_set.tar"]],
                                 "titles": [p["download/movie_titles.txt"]]})
    check_counts(per_movie, fixture)
    # Header lines are movies, not ratings; the titles are latin-1 with commas and a NULL year.
    assert per_movie.stats.counts["rating_lines"] + per_movie.stats.counts["movie_header_lines"] == \
        fixture.interactions + fixture.items
    assert "1997" in per_movie.stats.vocabularies["item_categories"]
    assert (per_movie.data.item_categories == -1).sum() == 1
    assert (per_movie.data.table["timestamp"] % 86400 == 0).all()

    combined_fixture = rf.netflix_combined()
    c = write(tmp_path / "kaggle", combined_fixture.files)
    combined = netflix.convert({"combined_data": [c[f"combined_data_{i}.txt"] for i in range(1, 5)],
                                "titles": [c["movie_titles.csv"]]})
    check_counts(combined, combined_fixture)
    # Same ratings, keyed by raw ids (the two layouts order the rows differently).
    def keyed(result):
        t = result.data.table
        return sorted(zip(result.data.user_ids[t["user"]], result.data.item_ids[t["item"]], t["rating"],
                          t["timestamp"]))
    assert keyed(per_movie) == keyed(combined)


def test_netflix_malformed_lines(tmp_path):
    path = tmp_path / "combined_data_1.txt"
    path.write_text("1:\n10,3,2005-09-06\n11,6,2004-01-01\n")
    with pytest.raises(FormatError, match=r"combined_data_1.txt:3: expected a Rating from 1 to 5"):
        netflix.convert({"combined_data": [path]})
    path.write_text("10,3,2005-09-06\n1:\n")
    with pytest.raises(FormatError, match=r"combined_data_1.txt:1: rating line before any 'MovieID:' header"):
        netflix.convert({"combined_data": [path]})
    path.write_text("1:\n10,3,2005-09-06\n2x:\n")
    with pytest.raises(FormatError, match=r"combined_data_1.txt:3: expected a 'MovieID:' header"):
        netflix.convert({"combined_data": [path]})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        body = b"5:\n10,3,2005-09-31\n"
        info = tarfile.TarInfo("training_set/mv_0000005.txt")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    (tmp_path / "training_set.tar").write_bytes(buffer.getvalue())
    with pytest.raises(FormatError, match=r"mv_0000005.txt:2: expected a YYYY-MM-DD date"):
        netflix.convert({"training_set": [tmp_path / "training_set.tar"]})


def test_amazon_five_core_with_categories(tmp_path):
    fixture = rf.amazon()
    p = write(tmp_path, fixture.files)
    result = amazon.convert({"reviews": [p["reviews_CDs_and_Vinyl_5.json.gz"]],
                             "metadata": [p["meta_CDs_and_Vinyl.json.gz"]]})
    check_counts(result, fixture)
    assert result.stats.vocabularies["item_categories"] == ["Jazz", "Pop", "Rock"]
    assert "not a dict literal" in result.stats.skipped


def test_amazon_ratings_csv_and_malformed_lines(tmp_path):
    fixture = rf.amazon_ratings()
    p = write(tmp_path, fixture.files)
    check_counts(amazon.convert({"ratings": [p["ratings_CDs_and_Vinyl.csv"]]}), fixture)
    bad = tmp_path / "ratings_bad.csv"
    bad.write_text("A1,B1,5.0,1400000000\nA2,B2,1400000000\n")
    with pytest.raises(FormatError, match=r"ratings_bad.csv:2: expected 4 fields"):
        amazon.convert({"ratings": [bad]})
    reviews = tmp_path / "reviews.json.gz"
    reviews.write_bytes(gzip.compress(b'{"reviewerID": "A", "asin": "B", "overall": 5.0, "unixReviewTime": 1}\n'
                                      b'{"reviewerID": "A", "asin": "C", "overall": 5.0}\n'))
    with pytest.raises(FormatError, match=r"reviews.json.gz:2: expected a JSON object with"):
        amazon.convert({"reviews": [reviews]})


@pytest.mark.parametrize("layout", ["txt", "json"])
def test_librarything_layouts_missing_fields_and_counted_skips(tmp_path, layout):
    fixture = rf.librarything(layout=layout)
    member = f"lthing_data/reviews.{layout}"
    p = write(tmp_path, {member: fixture.inner["lthing_data.tar.gz"][member]})
    result = librarything.convert({"reviews": [p[member]]})
    check_counts(result, fixture)
    table = result.data.table
    assert (table["rating"] == 0.0).sum() == fixture.counts["missing_stars"]
    assert (table["timestamp"] == NO_TIMESTAMP).sum() == fixture.counts["missing_unixtime"]
    assert result.stats.examples and f"reviews.{layout}:" in result.stats.examples[0]


def test_librarything_too_many_bad_lines_fail(tmp_path):
    path = tmp_path / "reviews.json"
    path.write_text("{'user': 'a', 'work': '1', 'stars': 4.0}\n{'user': 'b', 'work'\n")
    with pytest.raises(FormatError, match=r"reviews.json: skipped 1 malformed lines of 2"):
        librarything.convert({"reviews": [path]})


def test_book_crossing_ratings_and_demographics(tmp_path):
    fixture = rf.book_crossing()
    p = write(tmp_path, fixture.files)
    result = bookcrossing.convert({"ratings": [p["BX-Book-Ratings.csv"]], "users": [p["BX-Users.csv"]],
                                   "books": [p["BX-Books.csv"]]})
    check_counts(result, fixture)
    data = result.data
    assert '0"123456' in set(data.item_ids) and "84-226é" in set(data.item_ids)
    assert (data.table["rating"] == 0).sum() == fixture.counts["implicit_ratings"]
    assert (data.table["timestamp"] == NO_TIMESTAMP).all()
    names = result.stats.vocabularies["user_features"]
    assert data.user_features.shape == (fixture.users, len(names))
    assert {"country_usa", "country_germany", "country_unknown"} <= set(names)
    # Every user has exactly one country column set; ages are scaled or flagged missing.
    country = data.user_features[:, 2:]
    assert np.all(country.sum(axis=1) == 1)
    age, missing = data.user_features[:, 0], data.user_features[:, 1]
    assert np.all((missing == 1) == (age == 0)) and np.all(age <= 1)


def test_book_crossing_too_many_bad_lines_fail(tmp_path):
    path = tmp_path / "BX-Book-Ratings.csv"
    path.write_text('"User-ID";"ISBN";"Book-Rating"\n"1";"X";"5"\n"2";"Y"\n', encoding="latin-1")
    with pytest.raises(FormatError, match=r"BX-Book-Ratings.csv: skipped 1 malformed lines of 2"):
        bookcrossing.convert({"ratings": [path]})
    path.write_text('"User";"ISBN";"Book-Rating"\n', encoding="latin-1")
    with pytest.raises(FormatError, match=r"BX-Book-Ratings.csv:1: expected the header"):
        bookcrossing.convert({"ratings": [path]})


def test_goodreads_csv_with_id_maps_and_genres(tmp_path):
    fixture = rf.goodreads()
    p = write(tmp_path, fixture.files)
    result = goodreads.convert({"interactions": [p["goodreads_interactions.csv"]], "user_map": [p["user_id_map.csv"]],
                                "book_map": [p["book_id_map.csv"]],
                                "genres": [p["goodreads_book_genres_initial.json.gz"]]})
    check_counts(result, fixture)
    assert all(len(u) == 32 for u in result.data.user_ids)        # original hex ids from the map
    assert (result.data.table["timestamp"] == NO_TIMESTAMP).all()
    assert result.stats.vocabularies["item_categories"] == ["fiction", "history, historical fiction, biography"]


def test_goodreads_dedup_dates(tmp_path):
    fixture = rf.goodreads_dedup()
    p = write(tmp_path, fixture.files)
    result = goodreads.convert({"interactions": [p["goodreads_interactions_dedup.json.gz"]]})
    check_counts(result, fixture)
    stamps = result.data.table["timestamp"].to_numpy()
    assert (stamps == NO_TIMESTAMP).sum() == 1 and stamps.max() < 1_600_000_000 and stamps[stamps > 0].min() > 1e9


def test_goodreads_malformed_lines(tmp_path):
    path = tmp_path / "goodreads_interactions.csv"
    path.write_text("user_id,book_id,is_read,rating,is_reviewed\n0,1,1,5,0\n0,2,1,7,0\n")
    maps = {"user_map": [tmp_path / "u.csv"], "book_map": [tmp_path / "b.csv"]}
    (tmp_path / "u.csv").write_text("user_id_csv,user_id\n0,abc\n")
    (tmp_path / "b.csv").write_text("book_id_csv,book_id\n1,11\n2,22\n")
    with pytest.raises(FormatError, match=r"goodreads_interactions.csv:3: expected a rating from 0"):
        goodreads.convert({"interactions": [path], **maps})
    path.write_text("user_id,book_id,is_read,rating,is_reviewed\n0,1,1,5,0\n0,3,1,4,0\n")
    with pytest.raises(FormatError, match=r"b.csv: no entry for book_id_csv \[3\]"):
        goodreads.convert({"interactions": [path], **maps})
    dedup = tmp_path / "goodreads_interactions_dedup.json.gz"
    dedup.write_bytes(gzip.compress(b'{"user_id": "u", "book_id": "1", "rating": 5, "is_read": true, '
                                    b'"date_added": "Mon Aug 01 13:41:57 -0700 2016"}\n{"user_id": "u", "book_id"\n'))
    with pytest.raises(FormatError, match=r"dedup.json.gz:2: not JSON"):
        goodreads.convert({"interactions": [dedup]})


def test_id_index_numbers_by_first_appearance_across_kinds():
    index = IdIndex()
    assert index.encode_ints(np.array([7, 3, 7, 9])).tolist() == [0, 1, 0, 2]
    assert index.encode_ints(np.array([3, 1 << 40])).tolist() == [1, 3]     # falls back to a dict
    assert index.raw_ids().tolist() == ["7", "3", "9", str(1 << 40)]
    strings = IdIndex()
    assert strings.encode_strings(["b", "a", "b"]).tolist() == [0, 1, 0]
    assert strings.encode_strings(["c", "a"]).tolist() == [2, 1]


def test_columns_grow_past_their_capacity():
    columns = Columns(capacity=3)
    for start in range(0, 10, 4):
        n = min(4, 10 - start)
        columns.append(np.arange(n), np.arange(n), np.ones(n), np.full(n, start))
    table = columns.table()
    assert len(table) == 10 and table["timestamp"].tolist() == [0] * 4 + [4] * 4 + [8] * 2
