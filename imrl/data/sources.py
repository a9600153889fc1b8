"""Where every raw file comes from and how to prove we got the right bytes.

One entry per offline dataset (and the VirtualTB weights used by the simulator): for
each file the URLs in the order they are tried, the expected size, the checksums the
publisher (or a named third party) gives, the licence, the citation, and how to obtain
the file by hand where no public URL works. Where nobody publishes a checksum the entry
says so (``checksum_source``); the downloader then checks the size it can check, pins
the sha256 of the first verified copy beside the file, and the user may pin a hash in
the config (``datasets.<name>.params.files.<file>.sha256``).

A dataset can come in more than one layout (``variants``): Netflix from archive.org or
Kaggle, Amazon as ratings-only CSV or 5-core JSON, MovieLens-100K from GroupLens or as
the RecBole atomic files shipped inside the ``recbole`` package (``package``: located in
the installed package at fetch time, never imported), and so on. ``roles`` tell a reader
where each logical input (``ratings``, ``movies`` ...) lives once the files are
downloaded and their archives extracted (``data/raw/<dataset>/<archive>.extracted/``).

This module imports nothing heavy: the workflow reads it to plan downloads.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

PUBLISHER, THIRD_PARTY, NONE_PUBLISHED = "publisher", "third party", "none published"
MB, GB = 10**6, 10**9
EXTRACTED_SUFFIX = ".extracted"


@dataclass(frozen=True)
class Checksums:
    """What a file must be. Any field left None is not checked (the size is then
    checked against the server's Content-Length)."""

    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    git_blob_sha1: str | None = None  # `git hash-object FILE`: how a repository mirror pins content

    @property
    def has_hash(self) -> bool:
        return any((self.sha256, self.md5, self.git_blob_sha1))

    @classmethod
    def from_config(cls, pins: Mapping[str, Any], where: str) -> "Checksums":
        unknown = set(pins) - set(CHECKSUM_KEYS)
        if unknown:
            raise KeyError(f"{where}: unknown checksum keys {sorted(unknown)}; expected {', '.join(CHECKSUM_KEYS)}")
        return cls(size=None if pins.get("size") is None else int(pins["size"]),
                   **{k: None if pins.get(k) is None else str(pins[k]).lower() for k in CHECKSUM_KEYS[1:]})


CHECKSUM_KEYS = ("size", "sha256", "md5", "git_blob_sha1")


@dataclass(frozen=True)
class RemoteFile:
    name: str                       # file name under data/raw/<dataset>/
    urls: tuple[str, ...]           # tried in order; empty = manual download only
    checksums: Checksums
    checksum_source: str            # PUBLISHER, THIRD_PARTY (named in `note`) or NONE_PUBLISHED
    note: str = ""
    archive: bool = False           # zip or tar: extracted (safely) after verification
    extract_members: tuple[str, ...] | None = None   # None = everything
    inner: Mapping[str, Checksums] = field(default_factory=dict)  # archive member -> checksums
    optional: bool = False          # fetched only when the dataset's options ask for it
    manual: str = ""                # how to obtain it by hand
    package: str = ""               # "<package>/<path>": a copy inside an installed Python package
    # Bytes, where neither a checksum nor the exact size is published: wide bounds around the
    # publisher's stated or approximate size, to refuse error pages and runaway transfers.
    size_range: tuple[int, int] | None = None


#: What a file's name says its content is; checked where no checksum proves the file.
CONTENT_KINDS = ((".tar.gz", "tar.gz"), (".tgz", "tar.gz"), (".gz", "gzip"), (".zip", "zip"), (".tar", "tar"),
                 (".csv", "text"), (".txt", "text"), (".json", "text"), (".dat", "text"))


def content_kind(file_name: str) -> str | None:
    return next((kind for suffix, kind in CONTENT_KINDS if file_name.endswith(suffix)), None)


@dataclass(frozen=True)
class Role:
    """A reader's logical input: a file, or a member of an extracted archive; the
    first of `candidates` that exists wins (layouts that changed over time)."""

    file: str
    candidates: tuple[str | None, ...] = (None,)   # member paths inside the archive; None = the file itself
    optional: bool = False


@dataclass(frozen=True)
class Variant:
    files: tuple[RemoteFile, ...]
    roles: Mapping[str, tuple[Role, ...]]   # role -> one or more inputs, read in order
    description: str


@dataclass(frozen=True)
class Source:
    name: str
    title: str
    homepage: str
    licence: str
    citation: str
    variants: Mapping[str, Variant]
    default_variant: str

    def variant(self, name: str | None = None) -> Variant:
        name = name or self.default_variant
        if name not in self.variants:
            raise KeyError(f"{self.name}: unknown raw variant {name!r}; valid: {', '.join(self.variants)}")
        return self.variants[name]


def _one(file: str, *candidates: str | None, optional: bool = False) -> tuple[Role, ...]:
    return (Role(file, candidates or (None,), optional),)


# --------------------------------------------------------------------------------------
# MovieLens-20M
_GROUPLENS_LICENCE = ("GroupLens usage licence: research use, acknowledge the source, no redistribution "
                      "without permission, no commercial use.")
_GROUPLENS_CITATION = ("F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context. "
                       "ACM Transactions on Interactive Intelligent Systems 5(4), 19:1-19:19.")

_ML20M_ZIP = RemoteFile(
    name="ml-20m.zip",
    urls=("https://files.grouplens.org/datasets/movielens/ml-20m.zip",),
    checksums=Checksums(size=198_702_078, md5="cd245b17a1ae2cc31bb14903e1204af3",
                        sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3"),
    checksum_source=PUBLISHER,
    note="md5 from the publisher's ml-20m.zip.md5; sha256 computed from that verified file",
    archive=True,
    extract_members=("ml-20m/ratings.csv", "ml-20m/movies.csv"),
    manual="Download ml-20m.zip from https://grouplens.org/datasets/movielens/20m/ and place it in data/raw/ml-20m/.",
)

ML_20M = Source(
    name="ml-20m",
    title="MovieLens 20M",
    homepage="https://grouplens.org/datasets/movielens/20m/",
    licence=_GROUPLENS_LICENCE,
    citation=_GROUPLENS_CITATION,
    variants={"grouplens": Variant(
        files=(_ML20M_ZIP,),
        roles={"ratings": _one("ml-20m.zip", "ml-20m/ratings.csv"),
               "movies": _one("ml-20m.zip", "ml-20m/movies.csv")},
        description="ml-20m.zip from GroupLens: ratings.csv + movies.csv (genres)")},
    default_variant="grouplens",
)

# --------------------------------------------------------------------------------------
# MovieLens-100K and MovieLens-1M: the field's small sanity datasets
_RECBOLE_INSTALL = "pip install --no-deps recbole==1.2.1"


def _grouplens_zip(name: str, md5: str, members: tuple[str, ...]) -> RemoteFile:
    return RemoteFile(
        name=f"{name}.zip",
        urls=(f"https://files.grouplens.org/datasets/movielens/{name}.zip",),
        checksums=Checksums(md5=md5),
        checksum_source=PUBLISHER,
        # Only the md5: with no network here, no copy was at hand to measure the size and sha256.
        note=f"md5 of the publisher's {name}.zip.md5, transcribed from download code that checks it; "
             f"size and sha256 not recorded",
        archive=True,
        extract_members=members,
        manual=f"Download {name}.zip from https://grouplens.org/datasets/movielens/ and place it in data/raw/{name}/.",
    )


_ML100K_ZIP = _grouplens_zip("ml-100k", "0e33842e24a9c977be4e0107933c0723",
                             ("ml-100k/u.data", "ml-100k/u.item", "ml-100k/u.user"))


def _recbole_ml100k(suffix: str, size: int, sha256: str) -> RemoteFile:
    return RemoteFile(
        name=f"ml-100k.{suffix}", urls=(), checksums=Checksums(size=size, sha256=sha256),
        checksum_source=THIRD_PARTY,
        note="RecBole's conversion of ml-100k (u.data, u.item, u.user) to atomic files, shipped in the recbole "
             "1.2.1 wheel; size and sha256 recorded from that wheel",
        package=f"recbole/dataset_example/ml-100k/ml-100k.{suffix}",
        manual=f"Install the recbole package ({_RECBOLE_INSTALL}), whose wheel holds "
               f"dataset_example/ml-100k/ml-100k.{suffix}, or choose the grouplens variant.",
    )


_ML100K_ATOMIC = (
    _recbole_ml100k("inter", 1_979_230, "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"),
    _recbole_ml100k("item", 66_632, "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532"),
    _recbole_ml100k("user", 22_697, "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972"),
)

ML_100K = Source(
    name="ml-100k",
    title="MovieLens 100K",
    homepage="https://grouplens.org/datasets/movielens/100k/",
    licence=_GROUPLENS_LICENCE,
    citation=_GROUPLENS_CITATION,
    variants={
        "grouplens": Variant(
            files=(_ML100K_ZIP,),
            roles={"ratings": _one(_ML100K_ZIP.name, "ml-100k/u.data"),
                   "movies": _one(_ML100K_ZIP.name, "ml-100k/u.item"),
                   "users": _one(_ML100K_ZIP.name, "ml-100k/u.user")},
            description="ml-100k.zip from GroupLens: u.data + u.item (genre flags) + u.user (demographics)"),
        "recbole": Variant(
            files=_ML100K_ATOMIC,
            roles={"inter": _one("ml-100k.inter"), "item": _one("ml-100k.item"), "user": _one("ml-100k.user")},
            description="the same data as RecBole atomic files, from the installed recbole package (no download)"),
    },
    default_variant="grouplens",
)

_ML1M_ZIP = _grouplens_zip("ml-1m", "c4d9eecfca2ab87c1945afe126590906",
                           ("ml-1m/ratings.dat", "ml-1m/movies.dat", "ml-1m/users.dat"))

ML_1M = Source(
    name="ml-1m",
    title="MovieLens 1M",
    homepage="https://grouplens.org/datasets/movielens/1m/",
    licence=_GROUPLENS_LICENCE,
    citation=_GROUPLENS_CITATION,
    variants={"grouplens": Variant(
        files=(_ML1M_ZIP,),
        roles={"ratings": _one(_ML1M_ZIP.name, "ml-1m/ratings.dat"),
               "movies": _one(_ML1M_ZIP.name, "ml-1m/movies.dat"),
               "users": _one(_ML1M_ZIP.name, "ml-1m/users.dat")},
        description="ml-1m.zip from GroupLens: ratings.dat + movies.dat (genres) + users.dat (demographics)")},
    default_variant="grouplens",
)

# --------------------------------------------------------------------------------------
# Netflix Prize
_NETFLIX_ARCHIVE = RemoteFile(
    name="nf_prize_dataset.tar.gz",
    urls=("https://archive.org/download/nf_prize_dataset.tar/nf_prize_dataset.tar.gz",),
    checksums=Checksums(md5="a8f23d2d76461211c6b4c0ca6df2547d"),
    checksum_source=THIRD_PARTY,
    note="archive md5 from a third party (archive.org item); its size is not published (about 665 MB). "
         "The inner files are checked against the official README's md5 sums.",
    archive=True,
    extract_members=("download/training_set.tar", "download/movie_titles.txt"),
    inner={"download/training_set.tar": Checksums(size=2_081_556_480, md5="0098ee8997ffda361a59bc0dd1bdad8b"),
           "download/movie_titles.txt": Checksums(md5="d2b86d3d9ba8b491d62a85c9cf6aea39")},
    manual="The Netflix Prize data is no longer distributed by Netflix. Obtain nf_prize_dataset.tar.gz "
           "(archive.org item nf_prize_dataset.tar) and place it in data/raw/netflix/, or use the Kaggle "
           "variant.",
)

_KAGGLE_MANUAL = ("Kaggle's copy needs a login: download https://www.kaggle.com/datasets/netflix-inc/netflix-prize-data "
                  "(combined_data_1.txt .. combined_data_4.txt and movie_titles.csv), unzip, and place the files "
                  "in data/raw/netflix/. No checksum is published: pin the sha256 values in the config.")

_KAGGLE_FILES = tuple(
    RemoteFile(name=name, urls=(), checksums=Checksums(), checksum_source=NONE_PUBLISHED,
               note="Kaggle publishes no checksum; the size range is wide around Kaggle's listed sizes "
                    "(about 470-560 MB per combined_data file, about 580 KB of titles)",
               manual=_KAGGLE_MANUAL, size_range=size_range)
    for name, size_range in (*((f"combined_data_{i}.txt", (200 * MB, 1 * GB)) for i in range(1, 5)),
                             ("movie_titles.csv", (200_000, 2 * MB))))

NETFLIX = Source(
    name="netflix",
    title="Netflix Prize",
    homepage="https://www.netflixprize.com/",
    licence="Netflix Prize rules: non-commercial research use, no redistribution.",
    citation="James Bennett and Stan Lanning. 2007. The Netflix Prize. KDD Cup and Workshop 2007.",
    variants={
        "archive-org": Variant(
            files=(_NETFLIX_ARCHIVE,),
            roles={"training_set": _one("nf_prize_dataset.tar.gz", "download/training_set.tar"),
                   "titles": _one("nf_prize_dataset.tar.gz", "download/movie_titles.txt")},
            description="the original distribution: training_set.tar of 17,770 per-movie files"),
        "kaggle": Variant(
            files=_KAGGLE_FILES,
            roles={"combined_data": tuple(Role(f"combined_data_{i}.txt") for i in range(1, 5)),
                   "titles": _one("movie_titles.csv")},
            description="Kaggle's copy: combined_data_1..4.txt (the per-movie files concatenated)"),
    },
    default_variant="archive-org",
)

# --------------------------------------------------------------------------------------
# Amazon CDs and Vinyl (2014)
_AMAZON_BASE = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
_AMAZON_MIRROR = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon/categoryFiles/"
_AMAZON_MANUAL = ("From https://cseweb.ucsd.edu/~jmcauley/datasets/amazon/links.html (2014 'CDs and Vinyl') "
                  "place the file in data/raw/amazon-cd/.")


def _amazon_file(name: str, checksums: Checksums, source: str, note: str, optional: bool = False,
                 size_range: tuple[int, int] | None = None) -> RemoteFile:
    return RemoteFile(name=name, urls=(_AMAZON_BASE + name, _AMAZON_MIRROR + name), checksums=checksums,
                      checksum_source=source, note=note, optional=optional, manual=_AMAZON_MANUAL,
                      size_range=size_range)


_AMAZON_RATINGS = _amazon_file(
    "ratings_CDs_and_Vinyl.csv",
    Checksums(size=152_336_022, sha256="74b503152bc8f92f389a1f841ec00361f903772e5ebb2b664ce678c023dbbceb"),
    THIRD_PARTY, "the host publishes no checksum; size and sha256 recorded by a third party")
_AMAZON_5CORE = _amazon_file(
    "reviews_CDs_and_Vinyl_5.json.gz", Checksums(), NONE_PUBLISHED,
    "no checksum or size published: the sha256 of the first verified download is pinned; the size range "
    "is a wide bound for 1.1 million compressed reviews, not a measurement", size_range=(50 * MB, 3 * GB))
_AMAZON_META = _amazon_file(
    "meta_CDs_and_Vinyl.json.gz", Checksums(), NONE_PUBLISHED,
    "product metadata (categories); no checksum or size published; the size range is a wide bound for "
    "half a million compressed product records, not a measurement", optional=True, size_range=(10 * MB, 2 * GB))

AMAZON_CD = Source(
    name="amazon-cd",
    title="Amazon product data (2014), CDs and Vinyl",
    homepage="https://cseweb.ucsd.edu/~jmcauley/datasets/amazon/links.html",
    licence="Research use with citation; no grant to redistribute.",
    citation="Ruining He and Julian McAuley. 2016. Ups and Downs: Modeling the Visual Evolution of Fashion "
             "Trends with One-Class Collaborative Filtering. WWW 2016. Julian McAuley, Christopher Targett, "
             "Qinfeng Shi, Anton van den Hengel. 2015. Image-based Recommendations on Styles and Substitutes. "
             "SIGIR 2015.",
    variants={
        "five-core": Variant(
            files=(_AMAZON_5CORE, _AMAZON_META),
            roles={"reviews": _one(_AMAZON_5CORE.name), "metadata": _one(_AMAZON_META.name, optional=True)},
            description="5-core reviews (JSON lines): the file whose users/items Table I reports"),
        "ratings": Variant(
            files=(_AMAZON_RATINGS, _AMAZON_META),
            roles={"ratings": _one(_AMAZON_RATINGS.name), "metadata": _one(_AMAZON_META.name, optional=True)},
            description="ratings-only CSV (user,item,rating,timestamp): the file whose row count Table I reports"),
    },
    default_variant="five-core",
)

# --------------------------------------------------------------------------------------
# LibraryThing
_LTHING = RemoteFile(
    name="lthing_data.tar.gz",
    urls=("https://mcauleylab.ucsd.edu/public_datasets/data/librarything/lthing_data.tar.gz",
          "http://deepyeti.ucsd.edu/jmcauley/datasets/librarything/lthing_data.tar.gz"),
    checksums=Checksums(),
    checksum_source=NONE_PUBLISHED,
    note="no checksum or exact size published (about 600 MB): the sha256 of the first verified download is "
         "pinned; the size range is a wide bound around that",
    size_range=(100 * MB, 3 * GB),
    archive=True,
    extract_members=("lthing_data/reviews.json", "lthing_data/reviews.txt", "lthing_data/edges.txt"),
    manual="From https://cseweb.ucsd.edu/~jmcauley/datasets.html#social_data ('LibraryThing') place "
           "lthing_data.tar.gz in data/raw/librarything/.",
)

LIBRARYTHING = Source(
    name="librarything",
    title="LibraryThing reviews (social recommendation data)",
    homepage="https://cseweb.ucsd.edu/~jmcauley/datasets.html#social_data",
    licence="Research use with citation; no grant to redistribute.",
    citation="Tong Zhao, Julian McAuley, Irwin King. 2015. Improving Latent Factor Models via Personalized "
             "Feature Projection for One Class Recommendation. CIKM 2015.",
    variants={"ucsd": Variant(
        files=(_LTHING,),
        roles={"reviews": _one(_LTHING.name, "lthing_data/reviews.json", "lthing_data/reviews.txt")},
        description="lthing_data.tar.gz: reviews.json (dict literals) or reviews.txt (reviews[...] = {...})")},
    default_variant="ucsd",
)

# --------------------------------------------------------------------------------------
# Book-Crossing
_BX_COMMIT = "52c29a80b7a4e69c422cd84806cdbb45879d8c66"
_BX_RAW = (f"https://raw.githubusercontent.com/ashwanidv100/Recommendation-System---Book-Crossing-Dataset/"
           f"{_BX_COMMIT}/BX-CSV-Dump/")
_BX_MANUAL = ("The original BX-CSV-Dump.zip (www2.informatik.uni-freiburg.de/~cziegler/BX/) is gone; place "
              "BX-CSV-Dump.zip (md5 37d647ee9e18ba134ea6d78ee4fe5292) in data/raw/book-crossing/ and choose "
              "the dump-zip variant, or let the github-csv variant fetch the files.")


def _bx_csv(name: str, blob: str) -> RemoteFile:
    return RemoteFile(name=name, urls=(_BX_RAW + name,), checksums=Checksums(git_blob_sha1=blob),
                      checksum_source=THIRD_PARTY,
                      note=f"a GitHub mirror pinned at commit {_BX_COMMIT}; the git blob id proves the content",
                      manual=_BX_MANUAL)


_BX_RATINGS = _bx_csv("BX-Book-Ratings.csv", "81a1f0021c33a32aa810ccd00703f2ae2ddcd8c5")
_BX_USERS = _bx_csv("BX-Users.csv", "45784986245950630c20b29dbbcd63e6e61c10cb")
_BX_BOOKS = _bx_csv("BX-Books.csv", "acfe22e51e041c60f330c020b2a01c3ca56a8d15")
_BX_DUMP = RemoteFile(
    name="BX-CSV-Dump.zip", urls=(),
    checksums=Checksums(size=26_085_508, md5="37d647ee9e18ba134ea6d78ee4fe5292"),
    checksum_source=PUBLISHER, note="the original dump; its host is gone (404), so it is manual only",
    archive=True, manual=_BX_MANUAL)
_BX_FCC = RemoteFile(
    name="book-crossings.zip", urls=("https://cdn.freecodecamp.org/project-data/books/book-crossings.zip",),
    checksums=Checksums(), checksum_source=NONE_PUBLISHED,
    note="freeCodeCamp's repackaging; no checksum published: the first verified download is pinned; "
         "the size range is a wide bound around the original dump's 26 MB",
    archive=True, manual=_BX_MANUAL, size_range=(5 * MB, 200 * MB))


def _bx_roles(archive: str, prefixes: tuple[str, ...]) -> dict[str, tuple[Role, ...]]:
    """Roles inside a zip of the dump: the CSVs at the top or under a folder."""
    def role(name: str, optional: bool = False) -> tuple[Role, ...]:
        return (Role(archive, tuple(p + name for p in prefixes), optional),)
    return {"ratings": role("BX-Book-Ratings.csv"), "users": role("BX-Users.csv", optional=True),
            "books": role("BX-Books.csv", optional=True)}


BOOK_CROSSING = Source(
    name="book-crossing",
    title="Book-Crossing",
    homepage="http://www2.informatik.uni-freiburg.de/~cziegler/BX/",
    licence="Free for research use when acknowledged (cite the paper below).",
    citation="Cai-Nicolas Ziegler, Sean M. McNee, Joseph A. Konstan, Georg Lausen. 2005. Improving "
             "Recommendation Lists Through Topic Diversification. WWW 2005.",
    variants={
        "github-csv": Variant(
            files=(_BX_RATINGS, _BX_USERS, _BX_BOOKS),
            roles={"ratings": _one(_BX_RATINGS.name), "users": _one(_BX_USERS.name, optional=True),
                   "books": _one(_BX_BOOKS.name, optional=True)},
            description="the three CSVs of the dump from a GitHub mirror pinned by commit"),
        "dump-zip": Variant(files=(_BX_DUMP,), roles=_bx_roles(_BX_DUMP.name, ("", "BX-CSV-Dump/")),
                            description="the original BX-CSV-Dump.zip, placed by hand"),
        "freecodecamp-zip": Variant(files=(_BX_FCC,), roles=_bx_roles(_BX_FCC.name, ("", "book-crossings/")),
                                    description="freeCodeCamp's book-crossings.zip"),
    },
    default_variant="github-csv",
)

# --------------------------------------------------------------------------------------
# GoodReads (UCSD Book Graph)
_GR_BASE = "https://mcauleylab.ucsd.edu/public_datasets/gdrive/goodreads/"
_GR_MANUAL = ("From https://mengtingwan.github.io/data/goodreads.html place the file in data/raw/goodreads/ "
              "(the older Google Drive links are dead since 2025).")


def _goodreads(name: str, size: int | None = None, optional: bool = False,
               size_range: tuple[int, int] | None = None) -> RemoteFile:
    return RemoteFile(name=name, urls=(_GR_BASE + name,), checksums=Checksums(size=size),
                      checksum_source=NONE_PUBLISHED,
                      note="no checksum published; the first verified download is pinned" + (
                          "; size known" if size else "; the size range is a wide bound, not a measurement"),
                      optional=optional, manual=_GR_MANUAL, size_range=size_range)


_GR_CSV = _goodreads("goodreads_interactions.csv", 4_318_621_741)
_GR_USERS = _goodreads("user_id_map.csv", 34_934_710)
_GR_BOOKS = _goodreads("book_id_map.csv", 37_846_957)
_GR_DEDUP = _goodreads("goodreads_interactions_dedup.json.gz", size_range=(1 * GB, 50 * GB))   # 228M records
_GR_GENRES = _goodreads("goodreads_book_genres_initial.json.gz", optional=True,
                        size_range=(1 * MB, 1 * GB))                                         # 2.4M books

GOODREADS = Source(
    name="goodreads",
    title="GoodReads (UCSD Book Graph)",
    homepage="https://mengtingwan.github.io/data/goodreads.html",
    licence="Research use with citation; no grant to redistribute.",
    citation="Mengting Wan and Julian McAuley. 2018. Item Recommendation on Monotonic Behavior Chains. RecSys 2018. "
             "Mengting Wan, Rishabh Misra, Ndapa Nakashole, Julian McAuley. 2019. Fine-Grained Spoiler Detection "
             "from Large-Scale Review Corpora. ACL 2019.",
    variants={
        "csv": Variant(
            files=(_GR_CSV, _GR_USERS, _GR_BOOKS, _GR_GENRES),
            roles={"interactions": _one(_GR_CSV.name), "user_map": _one(_GR_USERS.name),
                   "book_map": _one(_GR_BOOKS.name), "genres": _one(_GR_GENRES.name, optional=True)},
            description="goodreads_interactions.csv with its id maps (no timestamps)"),
        "dedup": Variant(
            files=(_GR_DEDUP, _GR_GENRES),
            roles={"interactions": _one(_GR_DEDUP.name), "genres": _one(_GR_GENRES.name, optional=True)},
            description="goodreads_interactions_dedup.json.gz: the same interactions with dates"),
    },
    default_variant="csv",
)

# --------------------------------------------------------------------------------------
# VirtualTB weights (used by the simulator, not by a reader)
_VTB_COMMIT = "ff4f1cce83c824b9542ccd81300672cc81bdec7a"
_VTB_RAW = f"https://raw.githubusercontent.com/eyounx/VirtualTaobao/{_VTB_COMMIT}/virtualTB/data/"


def _vtb(name: str, size: int, sha256: str) -> RemoteFile:
    return RemoteFile(name=name, urls=(_VTB_RAW + name,), checksums=Checksums(size=size, sha256=sha256),
                      checksum_source=THIRD_PARTY,
                      note=f"repository pinned at commit {_VTB_COMMIT}; sha256 recorded from that commit",
                      manual=f"Clone https://github.com/eyounx/VirtualTaobao at {_VTB_COMMIT} and copy "
                             f"virtualTB/data/{name} into data/raw/virtualtb/.")


VIRTUALTB = Source(
    name="virtualtb",
    title="Virtual-Taobao simulator weights",
    homepage="https://github.com/eyounx/VirtualTaobao",
    licence="No licence file; the README allows free use with credit to the AAAI 2019 paper. Not redistributed.",
    citation="Jing-Cheng Shi, Yang Yu, Qing Da, Shi-Yong Chen, An-Xiang Zeng. 2019. Virtual-Taobao: Virtualizing "
             "Real-World Online Retail Environment for Reinforcement Learning. AAAI 2019.",
    variants={"github": Variant(
        files=(_vtb("action_model.pt", 214_532, "eceebf80181735459eec841cb1f73fa1a3f5f2796f68f4f8366a36d5e8da7be8"),
               _vtb("generator_model.pt", 112_180, "15f4f5b05df3de81016cde4b29379d24cf8b4fcb076d78055b06984137a983ac"),
               _vtb("leave_model.pt", 282_436, "022d7f88e180899bd8fe6b26b82b6ccca8bbb82d253b30ebac372534e8a2df12")),
        roles={name: _one(f"{name}_model.pt") for name in ("action", "generator", "leave")},
        description="the three GAIL-trained networks (legacy torch pickles of float32 tensors)")},
    default_variant="github",
)

SOURCES: dict[str, Source] = {s.name: s for s in (ML_20M, ML_100K, ML_1M, NETFLIX, AMAZON_CD, LIBRARYTHING,
                                                  BOOK_CROSSING, GOODREADS, VIRTUALTB)}


# --------------------------------------------------------------------------------------
# Lookups used by the downloader, the readers and the workflow.

def source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"no raw source named {name!r}; valid: {', '.join(SOURCES)}") from None


#: Keys of a dataset's ``params`` that concern the raw files (the rest are reader options).
SOURCE_KEYS = ("variant", "with", "files", "max_extract_bytes", "max_extract_ratio")


def wanted_roles(options: Mapping[str, Any] | None) -> set[str]:
    """Optional roles the config switches on (``params.with: [metadata, genres]``)."""
    return set((options or {}).get("with") or ())


def chosen_variant(name: str, options: Mapping[str, Any] | None) -> Variant:
    return source(name).variant((options or {}).get("variant"))


def files_needed(name: str, options: Mapping[str, Any] | None = None) -> list[RemoteFile]:
    """The files of the configured variant that the configured roles need, in registry order."""
    variant = chosen_variant(name, options)
    wanted = wanted_roles(options)
    used = {role.file for role_name, roles in variant.roles.items() for role in roles
            if not role.optional or role_name in wanted}
    return [f for f in variant.files if f.name in used]


def remote_file(name: str, file_name: str) -> RemoteFile:
    for variant in source(name).variants.values():
        for f in variant.files:
            if f.name == file_name:
                return f
    known = sorted({f.name for v in source(name).variants.values() for f in v.files})
    raise KeyError(f"{name}: no raw file named {file_name!r}; valid: {', '.join(known)}")


def file_override(options: Mapping[str, Any] | None, file_name: str) -> dict[str, Any]:
    """The user's override for one file: ``url`` (a mirror tried first), ``path`` (a local
    copy), checksum pins (``size``, ``sha256``, ``md5``, ``git_blob_sha1``) and ``inner``
    (member -> checksum pins) for an archive's members."""
    override = dict(((options or {}).get("files") or {}).get(file_name) or {})
    unknown = set(override) - {"url", "path", "inner", *CHECKSUM_KEYS}
    if unknown:
        raise KeyError(f"params.files.{file_name}: unknown keys {sorted(unknown)}; "
                       f"expected url, path, inner, {', '.join(CHECKSUM_KEYS)}")
    return override


def expected_checksums(spec: RemoteFile, options: Mapping[str, Any] | None = None) -> Checksums:
    """The registry's checksums, or, when the config pins any, exactly the config's pins:
    a user who pins a file (say a re-packed copy) takes responsibility for all of them."""
    pins = {k: v for k, v in file_override(options, spec.name).items() if k in CHECKSUM_KEYS}
    return Checksums.from_config(pins, f"params.files.{spec.name}") if pins else spec.checksums


def expected_inner(spec: RemoteFile, options: Mapping[str, Any] | None = None) -> dict[str, Checksums]:
    """Checksums of archive members, replaced as a whole by the config's ``inner`` pins."""
    pins = file_override(options, spec.name).get("inner")
    if pins is None:
        return dict(spec.inner)
    return {member: Checksums.from_config(values or {}, f"params.files.{spec.name}.inner.{member}")
            for member, values in pins.items()}


def package_file(spec: RemoteFile) -> Path | None:
    """Where the installed package holds `spec` (its ``package`` path), found without
    importing the package; None when the package or the file is not there."""
    package, _, inner = spec.package.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / inner
    return path if path.is_file() else None


def unavailable(name: str, options: Mapping[str, Any] | None, raw_dir: str | Path) -> str | None:
    """Why the configured variant cannot be had on this machine, or None. Only files
    taken from an installed package are judged here (a download fails when it runs):
    such a file is available when it is already in `raw_dir`, when the config gives a
    local path or a mirror for it, or when the package holds it."""
    if name not in SOURCES:
        return None
    for spec in files_needed(name, options):
        override = file_override(options, spec.name)
        if (spec.package and not (Path(raw_dir) / spec.name).exists() and not override.get("path")
                and not override.get("url") and package_file(spec) is None):
            package = spec.package.split("/")[0]
            return f"{spec.name} comes from the installed {package} package, not found: {spec.manual}"
    return None


def extracted_dir(raw_dir: Path, file_name: str) -> Path:
    return Path(raw_dir) / (file_name + EXTRACTED_SUFFIX)


def role_paths(name: str, raw_dir: str | Path, options: Mapping[str, Any] | None = None) -> dict[str, list[Path]]:
    """Role -> the paths a reader opens, resolved against what is on disk. A required
    role that is missing raises FileNotFoundError naming every candidate; an optional
    role that is not switched on (or not present) is left out."""
    raw_dir = Path(raw_dir)
    variant = chosen_variant(name, options)
    wanted = wanted_roles(options)
    resolved: dict[str, list[Path]] = {}
    for role_name, roles in variant.roles.items():
        paths = []
        for role in roles:
            if role.optional and role_name not in wanted:
                continue
            spec = next(f for f in variant.files if f.name == role.file)
            candidates = [raw_dir / spec.name if member is None else extracted_dir(raw_dir, spec.name) / member
                          for member in role.candidates]
            found = next((p for p in candidates if p.exists()), None)
            if found is None:
                raise FileNotFoundError(f"{name}: input {role_name!r} not found; looked for "
                                        + ", ".join(str(p) for p in candidates))
            paths.append(found)
        if paths:
            resolved[role_name] = paths
    return resolved


def check_params(name: str, options: Mapping[str, Any] | None, where: str | None = None) -> None:
    """Fail early (when the workflow starts) on source params that name no variant, no
    optional input or no file of the dataset, or give an extraction bound that is not a
    positive number. Reader options are checked by the reader. `where` names the params
    in messages (default ``datasets.<name>.params``)."""
    options = options or {}
    where = where or f"datasets.{name}.params"
    for key, types, kind in (("max_extract_bytes", int, "an integer"), ("max_extract_ratio", (int, float), "a number")):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, types) or value < 1):
            raise ValueError(f"{where}.{key}: expected {kind} >= 1, got {value!r}")
    variant = chosen_variant(name, options)
    optional = {role for role, roles in variant.roles.items() if all(r.optional for r in roles)}
    unknown_roles = sorted(wanted_roles(options) - optional)
    if unknown_roles:
        raise KeyError(f"{where}.with: {unknown_roles} are not optional inputs of the "
                       f"{options.get('variant') or source(name).default_variant!r} variant; valid: {sorted(optional)}")
    names = {f.name for f in variant.files}
    for file_name in (options.get("files") or {}):
        if file_name not in names:
            raise KeyError(f"{where}.files.{file_name}: not a file of this variant; valid: {', '.join(sorted(names))}")
        expected_checksums(remote_file(name, file_name), options)
        expected_inner(remote_file(name, file_name), options)
