"""Command line of the workflow's stages: ``python -m imrl <stage> ...``.

Each stage is a thin wrapper over an importable function; the Snakemake rules call
these commands and nothing else."""

from __future__ import annotations

import argparse
import json
import logging
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


def _log_info() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def cmd_fetch(args: argparse.Namespace) -> None:
    from imrl.data.download import fetch

    _log_info()
    fetch(args.dataset, args.file, args.raw, args.params)


def cmd_verify(args: argparse.Namespace) -> None:
    from imrl.data.download import verify_file

    _log_info()
    print(json.dumps(verify_file(args.dataset, args.file, args.raw, args.params), indent=2))


def cmd_extract(args: argparse.Namespace) -> None:
    from imrl.data.extract import extract_file

    _log_info()
    print("\n".join(extract_file(args.dataset, args.file, args.raw, args.params)))


def cmd_convert(args: argparse.Namespace) -> None:
    from imrl.data.convert import convert_dataset

    _log_info()
    print(json.dumps(convert_dataset(args.dataset, args.raw, args.out, args.params), indent=2))


def cmd_env_info(args: argparse.Namespace) -> None:
    from imrl.data.split import load_split
    from imrl.envs.summary import environment_summary
    from imrl.io import atomic_write_json

    meta = json.loads((args.user_model / "meta.json").read_text()) if args.user_model else None
    atomic_write_json(args.out, environment_summary(load_split(args.split), args.environment, meta, **args.env))


def cmd_fit_user_model(args: argparse.Namespace) -> None:
    from imrl.data.split import load_split
    from imrl.envs.user_model import fit_user_model, save_user_model

    _log_info()
    model, report = fit_user_model(load_split(args.split), args.params, seed=args.seed)
    save_user_model(args.out, model, report)


def cmd_table1(args: argparse.Namespace) -> None:
    from imrl.report.table1 import write_table1

    write_table1(args.datasets, args.processed, args.out, args.reported)


def cmd_split(args: argparse.Namespace) -> None:
    from imrl.data import interactions, preprocess
    from imrl.data.split import save_split

    save_split(preprocess.build_split(interactions.load(args.data), args.preprocess, args.name), args.out)


def cmd_run(args: argparse.Namespace) -> None:
    from imrl.runs.run import run_offline

    _report_run(run_offline(args.dataset, args.method, args.seed, args.split, args.job, args.out,
                            progress=args.progress, checkpoint_dir=args.checkpoints,
                            checkpoint_every_s=args.checkpoint_every, user_model_dir=args.user_model))


def _report_run(record: dict) -> None:
    """Into the job's log: the metrics, or the error of a failed run (whose record says so)."""
    if record["status"] != "ok":
        print(f"run FAILED ({record['dataset']}, {record['method']}, seed {record['seed']}): "
              f"{record['error']['type']}: {record['error']['message']}\n{record['error']['traceback']}",
              file=sys.stderr)
    else:
        print(json.dumps(record["metrics"], indent=2))


def cmd_run_online(args: argparse.Namespace) -> None:
    from imrl.runs.run import run_online

    _report_run(run_online(args.simulator, args.method, args.seed, args.job, args.out,
                           progress=args.progress, checkpoint_dir=args.checkpoints,
                           checkpoint_every_s=args.checkpoint_every))


def cmd_report(args: argparse.Namespace) -> None:
    from imrl.report.build import build_reports

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build_reports(args.results, args.out, args.config, reported=args.reported, submissions=args.submissions,
                  leaderboard_csv=args.leaderboard_csv, max_submission_bytes=args.max_submission_bytes)


def cmd_check_config(args: argparse.Namespace) -> None:
    from imrl import config

    try:
        config.load(args.config)
    except config.ConfigError as error:
        sys.exit(str(error))
    print(f"{args.config}: valid")


def _run_arguments(p: argparse.ArgumentParser) -> None:
    """What both kinds of run take."""
    p.add_argument("--method", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--job", type=_json, required=True, help="resolved run configuration (JSON)")
    p.add_argument("--out", type=Path, required=True, help="results JSON path")
    p.add_argument("--checkpoints", type=Path, default=None,
                   help="checkpoint directory: a killed run started again resumes from it")
    p.add_argument("--checkpoint-every", type=float, default=600.0, metavar="SECONDS",
                   help="wall time between checkpoints (default 600)")
    p.add_argument("--progress", action="store_true", help="show progress bars")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m imrl", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synthesize", help="generate the synthetic dataset in the interactions format")
    p.add_argument("--params", type=_json, default={}, help="generator parameters (JSON)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="dataset directory (data/processed/<name>)")
    p.set_defaults(func=cmd_synthesize)

    def raw_file_stage(name: str, help_text: str, func) -> None:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--dataset", required=True)
        p.add_argument("--file", required=True, help="file name from imrl/data/sources.py")
        p.add_argument("--raw", type=Path, required=True, help="the dataset's raw folder (data/raw/<dataset>)")
        p.add_argument("--params", type=_json, default={}, help="the dataset's params from the config (JSON)")
        p.set_defaults(func=func)

    raw_file_stage("fetch", "download (or take a local copy of) one raw file, verified", cmd_fetch)
    raw_file_stage("verify", "verify one raw file in place and record it (<file>.verified.json)", cmd_verify)
    raw_file_stage("extract", "safely extract a verified archive into <file>.extracted/", cmd_extract)

    p = sub.add_parser("convert", help="read a dataset's raw files into the interactions format")
    p.add_argument("--dataset", required=True)
    p.add_argument("--raw", type=Path, required=True, help="the dataset's raw folder (data/raw/<dataset>)")
    p.add_argument("--params", type=_json, default={}, help="the dataset's params from the config (JSON)")
    p.add_argument("--out", type=Path, required=True, help="dataset directory (data/processed/<name>)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("env-info", help="describe the offline environment a split gives (env.json)")
    p.add_argument("--split", type=Path, required=True, help="split directory")
    p.add_argument("--env", type=_json, default={}, help="replay settings (JSON), default the environment's")
    p.add_argument("--environment", type=_json, default=None, help="the dataset's environment config (JSON)")
    p.add_argument("--user-model", type=Path, default=None, help="its fitted user model's directory")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_env_info)

    p = sub.add_parser("fit-user-model", help="fit the user model of a split (the offline environment's user)")
    p.add_argument("--split", type=Path, required=True, help="split directory")
    p.add_argument("--params", type=_json, default={}, help="the user model's settings (JSON)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="user model directory (data/processed/<name>/user_model)")
    p.set_defaults(func=cmd_fit_user_model)

    p = sub.add_parser("table1", help="Table I: the paper's dataset statistics beside ours")
    p.add_argument("--datasets", nargs="+", required=True)
    p.add_argument("--processed", type=Path, default=Path("data/processed"))
    p.add_argument("--reported", type=Path, required=True,
                   help="the paper's Table I, transcribed (results/reported/imrl-paper-table1.csv)")
    p.add_argument("--out", type=Path, required=True, help="reports directory")
    p.set_defaults(func=cmd_table1)

    p = sub.add_parser("split", help="binarise, k-core filter and split a dataset chronologically")
    p.add_argument("--data", type=Path, required=True, help="dataset directory with meta.json")
    p.add_argument("--preprocess", type=_json, required=True, help="preprocessing config (JSON)")
    p.add_argument("--name", required=True)
    p.add_argument("--out", type=Path, required=True, help="split directory")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("run", help="train and evaluate one method on one split with one seed")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--user-model", type=Path, default=None,
                   help="the split's fitted user model (for RL methods in the user_model environment)")
    _run_arguments(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("run-online", help="train one method on one simulator with one seed (CTR curve)")
    p.add_argument("--simulator", required=True)
    _run_arguments(p)
    p.set_defaults(func=cmd_run_online)

    p = sub.add_parser("report", help="tables and figures from results/ alone")
    p.add_argument("--results", type=Path, required=True, help="results/runs directory")
    p.add_argument("--out", type=Path, required=True, help="reports directory")
    p.add_argument("--config", type=_json, required=True,
                   help="report config (JSON): name, datasets and methods in order, simulators, online_methods, "
                        "seeds, table_k, not_available; only the runs of these datasets, methods and seeds are read")
    p.add_argument("--reported", type=Path, help="the paper's Table II CSV (default: beside --results, "
                   "reported/imrl-paper-table2.csv)")
    p.add_argument("--submissions", type=Path, help="leaderboard submissions (default: beside --results, submissions/)")
    p.add_argument("--leaderboard-csv", type=Path, help="default: beside --results, leaderboard.csv")
    p.add_argument("--max-submission-bytes", type=int, metavar="BYTES",
                   help="a larger submission file is rejected (default 1 MB: 1000000)")
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
