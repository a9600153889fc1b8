"""One run end to end through imrl.runs: the record, its determinism, its failure path."""

from __future__ import annotations

import json

import pytest

from imrl.data.split import save_split
from imrl.runs.run import run_offline
from imrl.schemas import RunRecordError, validate_run

JOB = {"method": {}, "dataset": {}, "budget": {}, "evaluation": {"ks": [20], "table_k": 20, "batch_size": 64}}


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory, split_small):
    directory = tmp_path_factory.mktemp("split")
    save_split(split_small, directory)
    return directory


def _run(split_dir, out, method="random", seed=0, job=JOB):
    return run_offline("synthetic", method, seed, split_dir, job, out)


def test_same_seed_gives_byte_identical_metrics(split_dir, tmp_path):
    first = _run(split_dir, tmp_path / "a.json")
    second = _run(split_dir, tmp_path / "b.json")
    other = _run(split_dir, tmp_path / "c.json", seed=1)
    dump = lambda record: json.dumps(record["metrics"], sort_keys=True)  # noqa: E731
    assert first["status"] == "ok"
    assert dump(first) == dump(second)
    assert dump(first) != dump(other)
    on_disk = json.loads((tmp_path / "a.json").read_text())
    assert json.dumps(on_disk["metrics"], sort_keys=True) == dump(first)


def test_record_has_provenance_and_validates(split_dir, tmp_path):
    record = _run(split_dir, tmp_path / "r.json", method="markov")
    validate_run(record, "r.json")
    prov = record["provenance"]
    assert prov["device"] == "cpu" and prov["packages"]["torch"].startswith("2.13")
    assert len(prov["git_commit"]) >= 7 and prov["config_hash"]
    assert record["n_users"]["test"] > 0


def test_failing_method_writes_a_failed_record(split_dir, tmp_path):
    record = _run(split_dir, tmp_path / "f.json", method="markov", job={**JOB, "method": {"order": 2}})
    assert record["status"] == "failed" and record["metrics"] == {}
    assert "order" in record["error"]["message"] and "Traceback" in record["error"]["traceback"]
    assert json.loads((tmp_path / "f.json").read_text())["status"] == "failed"


def test_missing_split_is_a_failed_record_naming_the_file(tmp_path):
    record = _run(tmp_path / "nowhere", tmp_path / "m.json")
    assert record["status"] == "failed" and "nowhere" in record["error"]["message"]


def test_invalid_record_is_rejected_naming_the_key():
    with pytest.raises(RunRecordError, match="x.json"):
        validate_run({"schema_version": 1, "status": "maybe"}, "x.json")
