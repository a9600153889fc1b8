# Validation of the config, the grid of runs, and input functions. No science here:
# every stage is `python -m imrl <stage>`.
import glob
import json
import re
import sys

from imrl import config as imrl_config
from imrl import registry

imrl_config.validate(config, ", ".join(map(str, workflow.configfiles)) or "--config")
PYTHON = sys.executable
SEEDS = config["seeds"]


def _not_available():
    missing = [f"method {m}" for m in config["methods"] if not registry.METHODS[m].available]
    missing += [f"dataset {d}" for d in config["datasets"] if registry.DATASETS[d] is None]
    missing += [f"simulator {s}" for s in config["simulators"] if registry.SIMULATORS[s] is None]
    return missing


NOT_AVAILABLE = _not_available()
if NOT_AVAILABLE:
    message = ("NOT AVAILABLE YET (named by the config, implementation not landed; left out of this run "
               "and listed in the reports): " + ", ".join(NOT_AVAILABLE))
    if config["strict"]:
        raise WorkflowError(message + " (strict: true)")
    print(message, file=sys.stderr)

DATASETS = [d for d in config["datasets"] if registry.DATASETS[d] is not None]
OFFLINE_METHODS = [m for m in config["methods"]
                   if registry.METHODS[m].available and registry.OFFLINE in registry.METHODS[m].settings]
SIMULATORS = [s for s in config["simulators"] if registry.SIMULATORS[s] is not None]
ONLINE_METHODS = [m for m in config["methods"]
                  if registry.METHODS[m].available and registry.ONLINE in registry.METHODS[m].settings]


wildcard_constraints:
    dataset="|".join(map(re.escape, registry.DATASETS)),
    method="|".join(map(re.escape, registry.METHODS)),
    seed=r"\d+",


def offline_runs():
    return expand("results/runs/{dataset}/{method}/seed{seed}.json",
                  dataset=DATASETS, method=OFFLINE_METHODS, seed=SEEDS)


def online_runs():
    """Runs on the simulators that are available (none until a simulator lands)."""
    return expand("results/runs/{simulator}/{method}/seed{seed}.json",
                  simulator=SIMULATORS, method=ONLINE_METHODS, seed=SEEDS)


def report_inputs():
    """Everything the reports are made from: the runs, the paper's transcribed numbers,
    the leaderboard submissions and the report code (a change to any reruns them)."""
    code = [str(registry.PROJECT_ROOT / path) for path in registry.source_files("imrl.report.build")]
    return {
        "runs": offline_runs() + online_runs(),
        # The project's copy: a run in another --directory has no results/reported of its own.
        "reported": str(registry.PROJECT_ROOT / "results/reported/imrl-paper-table2.csv"),
        "submissions": sorted(glob.glob("results/submissions/**/*.json", recursive=True)),
        "code": code + [str(registry.PROJECT_ROOT / "imrl/report/leaderboard_page.html")],
    }


def method_sources(wildcards):
    """Code the run depends on: a change to any of it reruns the run."""
    spec = registry.method(wildcards.method)
    files = set(registry.source_files("imrl.runs.run")) | set(registry.source_files(spec.module))
    return sorted(str(registry.PROJECT_ROOT / path) for path in files)


def offline_job(wildcards):
    """The resolved configuration of one offline run (recorded in its results JSON)."""
    dataset = config["datasets"][wildcards.dataset]
    return json.dumps({
        "method": config["methods"][wildcards.method],
        "dataset": dataset,
        "budget": dataset.get("budget", {}),
        "evaluation": config["evaluation"],
    }, sort_keys=True)


def report_config():
    """What the report needs to know of the config: order of rows and columns, and
    what was named but is not available."""
    return json.dumps({
        "name": config["name"],
        "datasets": DATASETS,
        "methods": OFFLINE_METHODS,
        "simulators": SIMULATORS,
        "online_methods": ONLINE_METHODS,
        "table_k": config["evaluation"]["table_k"],
        "not_available": NOT_AVAILABLE,
    }, sort_keys=True)
