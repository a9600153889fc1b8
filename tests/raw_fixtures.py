"""Small generated files in every raw format, with every quirk the readers must handle,
and the counts the readers must find in them. Never real data: ids, titles and texts
are made up here.

``build(dataset)`` returns a ``RawFixture``: the files as the publisher would serve
them (name -> bytes), the dataset params selecting the variant and side information,
and the expected counts.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
import zipfile
from dataclasses import dataclass, field
from typing import Any

# Titles, names and texts with the characters that break naive parsers.
TRICKY_TITLES = ['Jumanji, The (1995)', 'Big "Quote" Show (2000)', 'Amélie (2001)', 'Plain (1999)']


@dataclass
class RawFixture:
    dataset: str
    files: dict[str, bytes]                       # served file name -> bytes
    params: dict[str, Any]                        # dataset params (variant, with, reader options)
    users: int
    items: int
    interactions: int
    counts: dict[str, int] = field(default_factory=dict)   # reader.json counts that must match
    skipped: int = 0
    inner: dict[str, dict[str, bytes]] = field(default_factory=dict)   # archive -> member -> bytes


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def tar_bytes(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name in sorted({n.rsplit("/", 1)[0] for n in members if "/" in n}):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _pairs(rng: random.Random, n_users: int, n_items: int, per_user: tuple[int, int]) -> list[tuple[int, int]]:
    """Distinct (user index, item index) pairs, every user and item used at least once."""
    pairs = []
    for user in range(n_users):
        items = rng.sample(range(n_items), rng.randint(*per_user))
        pairs += [(user, item) for item in items]
    used = {item for _, item in pairs}
    pairs += [(rng.randrange(n_users), item) for item in range(n_items) if item not in used]
    return pairs


# --------------------------------------------------------------------------------------

def movielens(seed: int = 0) -> RawFixture:
    rng = random.Random(seed)
    user_ids = rng.sample(range(1, 500), 30)
    movie_ids = sorted(rng.sample(range(1, 5000), 25))
    pairs = _pairs(rng, len(user_ids), len(movie_ids), (5, 12))
    lines = ["userId,movieId,rating,timestamp"]
    for user, item in sorted(pairs):
        stars = rng.choice(["0.5", "1.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0", "4", "5"])
        lines.append(f"{user_ids[user]},{movie_ids[item]},{stars},{rng.randint(789652009, 1427784002)}")
    movies = ["movieId,title,genres"]
    unrated = [max(movie_ids) + 1, max(movie_ids) + 2]   # in movies.csv, never rated (the 27,278 quirk)
    for k, movie in enumerate(movie_ids + unrated):
        title = TRICKY_TITLES[k % len(TRICKY_TITLES)]
        quoted = '"' + title.replace('"', '""') + '"' if ("," in title or '"' in title) else title
        genres = "(no genres listed)" if k == 3 else "|".join(rng.sample(["Action", "Comedy", "Drama", "IMAX"], 2))
        movies.append(f"{movie},{quoted},{genres}")
    inner = {"ml-20m/ratings.csv": ("\n".join(lines) + "\n").encode(),
             "ml-20m/movies.csv": ("\n".join(movies) + "\n").encode("utf-8"),
             "ml-20m/tags.csv": b"userId,movieId,tag,timestamp\n1,2,funny,3\n",
             "ml-20m/README.txt": b"generated for tests\n"}
    return RawFixture("ml-20m", {"ml-20m.zip": zip_bytes(inner)}, {}, len(user_ids), len(movie_ids), len(pairs),
                      counts={"rating_lines": len(pairs), "movies_rows": len(movie_ids) + 2},
                      inner={"ml-20m.zip": inner})


# MovieLens-100K and -1M: the same made-up ratings, movies and users in each layout.
ML_GENRES = ["Action", "Adventure", "Comedy", "Drama", "Sci-Fi", "Western"]
ML100K_FLAGS = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
                "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
                "Western"]


@dataclass
class SmallMovieLens:
    ratings: list[tuple[int, int, int, int]]        # user, movie, stars, timestamp, in file order
    genres: dict[int, list[str]]                     # movie -> genres in listed order ([] = "unknown")
    users: dict[int, tuple[int, str, str, str]]      # user -> age, gender, occupation, zip code
    n_users: int
    n_movies: int


def small_movielens(seed: int = 8) -> SmallMovieLens:
    rng = random.Random(seed)
    n_users, n_movies = 30, 25
    pairs = _pairs(rng, n_users, n_movies, (5, 12))
    rng.shuffle(pairs)                               # the files are not sorted by user
    ratings = [(u + 1, m + 1, rng.randint(1, 5), rng.randint(874_724_710, 893_286_638)) for u, m in pairs]
    genres = {m + 1: sorted(rng.sample(ML_GENRES, rng.randint(1, 3)), key=ML100K_FLAGS.index)
              for m in range(n_movies + 1)}          # one movie more than rated
    genres[3] = []                                   # flagged "unknown" only
    zips = ["55105", "01913", "T8H1N", "98101", "V3N4P", "10003"]
    users = {u + 1: (rng.randint(7, 73), rng.choice("MF"), rng.choice(["student", "engineer", "writer"]),
                     zips[u % len(zips)]) for u in range(n_users + 1)}   # one user without ratings
    return SmallMovieLens(ratings, genres, users, n_users, n_movies)


def _ml100k_title(movie: int) -> str:
    return TRICKY_TITLES[movie % len(TRICKY_TITLES)]


def movielens_100k(seed: int = 8) -> RawFixture:
    ml = small_movielens(seed)
    data = "".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in ml.ratings)
    items = "".join(f"{m}|{_ml100k_title(m)}|01-Jan-1995||http://us.imdb.com/M/title-exact?{m}|"
                    + "|".join("1" if g in ml.genres[m] or (g == "unknown" and not ml.genres[m]) else "0"
                               for g in ML100K_FLAGS) + "\n" for m in ml.genres)
    users = "".join(f"{u}|{age}|{gender}|{job}|{zip_code}\n" for u, (age, gender, job, zip_code) in ml.users.items())
    inner = {"ml-100k/u.data": data.encode(), "ml-100k/u.item": items.encode("latin-1"),
             "ml-100k/u.user": users.encode(), "ml-100k/u.genre": b"unknown|0\nAction|1\n",
             "ml-100k/README": b"generated for tests\n"}
    return RawFixture("ml-100k", {"ml-100k.zip": zip_bytes(inner)}, {}, ml.n_users, ml.n_movies, len(ml.ratings),
                      counts={"rating_lines": len(ml.ratings), "movies_rows": len(ml.genres),
                              "users_rows": len(ml.users)}, inner={"ml-100k.zip": inner})


def movielens_100k_atomic(seed: int = 8) -> RawFixture:
    """The same data as RecBole's atomic files (the recbole variant of ml-100k)."""
    ml = small_movielens(seed)
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in ml.ratings)
    items = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n" + "".join(
        f"{m}\t{_ml100k_title(m)}\t1995\t{' '.join(g) or 'unknown'}\n" for m, g in ml.genres.items())
    users = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n" + "".join(
        f"{u}\t{age}\t{gender}\t{job}\t{zip_code}\n" for u, (age, gender, job, zip_code) in ml.users.items())
    files = {"ml-100k.inter": inter.encode(), "ml-100k.item": items.encode(), "ml-100k.user": users.encode()}
    return RawFixture("ml-100k", files, {"variant": "recbole"}, ml.n_users, ml.n_movies, len(ml.ratings),
                      counts={"inter_lines": len(ml.ratings), "item_lines": len(ml.genres),
                              "user_lines": len(ml.users)})


ML1M_AGES = {7: "1", 20: "18", 30: "25", 40: "35", 47: "45", 52: "50", 60: "56"}


def movielens_1m(seed: int = 9) -> RawFixture:
    ml = small_movielens(seed)
    ratings = "".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in ml.ratings)
    movies = "".join(f"{m}::{_ml100k_title(m)}::{'|'.join(g) or 'Drama'}\n" for m, g in ml.genres.items())
    users = "".join(f"{u}::{gender}::{ML1M_AGES[min(ML1M_AGES, key=lambda a: abs(a - age))]}::{u % 21}::{zip_code}\n"
                    for u, (age, gender, _, zip_code) in ml.users.items())
    inner = {"ml-1m/ratings.dat": ratings.encode(), "ml-1m/movies.dat": movies.encode("latin-1"),
             "ml-1m/users.dat": users.encode(), "ml-1m/README": b"generated for tests\n"}
    return RawFixture("ml-1m", {"ml-1m.zip": zip_bytes(inner)}, {}, ml.n_users, ml.n_movies, len(ml.ratings),
                      counts={"rating_lines": len(ml.ratings), "movies_rows": len(ml.genres),
                              "users_rows": len(ml.users)}, inner={"ml-1m.zip": inner})


def netflix_ratings(seed: int = 1) -> tuple[dict[int, list[str]], int, int]:
    rng = random.Random(seed)
    customers = rng.sample(range(1, 2_649_430), 40)
    pairs = _pairs(rng, len(customers), 12, (2, 6))
    per_movie: dict[int, list[str]] = {m + 1: [] for m in range(12)}
    for user, movie in pairs:
        day = f"{rng.randint(1999, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        per_movie[movie + 1].append(f"{customers[user]},{rng.randint(1, 5)},{day}")
    return per_movie, len(customers), len(pairs)


NETFLIX_TITLES = "1,2003,Dinosaur Planet\n2,NULL,Isle of Man TT, 2004 Review\n3,1997,Café, Le: Film\n" + "".join(
    f"{m},{1990 + m},Title {m}\n" for m in range(4, 13))


def netflix(seed: int = 1) -> RawFixture:
    per_movie, users, ratings = netflix_ratings(seed)
    members = {}
    for movie, lines in per_movie.items():
        newline = "\r\n" if movie == 2 else "\n"     # a file with Windows line breaks
        members[f"training_set/mv_{movie:07d}.txt"] = (f"{movie}:{newline}" + newline.join(lines) + newline).encode()
    training_set = tar_bytes(members, mode="w")
    inner = {"download/training_set.tar": training_set,
             "download/movie_titles.txt": NETFLIX_TITLES.encode("latin-1"),
             "download/README": b"generated for tests\n", "download/probe.txt": b"1:\n30878\n"}
    return RawFixture("netflix", {"nf_prize_dataset.tar.gz": tar_bytes(inner)}, {}, users, len(per_movie), ratings,
                      counts={"rating_lines": ratings, "movie_header_lines": len(per_movie),
                              "movie_files": len(per_movie), "title_rows": 12, "title_null_years": 1},
                      inner={"nf_prize_dataset.tar.gz": inner})


def netflix_combined(seed: int = 1) -> RawFixture:
    """Kaggle's layout: combined_data_1..4 (movies split across them), movie_titles.csv."""
    per_movie, users, ratings = netflix_ratings(seed)
    files = {}
    for part in range(4):
        movies = [m for m in per_movie if (m - 1) % 4 == part]
        files[f"combined_data_{part + 1}.txt"] = "".join(
            f"{m}:\n" + "".join(line + "\n" for line in per_movie[m]) for m in movies).encode()
    files["movie_titles.csv"] = NETFLIX_TITLES.encode("latin-1")
    return RawFixture("netflix", files, {"variant": "kaggle"}, users, len(per_movie), ratings,
                      counts={"rating_lines": ratings, "movie_header_lines": len(per_movie)})


def amazon(seed: int = 2) -> RawFixture:
    rng = random.Random(seed)
    reviewers = [f"A{rng.getrandbits(40):X}" for _ in range(25)]
    asins = [f"B{rng.getrandbits(36):09X}" for _ in range(150)]
    pairs = _pairs(rng, len(reviewers), len(asins), (5, 9))
    reviews = []
    for user, item in pairs:
        reviews.append(json.dumps({
            "reviewerID": reviewers[user], "asin": asins[item], "reviewerName": 'J. "Jazz" Müller',
            "helpful": [rng.randint(0, 3), 4], "reviewText": 'Great, "really"\nsecond line ☃',
            "overall": float(rng.randint(1, 5)), "summary": "ok", "unixReviewTime": rng.randint(900000000, 1400000000),
            "reviewTime": "09 13, 2009"}))
    meta = []
    for k, asin in enumerate(asins[:-1]):            # the last item has no metadata line
        record = {"asin": asin, "title": "Don't Stop", "price": 9.99,
                  "categories": [["CDs & Vinyl", ["Rock", "Jazz", "Pop"][k % 3], "Sub"], ["CDs & Vinyl", "Other"]]}
        meta.append(repr(record))                    # Python literals, single quotes, as in the 2014 dump
    meta.append(repr({"asin": "B_NOT_REVIEWED", "categories": [["CDs & Vinyl", "Rock"]]}))
    meta.insert(7, "{'asin': '" + asins[7] + "', 'categories': [['CDs & Vi")   # a broken line: counted skip
    files = {"reviews_CDs_and_Vinyl_5.json.gz": gzip.compress(("\n".join(reviews) + "\n").encode()),
             "meta_CDs_and_Vinyl.json.gz": gzip.compress(("\n".join(meta) + "\n").encode())}
    return RawFixture("amazon-cd", files, {"with": ["metadata"]}, len(reviewers), len(asins), len(pairs),
                      counts={"review_lines": len(pairs), "metadata_lines": len(meta), "items_without_category": 1},
                      skipped=1)


def amazon_ratings(seed: int = 3) -> RawFixture:
    rng = random.Random(seed)
    users = [f"A{rng.getrandbits(40):X}" for _ in range(20)]
    items = [f"{rng.getrandbits(30):010d}" for _ in range(30)]
    pairs = _pairs(rng, len(users), len(items), (2, 5))
    text = "".join(f"{users[u]},{items[i]},{rng.randint(1, 5)}.0,{rng.randint(900000000, 1400000000)}\n"
                   for u, i in pairs)
    return RawFixture("amazon-cd", {"ratings_CDs_and_Vinyl.csv": text.encode()}, {"variant": "ratings"},
                      len(users), len(items), len(pairs), counts={"rating_lines": len(pairs)})


def librarything(seed: int = 4, layout: str = "txt") -> RawFixture:
    rng = random.Random(seed)
    users = [f"reader_{rng.getrandbits(24):x}" for _ in range(30)] + ["O'Brien"]
    works = [str(rng.randint(1000, 9_999_999)) for _ in range(40)]
    pairs = _pairs(rng, len(users), len(works), (4, 8))
    lines, missing_stars, missing_time = [], 0, 0
    for k, (user, work) in enumerate(pairs):
        record = {"work": works[work], "flags": [], "nhelpful": 0, "time": "Nov 7, 2007",
                  "comment": 'It\'s "great"\nreally \u2014 yes', "user": users[user]}
        if k % 7 == 3:
            missing_stars += 1
        else:
            record["stars"] = rng.choice([0.5, 1.0, 2.5, 3.0, 4.5, 5.0])
        if k % 11 == 5:
            missing_time += 1
        else:
            record["unixtime"] = rng.randint(1_100_000_000, 1_300_000_000)
        lines.append(f"reviews[{(users[user], works[work])!r}] = {record!r}" if layout == "txt" else repr(record))
    lines.insert(40, lines[40][: len(lines[40]) // 2])           # a truncated line: counted skip
    text = ("reviews = {}\n" if layout == "txt" else "") + "\n".join(lines) + "\n"
    name = f"lthing_data/reviews.{'txt' if layout == 'txt' else 'json'}"
    inner = {name: text.encode(), "lthing_data/edges.txt": b"a b\nb c\n"}
    counts = {"review_lines": len(pairs), "missing_stars": missing_stars, "missing_unixtime": missing_time}
    if layout == "txt":
        counts["header_lines"] = 1
    return RawFixture("librarything", {"lthing_data.tar.gz": tar_bytes(inner)}, {}, len(users), len(works),
                      len(pairs), counts=counts, skipped=1, inner={"lthing_data.tar.gz": inner})


def book_crossing(seed: int = 5) -> RawFixture:
    rng = random.Random(seed)
    user_ids = sorted(rng.sample(range(1, 278_859), 40))
    isbns = [f"{rng.getrandbits(30):09d}X" for _ in range(55)] + ['0\\"123456', "84-226é"]
    pairs = _pairs(rng, len(user_ids), len(isbns), (3, 6))
    lines, implicit = ['"User-ID";"ISBN";"Book-Rating"'], 0
    for user, item in sorted(pairs):
        rating = 0 if rng.random() < 0.6 else rng.randint(1, 10)
        implicit += rating == 0
        lines.append(f'"{user_ids[user]}";"{isbns[item]}";"{rating}"')
    lines.insert(60, '"12345";"0123456789"')                      # two fields: counted skip
    locations = ["nyc, new york, usa", "stockton, california, usa", "münchen, bayern, germany",
                 "porto, v.n.gaia, portugal", "somewhere, n/a, n/a", "toronto, ontario, canada"]
    users = ['"User-ID";"Location";"Age"']
    for k, user in enumerate(user_ids[:-1]):                      # the last rating user has no row
        age = "NULL" if k % 4 == 0 else ('"244"' if k == 5 else f'"{rng.randint(10, 80)}"')
        users.append(f'"{user}";"{locations[k % len(locations)]}";{age}')
    users.append('"999999";"nowhere, usa";NULL')                  # a user without ratings
    books = ['"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";"Image-URL-S";"Image-URL-M";'
             '"Image-URL-L"',
             '"0195153448";"Classical Mythology";"Mark P. O. Morford";"2002";"Oxford University Press";"s";"m";"l"',
             '"0451524934";"The \\"Real\\" Story &amp; More";"A. Writer";"1990";"Signet";"s";"m";"l"']
    files = {"BX-Book-Ratings.csv": ("\n".join(lines) + "\n").encode("latin-1"),
             "BX-Users.csv": ("\n".join(users) + "\n").encode("latin-1"),
             "BX-Books.csv": ("\n".join(books) + "\n").encode("latin-1")}
    return RawFixture("book-crossing", files, {"with": ["users", "books"]}, len(user_ids), len(isbns), len(pairs),
                      counts={"rating_lines": len(pairs), "implicit_ratings": implicit, "users_rows": len(users) - 1,
                              "books_lines": 2, "rating_users_without_users_row": 1, "implausible_ages": 1},
                      skipped=1)


def goodreads(seed: int = 6) -> RawFixture:
    rng = random.Random(seed)
    n_users, n_books = 30, 45
    pairs = _pairs(rng, n_users, n_books, (4, 9))
    lines, read, rated = ["user_id,book_id,is_read,rating,is_reviewed"], 0, 0
    for user, book in pairs:
        rating = rng.choice([0, 0, 3, 4, 5])
        is_read = int(rating > 0 or rng.random() < 0.5)
        read += is_read
        rated += rating > 0
        lines.append(f"{user},{book},{is_read},{rating},{int(rng.random() < 0.2)}")
    user_map = "user_id_csv,user_id\n" + "".join(f"{u},{rng.getrandbits(128):032x}\n" for u in range(n_users + 3))
    book_map = "book_id_csv,book_id\n" + "".join(f"{b},{rng.randint(1, 30_000_000)}\n" for b in range(n_books + 3))
    book_ids = [line.split(",")[1] for line in book_map.splitlines()[1:]]
    genres = [json.dumps({"book_id": book_ids[b], "genres": {} if b == 0 else
                          {"fiction": rng.randint(1, 9), "history, historical fiction, biography": 5}})
              for b in range(n_books + 3)]
    files = {"goodreads_interactions.csv": ("\n".join(lines) + "\n").encode(),
             "user_id_map.csv": user_map.encode(), "book_id_map.csv": book_map.encode(),
             "goodreads_book_genres_initial.json.gz": gzip.compress(("\n".join(genres) + "\n").encode())}
    return RawFixture("goodreads", files, {"with": ["genres"]}, n_users, n_books, len(pairs),
                      counts={"rating_lines": len(pairs), "is_read": read, "rated": rated,
                              "genre_lines": n_books + 3, "books_without_genre": 1})


def goodreads_dedup(seed: int = 7) -> RawFixture:
    rng = random.Random(seed)
    users = [f"{rng.getrandbits(128):032x}" for _ in range(20)]
    books = [str(rng.randint(1, 30_000_000)) for _ in range(30)]
    pairs = _pairs(rng, len(users), len(books), (3, 6))
    lines, missing = [], 0
    for k, (user, book) in enumerate(pairs):
        date = "" if k == 4 else f"Mon Aug 0{rng.randint(1, 9)} 13:41:57 -0700 20{rng.randint(10, 17)}"
        missing += date == ""
        lines.append(json.dumps({"user_id": users[user], "book_id": books[book], "review_id": f"{k:032x}",
                                 "is_read": bool(rng.random() < 0.7), "rating": rng.randint(0, 5),
                                 "review_text_incomplete": "", "date_added": date, "date_updated": date,
                                 "read_at": "", "started_at": ""}))
    files = {"goodreads_interactions_dedup.json.gz": gzip.compress(("\n".join(lines) + "\n").encode())}
    return RawFixture("goodreads", files, {"variant": "dedup"}, len(users), len(books), len(pairs),
                      counts={"rating_lines": len(pairs), "missing_date_added": missing})


BUILDERS = {"ml-20m": movielens, "ml-100k": movielens_100k, "ml-1m": movielens_1m, "netflix": netflix,
            "amazon-cd": amazon, "librarything": librarything, "book-crossing": book_crossing, "goodreads": goodreads}


def pinned_params(fixture: RawFixture, base_url: str) -> dict[str, Any]:
    """The dataset params a user would write to fetch these files from a mirror: each
    file's URL and checksum pins (a git blob id for the Book-Crossing CSVs, as the
    registry does; sha256 and size otherwise), and the inner checksums of archives."""
    files = {}
    for name, data in fixture.files.items():
        pins: dict[str, Any] = ({"git_blob_sha1": git_blob_sha1(data)} if fixture.dataset == "book-crossing"
                                else {"sha256": sha256(data), "size": len(data)})
        files[name] = {"url": f"{base_url}/{fixture.dataset}/{name}", **pins}
    if fixture.dataset == "netflix" and "nf_prize_dataset.tar.gz" in fixture.files:
        inner = fixture.inner["nf_prize_dataset.tar.gz"]
        files["nf_prize_dataset.tar.gz"]["inner"] = {
            member: {"sha256": sha256(inner[member])} for member in ("download/training_set.tar",
                                                                      "download/movie_titles.txt")}
    return {**fixture.params, "files": files}
