# Validation of the config, the grid of runs, and input functions. No science here:
# every stage is `python -m imrl <stage>`.
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


wildcard_constraints:
    dataset="|".join(map(re.escape, registry.DATASETS)),
    method="|".join(map(re.escape, registry.METHODS)),
    seed=r"\d+",


def offline_runs():
    return expand("results/runs/{dataset}/{method}/seed{seed}.json",
                  dataset=DATASETS, method=OFFLINE_METHODS, seed=SEEDS)


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
        "table_k": config["evaluation"]["table_k"],
        "not_available": NOT_AVAILABLE,
    }, sort_keys=True)
