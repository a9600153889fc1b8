"""A method's registry entry touches only its own runs: on a copy of the project that has
run the workflow, a comment in imrl/registry.py plans nothing, editing one entry plans
that method's runs (and the report), and a new method plans its runs and the report."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.test_workflow import tiny_config

#: What the workflow reads of the project (code, rules, schema, the paper's numbers).
PROJECT_PARTS = ["Snakefile", "rules", "imrl", "baselines", "config", "results/reported"]
REGISTRY_LIST = "METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in [\n"


def copy_project(dest: Path) -> Path:
    for part in PROJECT_PARTS:
        source = REPO_ROOT / part
        if source.is_dir():
            shutil.copytree(source, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / part)
    return dest


def run_copy(project: Path, config: Path, *extra: str) -> subprocess.CompletedProcess:
    """Snakemake on the copy, in the copy: its imrl and baselines are the ones imported (the
    working directory comes first on `python -m`'s path, before PYTHONPATH)."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(project / "Snakefile"),
                           "--workflow-profile", "none", "--directory", str(project), "--cores", "2", *extra,
                           "--configfile", str(config)], capture_output=True, text=True, timeout=900, env=env,
                          cwd=project)


def register(project: Path, *lines: str) -> None:
    """Add MethodSpec lines at the top of the copy's registry."""
    registry = project / "imrl/registry.py"
    text = registry.read_text()
    assert REGISTRY_LIST in text
    registry.write_text(text.replace(REGISTRY_LIST, REGISTRY_LIST + "".join(f"    {line}\n" for line in lines)))


def planned(result: subprocess.CompletedProcess) -> dict[str, object]:
    """What a dry run plans: the count of jobs per rule, and the (method, place, seed) of
    each training job."""
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    if "Nothing to be done" in result.stdout + result.stderr:
        return {"jobs": {}, "runs": set()}
    table = result.stdout.split("Job stats:")[1].split("\n\n")[0]
    jobs = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if rule != "total"}
    runs = set(re.findall(r"wildcards: (?:dataset|simulator)=([\w-]+), method=([\w-]+), seed=(\d+)", result.stdout))
    return {"jobs": jobs, "runs": {(method, place, int(seed)) for place, method, seed in runs}}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project after a complete workflow run of two methods."""
    project = copy_project(tmp_path_factory.mktemp("project"))
    config = tiny_config(project, {"random": {}, "popularity": {}}, seeds=[0])
    result = run_copy(project, config)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert planned(run_copy(project, config, "-n")) == {"jobs": {}, "runs": set()}
    return project, config


def test_a_comment_in_the_registry_plans_nothing(project):
    project, config = project
    registry = project / "imrl/registry.py"
    original = registry.read_text()
    registry.write_text(original.replace(REGISTRY_LIST, REGISTRY_LIST + "    # a comment\n"))
    try:
        assert planned(run_copy(project, config, "-n")) == {"jobs": {}, "runs": set()}
    finally:
        registry.write_text(original)


def test_editing_one_entry_plans_only_its_runs(project):
    project, config = project
    registry = project / "imrl/registry.py"
    original = registry.read_text()
    entry = '"most popular training items")'
    assert entry in original
    registry.write_text(original.replace(entry, '"most popular training items", gpu=True)'))
    try:
        plan = planned(run_copy(project, config, "-n"))
    finally:
        registry.write_text(original)
    assert plan == {"jobs": {"train_offline": 1, "report": 1, "all": 1}, "runs": {("popularity", "synthetic", 0)}}


def test_a_new_method_plans_only_its_runs_and_the_report(project):
    project, config = project
    registry = project / "imrl/registry.py"
    original = registry.read_text()
    (project / "baselines/constant.py").write_text(
        "import torch\nfrom imrl.api import OfflineMethod\n\n\n"
        "class Constant(OfflineMethod):\n    defaults = {}\n\n"
        "    def fit(self, split):\n        self.n_items = split.n_items\n\n"
        "    def score(self, users, phase):\n        return torch.zeros(len(users), self.n_items)\n")
    register(project, 'MethodSpec("constant", "baselines.constant:Constant", (OFFLINE,), "all items equal"),')
    with_new = yaml.safe_load(config.read_text())
    with_new["methods"]["constant"] = {}
    new_config = config.with_name("with_new.yaml")
    new_config.write_text(yaml.safe_dump(with_new))
    try:
        # Registered but not in the config: nothing; in the config: its run and the report.
        assert planned(run_copy(project, config, "-n")) == {"jobs": {}, "runs": set()}
        plan = planned(run_copy(project, new_config, "-n"))
    finally:
        registry.write_text(original)
    assert plan == {"jobs": {"train_offline": 1, "report": 1, "all": 1}, "runs": {("constant", "synthetic", 0)}}
