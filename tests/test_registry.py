"""Every available method imports, implements the interface of its settings, and its
source files are found for the workflow."""

from __future__ import annotations

import pytest

from imrl import api, registry

AVAILABLE = [spec for spec in registry.METHODS.values() if spec.available]


@pytest.mark.parametrize("spec", AVAILABLE, ids=lambda s: s.name)
def test_available_methods_implement_their_interfaces(spec):
    if registry.OFFLINE in spec.settings:
        assert issubclass(spec.load(registry.OFFLINE), api.OfflineMethod)
    if registry.ONLINE in spec.settings:
        assert issubclass(spec.load(registry.ONLINE), api.OnlineAgent)
    assert spec.module.replace(".", "/") + ".py" in registry.source_files(spec.module)


def test_unknown_and_unavailable_methods_say_so():
    with pytest.raises(KeyError, match="valid methods"):
        registry.method("nope")
    missing = [spec for spec in registry.METHODS.values() if not spec.available]
    for spec in missing:
        with pytest.raises(LookupError, match="not implemented yet"):
            spec.load()


def test_source_files_follow_imports():
    files = registry.source_files("imrl.runs.run")
    assert "imrl/runs/run.py" in files and "imrl/api.py" in files and "imrl/data/split.py" in files
    assert not any(f.startswith("baselines/") for f in files)


def test_unknown_method_parameter_is_an_error():
    cls = registry.method("popularity").load()
    with pytest.raises(ValueError, match="unknown parameter.*bogus"):
        cls({"bogus": 1}, api.RunContext(seed=0))
