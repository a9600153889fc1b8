# Validation of the config, the grid of runs, and input functions. No science here:
# every stage is `python -m imrl <stage>`.
import glob
import json
import re
import sys
from pathlib import Path

from imrl import config as imrl_config
from imrl import registry
from imrl.data import sources as raw_sources
from imrl.data.sources import VIRTUALTB
from imrl.runs import failures

imrl_config.validate(config, ", ".join(map(str, workflow.configfiles)) or "--config")
PYTHON = sys.executable
SEEDS = config["seeds"]
CHECKPOINT_SECONDS = config["resources"]["checkpoint_minutes"] * 60


VIRTUALTB_WEIGHTS = [f"data/raw/virtualtb/{f.name}" for f in VIRTUALTB.variant().files]


def _virtualtb_left_out():
    """VirtualTB needs three downloaded weight files. With `download: false` (the
    offline default) and the files absent, it is left out and the reports say why."""
    settings = config["simulators"].get("virtualtb")
    if settings is None or settings["download"] or all(Path(f).exists() for f in VIRTUALTB_WEIGHTS):
        return []
    return [f"simulator virtualtb (its weights are not in data/raw/virtualtb and download is false: "
            f"set simulators.virtualtb.download: true, or place {', '.join(Path(f).name for f in VIRTUALTB_WEIGHTS)} "
            f"there by hand; see SIMULATORS.md)"]


def _datasets_left_out():
    """Datasets whose raw files come from an installed package that is missing (the
    ml-100k atomic files of `recbole`): left out, and the reports say why."""
    reasons = {d: raw_sources.unavailable(d, config["datasets"][d].get("params", {}), f"data/raw/{d}")
               for d in config["datasets"]}
    return {d: reason for d, reason in reasons.items() if reason}


DATASETS_LEFT_OUT = _datasets_left_out()


def _not_available():
    missing = [f"method {m}" for m in config["methods"] if not registry.METHODS[m].available]
    missing += [f"dataset {d}" for d in config["datasets"] if registry.DATASETS[d] is None]
    missing += [f"dataset {d} ({reason})" for d, reason in DATASETS_LEFT_OUT.items()]
    missing += [f"simulator {s}" for s in config["simulators"] if registry.SIMULATORS[s] is None]
    return missing + _virtualtb_left_out()


NOT_AVAILABLE = _not_available()
if NOT_AVAILABLE:
    message = ("NOT AVAILABLE (named by the config, but not implemented yet or missing its input; left out of this run "
               "and listed in the reports): " + ", ".join(NOT_AVAILABLE))
    if config["strict"]:
        raise WorkflowError(message + " (strict: true)")
    print(message, file=sys.stderr)

DATASETS = [d for d in config["datasets"] if registry.DATASETS[d] is not None and d not in DATASETS_LEFT_OUT]


def _methods_in(setting):
    """Available methods of the config that run in `setting` (the config's `settings` may narrow it)."""
    return [m for m in config["methods"] if registry.METHODS[m].available
            and setting in config["settings"].get(m, registry.METHODS[m].settings)]


OFFLINE_METHODS = _methods_in(registry.OFFLINE)
SIMULATORS = [s for s in config["simulators"] if registry.SIMULATORS[s] is not None
              and not (s == "virtualtb" and _virtualtb_left_out())]
ONLINE_METHODS = _methods_in(registry.ONLINE)


wildcard_constraints:
    dataset="|".join(map(re.escape, registry.DATASETS)),
    simulator="|".join(map(re.escape, registry.SIMULATORS)),
    method="|".join(map(re.escape, registry.METHODS)),
    seed=r"\d+",


def offline_runs():
    return expand("results/runs/{dataset}/{method}/seed{seed}.json",
                  dataset=DATASETS, method=OFFLINE_METHODS, seed=SEEDS)


def online_runs():
    """Runs on the simulators that are available (none until a simulator lands)."""
    return expand("results/runs/{simulator}/{method}/seed{seed}.json",
                  simulator=SIMULATORS, method=ONLINE_METHODS, seed=SEEDS)


def set_aside_failed_runs():
    """At the end of a workflow run: the summary of the grid's failed runs (None when
    none failed), whose records are moved to results/failed so the next run retries them."""
    failed = failures.set_aside(offline_runs() + online_runs())
    return failures.summary(failed) if failed else None


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


def _run_sources(method, setting, *modules):
    """Code a run depends on: a change to any of it reruns the run. The registry is not
    part of it (``run_entry`` is: a change to another method's entry reruns nothing here)."""
    target = registry.method(method).target_for(setting)
    files = set(registry.source_files("imrl.runs.run"))
    for module in (target.split(":")[0], *modules):
        files |= set(registry.source_files(module))
    return sorted(str(registry.PROJECT_ROOT / path) for path in files)


def run_entry(setting):
    """The method's registry entry as a run in `setting` uses it (a parameter of the run)."""
    return lambda wildcards: json.dumps(registry.method(wildcards.method).run_entry(setting), sort_keys=True)


def offline_sources(wildcards):
    return _run_sources(wildcards.method, registry.OFFLINE)


def user_model_input(wildcards):
    """The dataset's fitted user model, for the methods that train in its offline environment."""
    if registry.method(wildcards.method).offline_env and \
            config["datasets"][wildcards.dataset]["environment"]["kind"] == "user_model":
        return [f"data/processed/{wildcards.dataset}/user_model/meta.json"]
    return []


def online_sources(wildcards):
    """The method's code and the simulator's (loaded through the registry, so not imported by the runner)."""
    return _run_sources(wildcards.method, registry.ONLINE, registry.SIMULATORS[wildcards.simulator].split(":")[0])


def simulator_inputs(wildcards):
    """VirtualTB's weights, verified (downloaded by the datasets rules when absent)."""
    return [f + ".verified.json" for f in VIRTUALTB_WEIGHTS] if wildcards.simulator == "virtualtb" else []


def per_attempt(entry, resource, attempt):
    """A training job's `resource` (mem_mb, or runtime in minutes): the dataset's or
    simulator's own value, else resources', times the attempt (a retry gets more)."""
    return entry.get(resource, config["resources"][resource]) * attempt


def device_settings(method):
    """What a GPU method's run is told of devices (imrl/runs/device.py): whether it may
    fall back to the CPU, whether TF32 is allowed. Other methods run on the CPU and get
    nothing, so that these keys rerun none of their runs."""
    if not registry.method(method).gpu:
        return {}
    return {"device": {key: config["resources"][key] for key in ("allow_cpu_fallback", "allow_tf32")}}


def offline_job(wildcards):
    """The resolved configuration of one offline run (recorded in its results JSON)."""
    dataset = config["datasets"][wildcards.dataset]
    return json.dumps({
        "method": config["methods"][wildcards.method],
        "dataset": dataset,
        "budget": dataset.get("budget", {}),
        "evaluation": config["evaluation"],
        **device_settings(wildcards.method),
    }, sort_keys=True)


def online_job(wildcards):
    """The resolved configuration of one simulator run (recorded in its results JSON)."""
    simulator = config["simulators"][wildcards.simulator]
    return json.dumps({
        "method": config["methods"][wildcards.method],
        "simulator": simulator,
        "budget": simulator.get("budget", {}),
        **device_settings(wildcards.method),
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
