"""Names -> implementations, for methods, datasets and simulators.

Targets are "module:Class" strings imported only when a run needs them, so the
workflow can list and validate the whole grid without importing torch. A ``None``
target means "named by the paper, not implemented yet": the config accepts it and a
dry run reports it as not available.

Adding a method: write one module (``baselines/<name>.py`` subclassing
``imrl.api.OfflineMethod`` and/or ``OnlineAgent``, with its ``defaults``), add one
``MethodSpec`` line below, and one entry under ``methods:`` in the config (README.md,
"Adding a method").

This file is not an input of any job: a run depends on its own method's entry
(``MethodSpec.run_entry``, a parameter of its rule), so adding a method, editing one
entry or a comment here reruns only what it changes.
"""

from __future__ import annotations

import ast
import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OFFLINE, ONLINE = "offline", "online"


@dataclass(frozen=True)
class MethodSpec:
    name: str
    target: str | None                 # "module:Class", None = not implemented yet
    settings: tuple[str, ...]          # where it runs: offline datasets, online simulators
    paper: str                         # what it implements
    defaults: dict[str, Any] = field(default_factory=dict)  # fixed params (variants of one class)
    gpu: bool = False                  # trains on a GPU (the workflow asks for gpu=1; imrl/runs/device.py)
    online_target: str | None = None   # class for the simulators when it is not `target`
    offline_env: bool = False          # trains in the dataset's offline environment (imrl/envs/environment.py)

    @property
    def available(self) -> bool:
        return self.target is not None

    def target_for(self, setting: str) -> str | None:
        """The "module:Class" that runs in `setting`."""
        return self.online_target if setting == ONLINE and self.online_target else self.target

    def run_entry(self, setting: str) -> dict[str, Any]:
        """What of this entry a run in `setting` depends on (the workflow passes it as a
        parameter of the run, so that a change reruns this method's runs and no others)."""
        return {"target": self.target_for(setting), "defaults": self.defaults, "gpu": self.gpu,
                "offline_env": self.offline_env}

    @property
    def module(self) -> str:
        if self.target is None:
            raise LookupError(f"method {self.name!r} is not implemented yet")
        return self.target.split(":")[0]

    def load(self, setting: str = OFFLINE) -> type:
        if self.target is None:
            raise LookupError(f"method {self.name!r} is not implemented yet")
        if setting not in self.settings:
            raise LookupError(f"method {self.name!r} does not run in the {setting} setting (only {self.settings})")
        return load_target(self.target_for(setting))


METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in [
    # Sanity methods.
    MethodSpec("random", "baselines.random:Random", (OFFLINE, ONLINE), "uniformly random ranking / actions",
               online_target="baselines.random:RandomAgent"),
    MethodSpec("popularity", "baselines.popularity:Popularity", (OFFLINE,), "most popular training items"),
    MethodSpec("markov", "baselines.markov:Markov", (OFFLINE,), "first-order item-to-item transition counts"),
    # IMRL and its ablations (issue: IMRL itself).
    MethodSpec("imrl", "imrl.agents.imrl:IMRL", (OFFLINE, ONLINE), "IMRL (this paper)",
               {"intrinsic": "empowerment", "augmentation": True}, online_target="imrl.agents.imrl:IMRLAgent",
               offline_env=True, gpu=True),
    MethodSpec("imrl-e", "imrl.agents.imrl:IMRL", (OFFLINE, ONLINE), "IMRL without empowerment",
               {"intrinsic": "entropy", "augmentation": True}, online_target="imrl.agents.imrl:IMRLAgent",
               offline_env=True, gpu=True),
    MethodSpec("imrl-a", "imrl.agents.imrl:IMRL", (OFFLINE, ONLINE), "IMRL without counterfactual augmentation",
               {"intrinsic": "empowerment", "augmentation": False}, online_target="imrl.agents.imrl:IMRLAgent",
               offline_env=True, gpu=True),
    MethodSpec("imrl-kl", "imrl.agents.imrl:IMRL", (OFFLINE, ONLINE), "IMRL with the KL-divergence intrinsic signal",
               {"intrinsic": "kl", "augmentation": True}, online_target="imrl.agents.imrl:IMRLAgent",
               offline_env=True, gpu=True),
    MethodSpec("sac", "imrl.agents.imrl:IMRL", (OFFLINE, ONLINE), "Soft Actor-Critic (Haarnoja et al. 2018)",
               {"intrinsic": "entropy", "augmentation": False}, online_target="imrl.agents.imrl:IMRLAgent",
               offline_env=True, gpu=True),
    # Supervised sequential baselines.
    MethodSpec("sasrec", "baselines.sasrec:SASRec", (OFFLINE,), "SASRec (Kang & McAuley, ICDM 2018)", gpu=True),
    MethodSpec("stamp", "baselines.stamp:STAMP", (OFFLINE,), "STAMP (Liu et al., KDD 2018)", gpu=True),
    MethodSpec("casr", "baselines.casr:CASR", (OFFLINE,), "CASR + STAMP (Wang et al., SIGIR 2021)", gpu=True),
    MethodSpec("causerec", "baselines.causerec:CauseRec", (OFFLINE,), "CauseRec (Zhang et al., SIGIR 2021)", gpu=True),
    MethodSpec("cocorec", "baselines.cocorec:CoCoRec", (OFFLINE,), "CoCoRec (Cai et al., SIGIR 2021)", gpu=True),
    # RL baselines.
    MethodSpec("deers", "baselines.deers:DEERS", (OFFLINE, ONLINE), "DEERS (Zhao et al., KDD 2018)", gpu=True,
               online_target="baselines.deers:DEERSAgent", offline_env=True),
    MethodSpec("kgrl", "baselines.kgrl:KGRL", (OFFLINE, ONLINE), "KGRL (Chen et al., IJCNN 2020)", gpu=True,
               online_target="baselines.kgrl:KGRLAgent", offline_env=True),
    MethodSpec("tpgr", "baselines.tpgr:TPGR", (OFFLINE, ONLINE), "TPGR (Chen et al., AAAI 2019)", gpu=True,
               online_target="baselines.tpgr:TPGRAgent", offline_env=True),
    MethodSpec("pgpr", "baselines.pgpr:PGPR", (OFFLINE, ONLINE), "PGPR (Xian et al., SIGIR 2019)", gpu=True,
               online_target="baselines.pgpr:PGPRAgent"),
]}

#: Offline datasets: name -> converter ("module:function" building Interactions), None = not yet.
DATASETS: dict[str, str | None] = {
    "synthetic": "imrl.data.synthetic:generate",
    "ml-20m": "imrl.data.readers.movielens:convert",
    "ml-100k": "imrl.data.readers.movielens100k:convert",
    "ml-1m": "imrl.data.readers.movielens1m:convert",
    "netflix": "imrl.data.readers.netflix:convert",
    "amazon-cd": "imrl.data.readers.amazon:convert",
    "librarything": "imrl.data.readers.librarything:convert",
    "book-crossing": "imrl.data.readers.bookcrossing:convert",
    "goodreads": "imrl.data.readers.goodreads:convert",
}

#: Online simulators: name -> environment factory ("module:function"), None = not yet.
SIMULATORS: dict[str, str | None] = {
    "recsim": "imrl.envs.recsim:make",
    "recogym": "imrl.envs.recogym:make",
    "virtualtb": "imrl.envs.virtualtb:make",
}


def method(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; valid methods: {', '.join(sorted(METHODS))}") from None


def load_target(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("imrl", "baselines")


def _module_path(module: str) -> Path | None:
    """File of a project module, found from the source tree without importing it."""
    base = PROJECT_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def source_files(module: str) -> tuple[str, ...]:
    """The project source files `module` depends on: itself and, transitively, every
    project module it imports (read from the import statements, nothing imported).
    The workflow lists them as inputs so that a code change reruns what it affects. This
    registry is left out: its entries are tracked one by one (``MethodSpec.run_entry``)."""
    seen: dict[str, Path] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        path = _module_path(name)
        if name in seen or path is None:
            continue
        seen[name] = path
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                pending += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                pending += [base] + [f"{base}.{alias.name}" for alias in node.names]
        pending = [n for n in pending if n.split(".")[0] in PROJECT_PACKAGES]
    return tuple(sorted(str(p.relative_to(PROJECT_ROOT)) for n, p in seen.items() if n != __name__))
