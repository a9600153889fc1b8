"""The offline datasets end to end on generated raw files served over loopback HTTP:
download -> verify -> extract -> convert -> split (and the environment summary, and
Table I), first through the library functions the workflow calls, then through the
real Snakemake rules. The parsed counts must equal what the generator wrote, and
nothing half-written may be left in data/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imrl.data import download, extract, interactions, preprocess, sources
from imrl.data.convert import convert_dataset
from imrl.data.split import load_split, save_split
from imrl.envs.summary import environment_summary
from imrl.report.table1 import PUBLISHED, write_table1
from tests import raw_fixtures as rf
from tests.conftest import REPO_ROOT
from tests.loopback import Loopback

PREPROCESS = {"min_rating": None, "kcore": 2, "valid_frac": 0.1, "test_frac": 0.1, "min_interactions": 3}
FAST = {"retries": 1, "backoff": 0.01, "timeout": 10, "progress": False}
LEFTOVER_MARKS = (".partial", ".tmp", ".rejected")


@pytest.fixture(scope="module")
def served():
    fixtures = {name: build() for name, build in rf.BUILDERS.items()}
    server = Loopback(files={f"/{f.dataset}/{name}": data for f in fixtures.values() for name, data in f.files.items()})
    yield server, fixtures
    server.close()


def assert_nothing_half_written(data_dir: Path) -> None:
    left = [str(p) for p in data_dir.rglob("*") if p.name.endswith(LEFTOVER_MARKS)
            or (p.name.startswith(".") and p.name != ".snakemake_timestamp")]   # snakemake's folder marker
    assert left == []


def assert_counts(out: Path, fixture: rf.RawFixture) -> None:
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["n_users"], meta["n_items"], meta["n_interactions"]) == \
        (fixture.users, fixture.items, fixture.interactions)
    stats = json.loads((out / "reader.json").read_text())
    assert {k: stats["counts"].get(k, 0) for k in fixture.counts} == fixture.counts
    assert sum(stats["skipped"].values()) == fixture.skipped


@pytest.mark.parametrize("dataset", list(rf.BUILDERS))
def test_library_chain(tmp_path, served, dataset):
    server, fixtures = served
    fixture = fixtures[dataset]
    params = rf.pinned_params(fixture, server.url)
    raw, out = tmp_path / "data/raw" / dataset, tmp_path / "data/processed" / dataset
    for spec in sources.files_needed(dataset, params):
        download.fetch(dataset, spec.name, raw, params, **FAST)
        download.verify_file(dataset, spec.name, raw, params)
        if spec.archive:
            extract.extract_file(dataset, spec.name, raw, params)
    convert_dataset(dataset, raw, out, params)
    assert_counts(out, fixture)
    split = preprocess.build_split(interactions.load(out), PREPROCESS, dataset)
    save_split(split, out / "split")
    summary = environment_summary(load_split(out / "split"))
    assert summary["users"] == split.n_users and summary["episodes"]["users_with_targets"] > 0
    if dataset in ("book-crossing", "goodreads"):
        assert summary["ordering"]["order"] == "file order (no timestamps)"
    rows = write_table1([dataset], tmp_path / "data/processed", tmp_path / "reports",
                        REPO_ROOT / "results/reported/imrl-paper-table1.csv")
    first = "published" if dataset in PUBLISHED else "paper"     # the paper does not use MovieLens-100K/-1M
    assert [r["stage"] for r in rows] == [first, "raw", "preprocessed"]
    assert rows[1]["interactions"] == fixture.interactions
    assert_nothing_half_written(tmp_path / "data")


def test_real_workflow_rules(tmp_path, served):
    """Two datasets cover every rule path (an archive with inner checksums; plain files
    pinned by git blob ids; optional side files): each job starts an interpreter, so
    the six formats' parsing is covered by test_library_chain through the same functions."""
    server, every = served
    fixtures = {name: every[name] for name in ("netflix", "book-crossing")}
    config = {
        "name": "datasets-tiny", "seeds": [0], "methods": {"random": {}},
        "evaluation": {"ks": [5], "table_k": 5},
        "datasets": {name: {"params": rf.pinned_params(f, server.url), "preprocess": PREPROCESS}
                     for name, f in fixtures.items()},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    targets = [f"data/processed/{name}/split/env.json" for name in fixtures] + ["reports/table1.md"]
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile"),
                             "--workflow-profile", "none", "--directory", str(tmp_path), "--configfile", str(path),
                             "--cores", "2", *targets], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    for name, fixture in fixtures.items():
        assert_counts(tmp_path / "data/processed" / name, fixture)
        assert (tmp_path / "data/raw" / name).is_dir()
    table = (tmp_path / "reports/table1.md").read_text()
    assert "Netflix" in table and "MovieID:" in table and "Book-Crossing" in table
    assert_nothing_half_written(tmp_path / "data")
