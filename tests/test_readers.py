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
from imrl.data.readers import amazon, bookcrossing, goodreads, librarything, movielens, netflix, recbole_atomic
from imrl.data.readers.base import Columns, IdIndex, is_digits, is_number
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


# --------------------------------------------------------------------------------------
# Numeric fields: parsed with an error naming the file and line (a counted skip in the
# dirty formats), documented ranges enforced. '²' is the trap: str.isdigit() takes it,
# int() refuses it with a bare ValueError.

SUPERSCRIPT = "\u00b2"


def test_is_digits_and_is_number_take_only_what_pyarrow_reads():
    assert is_digits("2005") and not is_digits(SUPERSCRIPT) and not is_digits("\u0663") and not is_digits("-1")
    assert is_number("-3", integer=True) and is_number(" 7 ", integer=True)
    for text in (SUPERSCRIPT, "\u0663", "1_000", "+5", "", "4.5"):
        assert not is_number(text, integer=True), text
    assert is_number("0.5") and is_number("1e3")
    for text in ("nan", "inf", "1_0.5", "\u0663.5", "x"):
        assert not is_number(text), text


def test_book_crossing_superscript_digits_are_counted_skips(tmp_path):
    ratings, users = tmp_path / "BX-Book-Ratings.csv", tmp_path / "BX-Users.csv"
    good = [f'"{user}";"03{user}";"{user % 11}"' for user in range(1, 9)]
    ratings.write_text("\n".join(['"User-ID";"ISBN";"Book-Rating"', *good, f'"1";"X";"{SUPERSCRIPT}"',
                                  f'"{SUPERSCRIPT}";"X";"3"', '"2";"X";"11"']) + "\n", encoding="latin-1")
    users.write_text(f'"User-ID";"Location";"Age"\n"1";"a, b, usa";"{SUPERSCRIPT}5"\n"2";"c, d, usa";"30"\n',
                     encoding="latin-1")
    result = bookcrossing.convert({"ratings": [ratings], "users": [users]}, {"max_skipped_fraction": 0.5})
    assert len(result.data.table) == 8
    assert result.stats.skipped_per_file == {str(ratings): 3, str(users): 1}
    assert [example.split(": ")[0] for example in result.stats.examples] == [
        f"{ratings}:10", f"{ratings}:11", f"{ratings}:12", f"{users}:2"]
    with pytest.raises(FormatError, match=r"BX-Book-Ratings.csv: skipped 3 malformed lines of 11"):
        bookcrossing.convert({"ratings": [ratings]})


@pytest.mark.parametrize("row", [f"{SUPERSCRIPT},2003,Title", f"5,19{SUPERSCRIPT}9,Title", "5,1700,Title",
                                 "5,2006,Title", "0,2003,Title", "-5,2003,Title", "5,,Title"])
def test_netflix_titles_out_of_format_name_file_and_line(tmp_path, row):
    path = tmp_path / "movie_titles.txt"
    path.write_bytes(f"1,2003,Dinosaur Planet\n{row}\n".encode("latin-1"))
    ratings = tmp_path / "combined_data_1.txt"
    ratings.write_text("1:\n10,3,2005-09-06\n")
    with pytest.raises(FormatError, match=r"movie_titles.txt:2: expected MovieID,Year,Title \(a positive MovieID, "
                                          r"a Year from 1890 to 2005 or NULL\)"):
        netflix.convert({"combined_data": [ratings], "titles": [path]})


@pytest.mark.parametrize("text, message", [
    ("1:\n10,3,2005-09-06\n-7,4,2005-09-07\n", r"combined_data_1.txt:3: expected a positive integer CustomerID"),
    ("1:\n10,3,2005-09-06\n0,4,2005-09-07\n", r"combined_data_1.txt:3: expected a positive integer CustomerID"),
    (f"1:\n10,3,2005-09-06\n1{SUPERSCRIPT},4,2005-09-07\n", r"combined_data_1.txt:3: expected a positive integer"),
    ("1:\n10,3,20050906\n", r"combined_data_1.txt:2: expected a YYYY-MM-DD date"),
    ("0:\n10,3,2005-09-06\n", r"combined_data_1.txt:1: expected a positive MovieID"),
])
def test_netflix_ids_out_of_range_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "combined_data_1.txt"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(FormatError, match=message):
        netflix.convert({"combined_data": [path]})


@pytest.mark.parametrize("line, message", [
    ("1,29,99,1112484676", r"ratings.csv:3: expected a rating from 0.5 to 5.0 in half stars"),
    ("1,29,-3,1112484676", r"ratings.csv:3: expected a rating from 0.5 to 5.0 in half stars"),
    ("1,29,0,1112484676", r"ratings.csv:3: expected a rating from 0.5 to 5.0 in half stars"),
    ("1,29,3.3,1112484676", r"ratings.csv:3: expected a rating from 0.5 to 5.0 in half stars"),
    ("1,29,nan,1112484676", r"ratings.csv:3: expected a numeric rating"),
    ("1,29,4.5,-1", r"ratings.csv:3: expected a non-negative timestamp"),
    (f"1,2{SUPERSCRIPT},4.5,1112484676", r"ratings.csv:3: expected integer userId, movieId and timestamp"),
])
def test_movielens_ratings_outside_the_documented_range_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "ratings.csv"
    path.write_text(f"userId,movieId,rating,timestamp\n1,2,0.5,1112486027\n{line}\n1,3,5,1112486028\n")
    with pytest.raises(FormatError, match=message):
        movielens.convert({"ratings": [path]})


def test_movielens_movies_csv_names_file_and_line(tmp_path):
    ratings, movies = tmp_path / "ratings.csv", tmp_path / "movies.csv"
    ratings.write_text("userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n")
    movies.write_text(f'movieId,title,genres\n2,"Heat, The (1995)",Drama\n{SUPERSCRIPT},Plain (1999),Comedy\n')
    with pytest.raises(FormatError, match=r"movies.csv:3: expected movieId,title,genres \(an integer movieId"):
        movielens.convert({"ratings": [ratings], "movies": [movies]})


@pytest.mark.parametrize("text, message", [
    ("A1,B1,5.0,1400000000\nA2,B2,7.0,1400000000\n", r"ratings_bad.csv:2: expected a rating from 1.0 to 5.0"),
    ("A1,B1,5.0,1400000000\nA2,B2,0.0,1400000000\n", r"ratings_bad.csv:2: expected a rating from 1.0 to 5.0"),
    ("A1,B1,5.0,1400000000\nA2,B2,4.0,-1\n", r"ratings_bad.csv:2: expected a non-negative timestamp"),
])
def test_amazon_ratings_outside_the_documented_range_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "ratings_bad.csv"
    path.write_text(text)
    with pytest.raises(FormatError, match=message):
        amazon.convert({"ratings": [path]})


@pytest.mark.parametrize("record", [
    b'{"reviewerID": "A", "asin": "C", "overall": NaN, "unixReviewTime": 1}',
    b'{"reviewerID": "A", "asin": "C", "overall": 6.0, "unixReviewTime": 1}',
    b'{"reviewerID": "A", "asin": "C", "overall": true, "unixReviewTime": 1}',
    b'{"reviewerID": "A", "asin": "C", "overall": 4.0, "unixReviewTime": -1}',
])
def test_amazon_reviews_outside_the_documented_range_name_file_and_line(tmp_path, record):
    path = tmp_path / "reviews.json.gz"
    path.write_bytes(gzip.compress(b'{"reviewerID": "A", "asin": "B", "overall": 5.0, "unixReviewTime": 1}\n'
                                   + record + b"\n"))
    with pytest.raises(FormatError, match=r"reviews.json.gz:2: expected string reviewerID and asin, overall a "
                                          r"number from 1.0 to 5.0 and unixReviewTime a non-negative integer"):
        amazon.convert({"reviews": [path]})


def test_bytes_that_are_not_the_files_encoding_name_file_and_line(tmp_path):
    reviews = tmp_path / "reviews.json.gz"
    reviews.write_bytes(gzip.compress(b'{"reviewerID": "A", "asin": "B", "overall": 5.0, "unixReviewTime": 1}\n'
                                      b'{"reviewerID": "\xb2", "asin": "B", "overall": 5.0, "unixReviewTime": 1}\n'))
    with pytest.raises(FormatError, match=r"reviews.json.gz:2: not utf-8 text \(invalid start byte at byte 16\)"):
        amazon.convert({"reviews": [reviews]})
    ratings = tmp_path / "ratings.csv"     # the fast path: found by re-reading the block
    ratings.write_bytes(b"userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,3,3.5,1112486027\n\xb2,3,4,1\n")
    with pytest.raises(FormatError, match=r"ratings.csv:4: not utf-8 text"):
        movielens.convert({"ratings": [ratings]})


@pytest.mark.parametrize("interactions, user_map, message", [
    ("-1,1,1,5,0", "0,abc", r"goodreads_interactions.csv:3: expected non-negative user_id and book_id"),
    ("0,2,2,5,0", "0,abc", r"goodreads_interactions.csv:3: expected is_read and is_reviewed 0 or 1"),
    ("0,2,1,5,0", f"0,abc\n{SUPERSCRIPT},def", r"u.csv:3: expected a non-negative integer id, a comma"),
    ("0,2,1,5,0", "0,abc\n-1,def", r"u.csv:3: expected a non-negative integer id, a comma"),
    ("0,2,1,5,0", "0,abc\n0,def", r"u.csv:3: user_id_csv 0 appears a second time"),
])
def test_goodreads_ids_and_flags_name_file_and_line(tmp_path, interactions, user_map, message):
    path = tmp_path / "goodreads_interactions.csv"
    path.write_text(f"user_id,book_id,is_read,rating,is_reviewed\n0,1,1,5,0\n{interactions}\n")
    (tmp_path / "u.csv").write_text(f"user_id_csv,user_id\n{user_map}\n")
    (tmp_path / "b.csv").write_text("book_id_csv,book_id\n1,11\n2,22\n")
    with pytest.raises(FormatError, match=message):
        goodreads.convert({"interactions": [path], "user_map": [tmp_path / "u.csv"],
                           "book_map": [tmp_path / "b.csv"]})


def test_goodreads_genre_counts_must_be_counts(tmp_path):
    dedup = tmp_path / "goodreads_interactions_dedup.json.gz"
    dedup.write_bytes(gzip.compress(b'{"user_id": "u", "book_id": "1", "rating": 5, "is_read": true, '
                                    b'"date_added": "Mon Aug 01 13:41:57 -0700 2016"}\n'))
    genres = tmp_path / "goodreads_book_genres_initial.json.gz"
    genres.write_bytes(gzip.compress(b'{"book_id": "1", "genres": {"fiction": 3}}\n'
                                     b'{"book_id": "2", "genres": {"fiction": "many", "poetry": 2}}\n'))
    with pytest.raises(FormatError, match=r"genres_initial.json.gz:2: .*non-negative integer counts"):
        goodreads.convert({"interactions": [dedup], "genres": [genres]})


def test_librarything_negative_unixtime_is_a_counted_skip(tmp_path):
    path = tmp_path / "reviews.json"
    path.write_text("{'user': 'a', 'work': '1', 'stars': 4.0, 'unixtime': 1194393600}\n"
                    "{'user': 'b', 'work': '2', 'stars': 3.0, 'unixtime': -1}\n")
    result = librarything.convert({"reviews": [path]}, {"max_skipped_fraction": 0.5})
    assert len(result.data.table) == 1
    assert result.stats.skipped == {"unixtime not a non-negative integer": 1}
    assert result.stats.examples[0].startswith(f"{path}:2: ")


def test_recbole_negative_timestamp_names_file_and_line(tmp_path):
    path = tmp_path / "toy.inter"
    path.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t3\t100\n1\t3\t4\t-1\n")
    with pytest.raises(FormatError, match=r"toy.inter:3: expected a non-negative timestamp"):
        recbole_atomic.convert({"inter": [path]})
