"""README.md, "Adding a method", followed to the letter: its blocks that name a file (the
offline and online templates, their registry lines, their config entries) are put
where they say on a copy of the project that has run the workflow; the dry run plans
only the new methods' runs and the report, and the workflow runs them to Table II and
the online results."""

from __future__ import annotations

import json
import re
import textwrap

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.test_registry_rerun import copy_project, planned, register, run_copy
from tests.test_workflow import tiny_config

SIMULATOR = {"episodes": 4, "test_every": 2, "test_episodes": 4, "n_envs": 4}


def readme_blocks() -> dict[str, str]:
    """Path named on a block's first line ("# <path>[, where]") -> the rest of the block."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("\n## Adding a method\n")[1].split("\n## ")[0]
    blocks = {}
    for body in re.findall(r"^```(?:python|yaml)\n(.*?)^```", section, flags=re.S | re.M):
        first, _, rest = body.partition("\n")
        named = re.match(r"# ([\w/.-]+\.(?:py|yaml))\b", first)
        if named:
            blocks[named.group(1)] = rest
    return blocks


def test_the_readme_names_both_templates_their_registration_and_config():
    blocks = readme_blocks()
    assert set(blocks) == {"baselines/itemknn.py", "baselines/itembandit.py", "imrl/registry.py",
                           "config/config.yaml"}
    assert "defaults = {" in blocks["baselines/itemknn.py"] and "ctx.generator()" in blocks["baselines/itemknn.py"]
    assert 'action_interface = "discrete"' in blocks["baselines/itembandit.py"]
    assert "def use_item_view" in blocks["baselines/itembandit.py"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project after a complete workflow run of `random`, offline and online."""
    project = copy_project(tmp_path_factory.mktemp("readme"))
    config = tiny_config(project, {"random": {}}, seeds=[0])
    with_simulators = yaml.safe_load(config.read_text())
    with_simulators["simulators"] = {"recsim": SIMULATOR, "recogym": SIMULATOR}
    config.write_text(yaml.safe_dump(with_simulators))
    result = run_copy(project, config)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return project, config


def test_the_templates_run_through_the_workflow(project):
    project, config = project
    blocks = readme_blocks()
    for path in ("baselines/itemknn.py", "baselines/itembandit.py"):
        (project / path).write_text(blocks[path])
    register(project, *blocks["imrl/registry.py"].strip().splitlines())
    with_new = yaml.safe_load(config.read_text())
    with_new["methods"].update(yaml.safe_load(textwrap.dedent(blocks["config/config.yaml"])))
    config.write_text(yaml.safe_dump(with_new))

    plan = planned(run_copy(project, config, "-n"))
    assert plan == {"jobs": {"train_offline": 1, "train_online": 2, "report": 1, "all": 1},
                    "runs": {("itemknn", "synthetic", 0), ("itembandit", "recsim", 0), ("itembandit", "recogym", 0)}}

    result = run_copy(project, config)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    offline = json.loads((project / "results/runs/synthetic/itemknn/seed0.json").read_text())
    assert offline["status"] == "ok" and offline["config"]["method"] == {"k": 50}
    assert offline["metrics"]["test"]["recall@20"] > 0
    for simulator in ("recsim", "recogym"):
        online = json.loads((project / f"results/runs/{simulator}/itembandit/seed0.json").read_text())
        assert online["status"] == "ok" and online["curve"]["episode"] and 0 <= online["metrics"]["ctr"] <= 1
    row = next(line for line in (project / "reports/table2.md").read_text().splitlines() if "itemknn" in line)
    assert "failed" not in row
    leaderboard = (project / "results/leaderboard.csv").read_text()
    assert "itemknn" in leaderboard and "itembandit" in leaderboard
