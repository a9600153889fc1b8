"""Dry run of the paper's grid: how long `snakemake -n` takes and whether it lists every
job the config implies (issue: under 15 s on a 2-core machine).

    python bench/dry_run.py [--configfile config/paper.yaml] [--repeat 3]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from imrl import config as imrl_config  # noqa: E402
from imrl import registry  # noqa: E402


def expected_runs(cfg: dict) -> dict[str, int]:
    """Training jobs the config implies, over what is implemented."""
    settings = [cfg["settings"].get(m, registry.METHODS[m].settings) for m in cfg["methods"]
                if registry.METHODS[m].available]
    datasets = [d for d in cfg["datasets"] if registry.DATASETS[d]]
    simulators = [s for s in cfg["simulators"] if registry.SIMULATORS[s]]
    seeds = len(cfg["seeds"])
    return {
        "train_offline": seeds * len(datasets) * sum(registry.OFFLINE in s for s in settings),
        "train_online": seeds * len(simulators) * sum(registry.ONLINE in s for s in settings),
    }


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    counts = {}
    table = output.split("Job stats:", 1)[-1]
    for line in table.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match:
            counts[match.group(1)] = int(match.group(2))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", type=Path, default=REPO / "config/paper.yaml")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cfg = imrl_config.load(args.configfile)
    times = []
    with tempfile.TemporaryDirectory() as workdir:  # a fresh directory: nothing exists yet
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                 "--directory", workdir, "--configfile", str(args.configfile.resolve()),
                 "--workflow-profile", "none", "--cores", "2"],
                capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if result.returncode != 0:
                sys.exit(f"dry run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    counts = job_counts(result.stdout + result.stderr)
    expected = expected_runs(cfg)
    print(f"dry run of {args.configfile.name}: {counts.get('total', 0)} jobs; "
          f"times {' '.join(f'{t:.2f}' for t in times)} s; best {min(times):.2f} s (target < 15 s)")
    for rule, n in sorted(counts.items()):
        print(f"  {rule:<20} {n}")
    for rule, n in expected.items():
        status = "ok" if counts.get(rule, 0) == n else "MISMATCH"
        print(f"expected {rule}: {n}, listed {counts.get(rule, 0)}: {status}")
    not_available = [line for line in (result.stdout + result.stderr).splitlines() if "NOT AVAILABLE" in line]
    print("\n".join(not_available) or "everything the config names is available")
    if min(times) >= 15 or any(counts.get(rule, 0) != n for rule, n in expected.items()):
        sys.exit(1)


if __name__ == "__main__":
    main()
