"""MovieLens-100K and -1M readers on generated files of their formats (never real data):
counts, genres and demographics as written, both ml-100k layouts (GroupLens files and
RecBole atomic files) giving the same dataset, malformed lines as errors naming the file
and line, and the recbole variant's files taken from an installed package and verified.
The download of the GroupLens zips over loopback is test_datasets_pipeline's (both are
in raw_fixtures.BUILDERS). Without the recbole package, the workflow leaves ml-100k out
and says why."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from imrl.data import download, sources
from imrl.data.download import DownloadError, VerificationError
from imrl.data.interactions import FormatError
from imrl.data.readers import movielens1m, movielens100k
from tests import raw_fixtures as rf
from tests.test_readers import check_counts, write
from tests.test_workflow import SNAKEMAKE


def ml100k_paths(tmp_path):
    p = write(tmp_path, rf.movielens_100k().inner["ml-100k.zip"])
    return {"ratings": [p["ml-100k/u.data"]], "movies": [p["ml-100k/u.item"]], "users": [p["ml-100k/u.user"]]}


def atomic_paths(tmp_path):
    p = write(tmp_path, rf.movielens_100k_atomic().files)
    return {"inter": [p["ml-100k.inter"]], "item": [p["ml-100k.item"]], "user": [p["ml-100k.user"]]}


def test_ml100k_counts_genres_and_demographics(tmp_path):
    fixture, ml = rf.movielens_100k(), rf.small_movielens()
    result = movielens100k.convert(ml100k_paths(tmp_path))
    check_counts(result, fixture)
    data, stats = result.data, result.stats
    assert data.table["timestamp"].tolist() == [t for *_, t in ml.ratings]       # file order kept
    # The first flagged genre; movie 3 is flagged "unknown" only: no category.
    movie = {int(raw): k for k, raw in enumerate(data.item_ids)}
    vocabulary = stats.vocabularies["item_categories"]
    for raw, genres in ml.genres.items():
        if raw in movie:
            code = data.item_categories[movie[raw]]
            assert (vocabulary[code] if code >= 0 else None) == (genres[0] if genres else None)
    names = stats.vocabularies["user_features"]
    assert names[0] == "age" and "zip_region=non-US" in names and "occupation=writer" in names
    assert data.user_features.shape == (fixture.users, len(names))
    assert np.allclose(data.user_features.sum(1) - data.user_features[:, 0], 3)   # gender, job, region one-hot
    first_user = int(data.user_ids[0])
    assert data.user_features[0, 0] == pytest.approx(ml.users[first_user][0] / 100)


def test_ml100k_atomic_layout_gives_the_same_dataset(tmp_path):
    grouplens = movielens100k.convert(ml100k_paths(tmp_path / "grouplens"))
    atomic = movielens100k.convert(atomic_paths(tmp_path / "recbole"), {"variant": "recbole"})
    check_counts(atomic, rf.movielens_100k_atomic())
    a, b = grouplens.data, atomic.data
    assert a.table.equals(b.table)
    assert list(a.user_ids) == list(b.user_ids) and list(a.item_ids) == list(b.item_ids)
    assert np.array_equal(a.item_categories, b.item_categories) and np.array_equal(a.user_features, b.user_features)
    assert grouplens.stats.vocabularies == atomic.stats.vocabularies


@pytest.mark.parametrize("file, text, message", [
    ("u.data", "1\t2\t3\t881250949\n1\t5\tfour\t881250950\n", r"u.data:2: expected a numeric rating"),
    ("u.data", "1\t2\t3\t881250949\n1 5 4 881250950\n", r"u.data:2: expected 4 tab-separated fields"),
    ("u.item", "1|Toy Story (1995)|01-Jan-1995||url" + "|0" * 18 + "\n", r"u.item:1: expected 24 '\|'-separated"),
    ("u.item", "1|Toy Story (1995)|01-Jan-1995||url" + "|0" * 18 + "|2\n", r"u.item:1: .*genre flags 0 or 1"),
    ("u.user", "1|24|M|technician|85711\n2|fifty|F|other|94043\n", r"u.user:2: expected an integer age"),
    ("u.user", "1|24|M|technician\n", r"u.user:1: expected 5 '\|'-separated fields"),
    # Documented ranges (whole stars 1-5, unix seconds), and digits that str.isdigit takes but int refuses.
    ("u.data", "1\t2\t3\t881250949\n1\t5\t6\t881250950\n", r"u.data:2: expected a rating of whole stars 1 to 5"),
    ("u.data", "1\t2\t3\t881250949\n1\t5\t3.5\t881250950\n", r"u.data:2: expected a rating of whole stars"),
    ("u.data", "1\t2\t3\t881250949\n1\t5\t4\t-1\n", r"u.data:2: expected a non-negative timestamp"),
    ("u.data", "1\t2\t3\t881250949\n\u00b2\t5\t4\t881250950\n", r"u.data:2: not utf-8 text"),
    ("u.user", "1|24|M|technician|85711\n2|\u00b2|F|other|94043\n", r"u.user:2: expected an integer age, got '\u00b2'"),
    ("u.item", "\u00b2|Toy Story (1995)|01-Jan-1995||url" + "|0" * 19 + "\n", r"u.item:1: expected 24"),
])
def test_ml100k_malformed_line_names_file_and_line(tmp_path, file, text, message):
    paths = ml100k_paths(tmp_path)
    role = {"u.data": "ratings", "u.item": "movies", "u.user": "users"}[file]
    paths[role][0].write_bytes(text.encode("latin-1"))
    with pytest.raises(FormatError, match=message):
        movielens100k.convert(paths)


def test_ml100k_takes_no_reader_options(tmp_path):
    with pytest.raises(KeyError, match=r"ml-100k: unknown params \['min_age'\]"):
        movielens100k.convert(ml100k_paths(tmp_path), {"min_age": 5})


def ml1m_paths(tmp_path):
    p = write(tmp_path, rf.movielens_1m().inner["ml-1m.zip"])
    return {"ratings": [p["ml-1m/ratings.dat"]], "movies": [p["ml-1m/movies.dat"]], "users": [p["ml-1m/users.dat"]]}


def test_ml1m_counts_genres_and_demographics(tmp_path):
    fixture = rf.movielens_1m()
    result = movielens1m.convert(ml1m_paths(tmp_path))
    check_counts(result, fixture)
    data, stats = result.data, result.stats
    assert set(stats.vocabularies["item_categories"]) <= set(rf.ML_GENRES)
    assert (data.item_categories >= 0).all()
    names = stats.vocabularies["user_features"]
    assert "age_group=Under 18" in names and "occupation=academic/educator" in names and "gender=F" in names
    assert np.allclose(data.user_features.sum(1), 4)      # gender, age group, occupation, zip region one-hot


@pytest.mark.parametrize("file, text, message", [
    ("ratings.dat", "1::2::3::978300760\n1::2::3\n", r"ratings.dat:2: expected 4 '::'-separated fields"),
    ("ratings.dat", "1::2::3::978300760\n1::x::3::978300760\n", r"ratings.dat:2: expected integer UserID"),
    ("ratings.dat", "1::2::3::978300760\n1::2::3:4::978300760\n", r"ratings.dat:2: expected a numeric Rating"),
    ("movies.dat", "1::Toy Story (1995)::Animation\n2::Jumanji (1995)\n", r"movies.dat:2: expected MovieID::Title"),
    ("users.dat", "1::F::1::10::48067\n2::M::30::16::70072\n", r"users.dat:2: expected UserID::Gender::Age"),
    ("users.dat", "1::F::1::21::48067\n", r"users.dat:1: .*occupation 0-20"),
    ("users.dat", "1::F::1::\u00b2::48067\n", r"users.dat:1: .*occupation 0-20"),
    ("ratings.dat", "1::2::3::978300760\n1::2::0::978300760\n", r"ratings.dat:2: expected a Rating of whole stars 1 to 5"),
    ("ratings.dat", "1::2::3::978300760\n1::2::99::978300760\n", r"ratings.dat:2: expected a Rating of whole stars"),
    ("ratings.dat", "1::2::3::978300760\n1::2::3::-5\n", r"ratings.dat:2: expected a non-negative Timestamp"),
    ("movies.dat", "1::Toy Story (1995)::Animation\n\u00b2::Jumanji (1995)::Adventure\n", r"movies.dat:2: expected"),
])
def test_ml1m_malformed_line_names_file_and_line(tmp_path, file, text, message):
    paths = ml1m_paths(tmp_path)
    role = {"ratings.dat": "ratings", "movies.dat": "movies", "users.dat": "users"}[file]
    paths[role][0].write_bytes(text.encode("latin-1"))
    with pytest.raises(FormatError, match=message):
        movielens1m.convert(paths)


# --------------------------------------------------------------------------------------
# The recbole variant: files located in an installed package, verified, copied to data/raw.

@pytest.fixture
def fake_recbole(tmp_path, monkeypatch):
    """A `recbole` package on sys.path holding generated ml-100k atomic files."""
    package = tmp_path / "site" / "recbole"
    folder = package / "dataset_example" / "ml-100k"
    folder.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    fixture = rf.movielens_100k_atomic()
    for name, data in fixture.files.items():
        (folder / name).write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "recbole", raising=False)
    return folder, fixture


def pins(fixture: rf.RawFixture) -> dict:
    return {"variant": "recbole", "files": {name: {"sha256": rf.sha256(data), "size": len(data)}
                                            for name, data in fixture.files.items()}}


def test_recbole_variant_is_copied_from_the_package_and_verified(tmp_path, fake_recbole):
    folder, fixture = fake_recbole
    raw = tmp_path / "data/raw/ml-100k"
    params = {"variant": "recbole"}
    assert sources.package_file(sources.remote_file("ml-100k", "ml-100k.inter")) == folder / "ml-100k.inter"
    # The registry pins the sha256 of recbole 1.2.1's copy: generated files are refused...
    with pytest.raises(VerificationError, match=r"ml-100k.inter: size mismatch"):
        download.fetch("ml-100k", "ml-100k.inter", raw, params, progress=False)
    assert not (raw / "ml-100k.inter").exists()
    # ... and accepted when the config pins theirs.
    for spec in sources.files_needed("ml-100k", params):
        record = download.fetch("ml-100k", spec.name, raw, pins(fixture), progress=False)
        assert record["path"] == str(folder / spec.name) and record["checked"] == ["size", "sha256"]
        download.verify_file("ml-100k", spec.name, raw, pins(fixture))
    result = movielens100k.convert(sources.role_paths("ml-100k", raw, params), params)
    check_counts(result, fixture)


def test_recbole_variant_without_the_package_is_not_available(tmp_path, fake_recbole):
    folder, fixture = fake_recbole
    for name in fixture.files:
        (folder / name).unlink()
    raw = tmp_path / "data/raw/ml-100k"
    params = {"variant": "recbole"}
    reason = sources.unavailable("ml-100k", params, raw)
    assert "ml-100k.inter comes from the installed recbole package, not found" in reason
    assert "pip install --no-deps recbole==1.2.1" in reason
    with pytest.raises(DownloadError, match=r"ml-100k/ml-100k.inter: NOT AVAILABLE: .*pip install"):
        download.fetch("ml-100k", "ml-100k.inter", raw, params, progress=False)
    # Not judged for the download variant, nor once the files are in data/raw.
    assert sources.unavailable("ml-100k", {}, raw) is None
    raw.mkdir(parents=True, exist_ok=True)
    for name in fixture.files:
        (raw / name).write_bytes(b"placed by hand")
    assert sources.unavailable("ml-100k", params, raw) is None


def test_installed_recbole_copy_matches_the_registry_and_the_published_counts(tmp_path):
    """The real copy in the installed wheel: read where it lies (checksums, then counts only)."""
    specs = sources.files_needed("ml-100k", {"variant": "recbole"})
    located = {spec.name: sources.package_file(spec) for spec in specs}
    if None in located.values():
        pytest.skip("the recbole package (1.2.1) is not installed")
    for spec in specs:
        download.verify(located[spec.name], spec.checksums)
    data = movielens100k.convert({"inter": [located["ml-100k.inter"]], "item": [located["ml-100k.item"]],
                                  "user": [located["ml-100k.user"]]}).data
    assert (data.n_users, data.n_items, len(data.table)) == (943, 1682, 100_000)


def test_workflow_leaves_ml100k_out_when_recbole_is_missing(tmp_path):
    """A `recbole` without the files shadows the installed one: the dry run says NOT
    AVAILABLE with the way to get the files, and plans nothing for ml-100k."""
    (tmp_path / "site" / "recbole").mkdir(parents=True)
    (tmp_path / "site" / "recbole" / "__init__.py").write_text("")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "name": "no-recbole", "seeds": [0], "methods": {"random": {}}, "evaluation": {"ks": [5], "table_k": 5},
        "datasets": {"ml-100k": {"params": {"variant": "recbole"}, "preprocess": {"min_rating": 4, "kcore": 5}}}}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "site"),
                                                                     os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", str(config), "-n"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NOT AVAILABLE" in result.stderr and "dataset ml-100k (ml-100k.inter comes from the installed recbole" \
        in result.stderr and "pip install --no-deps recbole==1.2.1" in result.stderr
    assert "ml-100k" not in result.stdout
