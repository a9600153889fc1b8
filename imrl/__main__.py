"""Command line of the workflow's stages: ``python -m imrl <stage> ...``.

Each stage is a thin wrapper over an importable function; the Snakemake rules call
these commands and nothing else."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def cmd_synthesize(args: argparse.Namespace) -> None:
    from imrl.data import interactions, synthetic

    interactions.save(synthetic.generate(args.params, seed=args.seed), args.out)


def cmd_split(args: argparse.Namespace) -> None:
    from imrl.data import interactions, preprocess
    from imrl.data.split import save_split

    save_split(preprocess.build_split(interactions.load(args.data), args.preprocess, args.name), args.out)


def cmd_run(args: argparse.Namespace) -> None:
    from imrl.runs.run import run_offline

    record = run_offline(args.dataset, args.method, args.seed, args.split, args.job, args.out,
                         progress=args.progress, checkpoint_dir=args.checkpoints)
    if record["status"] != "ok":
        print(f"run FAILED ({args.dataset}, {args.method}, seed {args.seed}): {record['error']['type']}: "
              f"{record['error']['message']}\n{record['error']['traceback']}", file=sys.stderr)
    else:
        print(json.dumps(record["metrics"], indent=2))


def cmd_report(args: argparse.Namespace) -> None:
    from imrl.report.build import build_reports

    build_reports(args.results, args.out, args.config)


def cmd_check_config(args: argparse.Namespace) -> None:
    from imrl import config

    config.load(args.config)
    print(f"{args.config}: valid")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m imrl", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synthesize", help="generate the synthetic dataset in the interactions format")
    p.add_argument("--params", type=_json, default={}, help="generator parameters (JSON)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="dataset directory (data/processed/<name>)")
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("split", help="binarise, k-core filter and split a dataset chronologically")
    p.add_argument("--data", type=Path, required=True, help="dataset directory with meta.json")
    p.add_argument("--preprocess", type=_json, required=True, help="preprocessing config (JSON)")
    p.add_argument("--name", required=True)
    p.add_argument("--out", type=Path, required=True, help="split directory")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("run", help="train and evaluate one method on one split with one seed")
    p.add_argument("--dataset", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--job", type=_json, required=True, help="resolved run configuration (JSON)")
    p.add_argument("--out", type=Path, required=True, help="results JSON path")
    p.add_argument("--checkpoints", type=Path, default=None,
                   help="checkpoint directory: a killed run started again resumes from it")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="tables and figures from results/ alone")
    p.add_argument("--results", type=Path, required=True, help="results/runs directory")
    p.add_argument("--out", type=Path, required=True, help="reports directory")
    p.add_argument("--config", type=_json, required=True,
                   help="report config (JSON): name, datasets and methods in order, table_k, not_available")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("check-config", help="validate a workflow config file")
    p.add_argument("config", type=Path)
    p.set_defaults(func=cmd_check_config)
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
