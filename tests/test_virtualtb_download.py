"""VirtualTB's weights from a mirror or a local copy, through the same config override as
the datasets' files (simulators.virtualtb.params.files.<file>): in the library, in the
workflow's download rule, and in `make`, which checks the loaded files against the
pins; and no retries when the registry's host cannot be resolved. Random networks of
the upstream shapes stand in for the weights, served over loopback only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import torch
import yaml

from imrl.data import download
from imrl.data.download import DownloadError
from imrl.envs.virtualtb import WEIGHT_FILES, VirtualTBNetworks, make
from tests import raw_fixtures as rf
from tests.conftest import REPO_ROOT, SMALL_PREPROCESS
from tests.loopback import Loopback

FAST = {"retries": 1, "backoff": 0.01, "timeout": 10, "deadline": 30, "progress": False}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """Random networks saved as the three upstream files, served over loopback."""
    folder = tmp_path_factory.mktemp("mirror")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        VirtualTBNetworks().save(folder)
    server = Loopback(files={f"/vtb/{name}": (folder / name).read_bytes() for name in WEIGHT_FILES})
    yield folder, server
    server.close()


@pytest.fixture
def offline(monkeypatch):
    """Every host name but loopback fails to resolve, as on a machine without network;
    returns the names looked up."""
    real, looked_up = socket.getaddrinfo, []

    def resolve(host, *args, **kwargs):
        looked_up.append(host)
        if host != "127.0.0.1":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return looked_up


def pins(folder, name):
    data = (folder / name).read_bytes()
    return {"sha256": rf.sha256(data), "size": len(data)}


@pytest.mark.parametrize("source", ["url", "path"])
def test_weights_from_a_mirror_or_a_local_copy_load_against_the_configs_pins(tmp_path, mirror, offline, source):
    folder, server = mirror
    files = {name: {source: f"{server.url}/vtb/{name}" if source == "url" else str(folder / name),
                    **pins(folder, name)} for name in WEIGHT_FILES}
    raw = tmp_path / "data/raw/virtualtb"
    server.requests.clear()
    for name in WEIGHT_FILES:
        download.fetch("virtualtb", name, raw, {"files": files}, **FAST)
        download.verify_file("virtualtb", name, raw, {"files": files})
        assert (raw / name).read_bytes() == (folder / name).read_bytes()
    assert sorted(path for path, _ in server.requests) == ([f"/vtb/{n}" for n in sorted(WEIGHT_FILES)]
                                                           if source == "url" else [])
    assert offline == (["127.0.0.1"] * 3 if source == "url" else [])    # the registry's host never looked up
    env = make(2, "continuous", weights_dir=raw, files=files)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 91)
    with pytest.raises(ValueError, match=f"{raw}: generator_model.pt: size mismatch: expected 112,180 bytes.*"
                                         "pin this copy's checksums in simulators.virtualtb.params.files"):
        make(1, "continuous", weights_dir=raw)    # random networks are not the registry's files


def test_unknown_file_or_key_in_the_override_is_named(tmp_path):
    with pytest.raises(KeyError, match=r"simulators.virtualtb.params.files.model.pt: not a file of this variant"):
        make(1, weights_dir=tmp_path, files={"model.pt": {"url": "http://127.0.0.1/model.pt"}})
    with pytest.raises(KeyError, match=r"params.files.leave_model.pt: unknown keys \['urll'\]"):
        make(1, weights_dir=tmp_path, files={"leave_model.pt": {"urll": "http://127.0.0.1/leave_model.pt"}})


def test_unresolvable_host_fails_at_once(tmp_path, offline):
    started = time.monotonic()
    with pytest.raises(DownloadError, match="cannot resolve the host name") as err:
        download.fetch("virtualtb", "action_model.pt", tmp_path, retries=4, backoff=5.0, progress=False)
    assert time.monotonic() - started < 3               # no backoff: 5 + 10 + 20 + 40 s if it retried
    assert offline == ["raw.githubusercontent.com"]
    assert "Clone https://github.com/eyounx/VirtualTaobao" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_the_workflow_download_rule_takes_the_simulators_override(tmp_path, mirror):
    folder, server = mirror
    files = {name: {"url": f"{server.url}/vtb/{name}", **pins(folder, name)} for name in WEIGHT_FILES}
    config = {"name": "virtualtb-mirror", "seeds": [0], "methods": {"random": {}},
              "evaluation": {"ks": [5], "table_k": 5},
              "datasets": {"synthetic": {"params": {}, "preprocess": SMALL_PREPROCESS}},
              "simulators": {"virtualtb": {"params": {"files": files}}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    # Anything but loopback goes to a proxy that is not there: this test cannot reach the internet.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
    env = {**os.environ, "http_proxy": proxy, "https_proxy": proxy, "no_proxy": "127.0.0.1"}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile"), "--workflow-profile",
               "none", "--directory", str(tmp_path), "--configfile", str(path), "--cores", "1"]
    targets = [f"data/raw/virtualtb/{name}.verified.json" for name in WEIGHT_FILES]
    result = subprocess.run(command + targets, capture_output=True, text=True, timeout=600, env=env)
    closed.close()
    assert result.returncode == 0, result.stderr[-4000:]
    for name in WEIGHT_FILES:
        assert (tmp_path / "data/raw/virtualtb" / name).read_bytes() == (folder / name).read_bytes()
    files["leave_model.pt"]["urll"] = files["leave_model.pt"].pop("url")
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(command + ["-n"], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode != 0
    assert "params.files.leave_model.pt: unknown keys ['urll']" in result.stdout + result.stderr
