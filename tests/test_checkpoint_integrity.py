"""Checkpoints prove what they are (imrl/checkpoint.py): a flipped byte, a truncated file,
a checkpoint of another configuration, seed or code version is logged, deleted, and the run
starts over, ending with the metrics of an uninterrupted run; ``provenance.resumed`` is true
only when a checkpoint was really resumed. tests/test_resume.py covers real resumes after
SIGKILL through the command line."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import torch

from imrl import checkpoint
from imrl.api import RunContext
from imrl.checkpoint import HEADER_BYTES, Checkpointer, read_header
from imrl.data.split import save_split
from imrl.runs.run import run_offline


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)


def context(tmp_path, log, **fields) -> RunContext:
    return RunContext(**{"seed": 1, "checkpoint_dir": tmp_path / "checkpoints", "checkpoint_every_s": 0.0,
                         "config_hash": "c0ffee", "log": log.append, **fields})


def saved(tmp_path, **fields) -> dict:
    """A checkpoint of a model, an optimiser and a generator that has drawn."""
    torch.manual_seed(0)
    model = Model()
    generator = torch.Generator().manual_seed(5)
    torch.rand(4, generator=generator)
    state = {"where": "step 3", "model": model, "optimiser": torch.optim.Adam(model.parameters()),
             "generator": generator, "device": torch.device("cpu")}
    Checkpointer(context(tmp_path, [], **fields), "offline", Model).save(state)
    return state


def test_a_saved_checkpoint_restores_whole_and_is_recorded(tmp_path):
    state = saved(tmp_path)
    log: list[str] = []
    ctx = context(tmp_path, log)
    restored = Checkpointer(ctx, "offline", Model).restore()
    assert restored is not None and ctx.resumes == ["step 3"]
    assert torch.equal(restored["model"].linear.weight, state["model"].linear.weight)
    assert torch.equal(torch.rand(4, generator=restored["generator"]), torch.rand(4, generator=state["generator"]))
    assert restored["device"] == torch.device("cpu")
    assert any(line.startswith("resumed from") for line in log)
    header = read_header(tmp_path / "checkpoints" / "offline-Model.pt")
    assert header["device"] == "cpu" and header["config_hash"] == "c0ffee" and header["seed"] == 1


def discarded(tmp_path, method=Model, **fields) -> str:
    """Restore the checkpoint; assert it was discarded (None, deleted, not recorded as a
    resume) and return what was logged."""
    log: list[str] = []
    ctx = context(tmp_path, log, **fields)
    assert Checkpointer(ctx, "offline", method).restore() is None
    assert not (tmp_path / "checkpoints" / f"offline-{method.__name__}.pt").exists()
    assert ctx.resumes == []
    (line,) = log
    assert line.startswith(f"checkpoint {tmp_path / 'checkpoints'}") and "discarded, the run starts over" in line
    return line


def flip(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["payload middle", "payload end", "header hash", "header field", "padding"])
def test_a_flipped_byte_is_discarded(tmp_path, where):
    saved(tmp_path)
    path = tmp_path / "checkpoints" / "offline-Model.pt"
    size, text = path.stat().st_size, path.read_bytes()[:HEADER_BYTES]
    offset = {"payload middle": (HEADER_BYTES + size) // 2, "payload end": size - 1,
              "header hash": text.index(b'"sha256": "') + 12, "header field": text.index(b'"c0ffee"') + 2,
              "padding": HEADER_BYTES - 2}[where]
    flip(path, offset)
    assert path.stat().st_size == size
    assert "corrupt" in discarded(tmp_path)


@pytest.mark.parametrize("keep", [0, 100, HEADER_BYTES, HEADER_BYTES + 100, -1])
def test_a_truncated_checkpoint_is_discarded(tmp_path, keep):
    saved(tmp_path)
    path = tmp_path / "checkpoints" / "offline-Model.pt"
    with open(path, "r+b") as fh:
        fh.truncate(keep if keep >= 0 else path.stat().st_size - 1)
    assert "truncated" in discarded(tmp_path)


@pytest.mark.parametrize("field, value", [("config_hash", "beef"), ("config_hash", None), ("seed", 2)])
def test_a_checkpoint_of_another_run_is_discarded(tmp_path, field, value):
    saved(tmp_path)
    line = discarded(tmp_path, **{field: value})
    assert "saved by another run" in line and field in line


def load_module(tmp_path, monkeypatch, name: str, source: str):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_a_checkpoint_of_edited_code_is_discarded(tmp_path, monkeypatch):
    """The same class name from a source file that changed: the code version differs."""
    before = load_module(tmp_path, monkeypatch, "method_v1", "class Method:\n    pass\n").Method
    after = load_module(tmp_path, monkeypatch, "method_v2", "class Method:\n    lr = 0.1\n").Method
    Checkpointer(context(tmp_path, []), "offline", before).save({"where": "epoch 1"})
    assert "code_version" in discarded(tmp_path, method=after)


def test_a_payload_that_no_longer_unpickles_is_discarded(tmp_path, monkeypatch):
    """The checksum holds but an object's class is gone (a helper module was removed)."""
    helper = load_module(tmp_path, monkeypatch, "vanishing_helper", "class Helper:\n    pass\n")
    Checkpointer(context(tmp_path, []), "offline", Model).save({"where": "step 1", "helper": helper.Helper()})
    monkeypatch.delitem(sys.modules, "vanishing_helper")
    (tmp_path / "vanishing_helper.py").unlink()
    assert "ModuleNotFoundError" in discarded(tmp_path)


class CudaGenerator:
    """Pickles as a CUDA generator does in a checkpoint (a 16-byte Philox state)."""

    def __reduce__(self):
        return checkpoint._generator, ("cuda:0", 11, bytes(16))


def test_a_gpu_checkpoint_restores_on_the_cpu_simulated(tmp_path, monkeypatch):
    """Without a GPU: storages tagged as CUDA ones (as torch.save tags them on a GPU), the
    run's device and a CUDA generator, restored by a CPU run."""
    gpu = torch.device("cuda", 0)
    model = Model()
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        Checkpointer(context(tmp_path, [], device=gpu), "offline", Model).save(
            {"where": "step 1", "model": model, "device": gpu, "generator": CudaGenerator(),
             "cpu_generator": torch.Generator().manual_seed(4)})
    log: list[str] = []
    ctx = context(tmp_path, log)
    restored = Checkpointer(ctx, "offline", Model).restore()
    assert restored is not None and ctx.resumes == ["step 1"], log
    assert restored["model"].linear.weight.device.type == "cpu"
    assert torch.equal(restored["model"].linear.weight, model.linear.weight)
    assert restored["device"] == torch.device("cpu")
    assert restored["generator"].device.type == "cpu" and restored["generator"].initial_seed() == 11
    assert torch.equal(torch.rand(2, generator=restored["cpu_generator"]),
                       torch.rand(2, generator=torch.Generator().manual_seed(4)))
    assert any("moved from cuda:0 to cpu" in line for line in log)
    assert any("1 random generator(s) changed device kind" in line for line in log)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_checkpoint_restores_on_the_cpu(tmp_path):
    gpu = torch.device("cuda", 0)
    model = Model().to(gpu)
    generator = torch.Generator(device=gpu).manual_seed(7)
    cpu_generator = torch.Generator().manual_seed(8)
    state = {"where": "step 1", "model": model, "optimiser": torch.optim.Adam(model.parameters()),
             "generator": generator, "cpu_generator": cpu_generator, "device": gpu}
    model(torch.ones(1, 3, device=gpu)).sum().backward()
    state["optimiser"].step()
    Checkpointer(context(tmp_path, [], device=gpu), "offline", Model).save(state)
    assert read_header(tmp_path / "checkpoints" / "offline-Model.pt")["device"] == "cuda:0"

    log: list[str] = []
    ctx = context(tmp_path, log, device=torch.device("cpu"))
    restored = Checkpointer(ctx, "offline", Model).restore()
    assert restored is not None and ctx.resumes == ["step 1"], log
    assert restored["device"] == torch.device("cpu")
    assert restored["model"].linear.weight.device.type == "cpu"
    assert torch.equal(restored["model"].linear.weight, model.linear.weight.cpu())
    exp_avg = next(iter(restored["optimiser"].state.values()))["exp_avg"]
    assert exp_avg.device.type == "cpu"
    assert restored["generator"].device.type == "cpu"
    assert torch.equal(torch.rand(3, generator=restored["cpu_generator"]), torch.rand(3, generator=cpu_generator))
    restored["model"](torch.ones(1, 3)).sum().backward()   # usable where it now is
    restored["optimiser"].step()
    assert any("moved from cuda:0 to cpu" in line for line in log)


# --- through the runner: a real training loop (SASRec's epochs) ----------------------------------

JOB = {"method": {"d": 16, "max_len": 10, "n_blocks": 1, "batch_size": 128, "patience": 100},
       "budget": {"epochs": 3}, "evaluation": {"ks": [10, 20], "batch_size": 1024}}


class Interrupted(BaseException):
    """Ends a run right after its first checkpoint, as a kill would (no record written)."""


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory, split_small):
    directory = tmp_path_factory.mktemp("split")
    save_split(split_small, directory)
    return directory


def run(split_dir, out, checkpoints, job=JOB) -> dict:
    return run_offline("synthetic-small", "sasrec", 3, split_dir, job, out, checkpoint_dir=checkpoints,
                       checkpoint_every_s=0.0)


def interrupted(split_dir, tmp_path, monkeypatch, job=JOB):
    """Leave the checkpoint of a run killed after its first save; return its path."""
    save = Checkpointer.save

    def save_then_stop(self, state):
        save(self, state)
        raise Interrupted

    with monkeypatch.context() as patch:
        patch.setattr(Checkpointer, "save", save_then_stop)
        with pytest.raises(Interrupted):
            run(split_dir, tmp_path / "killed.json", tmp_path / "checkpoints", job)
    (path,) = (tmp_path / "checkpoints").glob("*.pt")
    return path


@pytest.fixture(scope="module")
def straight(split_dir, tmp_path_factory):
    """Metrics of uninterrupted runs, by SASRec's d."""
    directory = tmp_path_factory.mktemp("straight")
    return {d: run(split_dir, directory / f"d{d}.json", None, {**JOB, "method": {**JOB["method"], "d": d}})
            for d in (16, 8)}


def test_a_real_resume_is_recorded_and_ends_as_an_uninterrupted_run(split_dir, tmp_path, monkeypatch, straight,
                                                                     capsys):
    interrupted(split_dir, tmp_path, monkeypatch)
    record = run(split_dir, tmp_path / "resumed.json", tmp_path / "checkpoints")
    assert "resumed from" in capsys.readouterr().out
    assert record["status"] == "ok" and record["provenance"]["resumed"] is True
    assert record["metrics"] == straight[16]["metrics"]
    assert straight[16]["provenance"]["resumed"] is False


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "another config"])
def test_a_bad_checkpoint_gives_a_fresh_run_with_uninterrupted_metrics(split_dir, tmp_path, monkeypatch, straight,
                                                                       capsys, damage):
    path = interrupted(split_dir, tmp_path, monkeypatch)
    job = JOB
    if damage == "flipped byte":
        flip(path, (HEADER_BYTES + path.stat().st_size) // 2)
    elif damage == "truncated":
        os.truncate(path, path.stat().st_size // 2)
    else:   # the checkpoint of d=16, rerun with d=8 (whose metrics differ)
        job = {**JOB, "method": {**JOB["method"], "d": 8}}
        assert straight[8]["metrics"] != straight[16]["metrics"]
    record = run(split_dir, tmp_path / "rerun.json", tmp_path / "checkpoints", job)
    out = capsys.readouterr().out
    assert "discarded, the run starts over" in out and "resumed from" not in out
    assert record["status"] == "ok", record["error"]
    assert record["provenance"]["resumed"] is False
    assert record["metrics"] == straight[job["method"]["d"]]["metrics"]
    assert not (tmp_path / "checkpoints").exists()
