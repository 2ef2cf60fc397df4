"""python -m patternos_training train | status | promote (npm run train -- …).

stdout carries the human summary and, as its last line, one JSON object; progress and errors go to stderr.
Exit codes: 0 done (whether the new model became current or stayed a candidate), 1 failed, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .clickhouse import ClickHouse, ClickHouseConfig, ClickHouseError
from .contract import DEFINITIONS_PATH, REPO_ROOT, ContractError, load_features
from .dataset import DataError, SplitConfig, read_training_csv
from .export import ParityError
from .gate import GateConfig
from .pipeline import TrainOptions, TrainResult, comparison_lines, log, train
from .registry import (
    ModelStore,
    RegistryError,
    check_table,
    check_version,
    fetch_clickhouse_registry,
    new_version,
    promote_by_hand,
)
from .source import Window, build_training_set, parse_date, warehouse_window

EXPECTED_ERRORS = (ContractError, DataError, ParityError, RegistryError, ClickHouseError)


def default_models_dir() -> Path:
    return Path(os.environ.get("MODEL_DIR") or REPO_ROOT / "models")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="patternos_training", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    t = commands.add_parser("train", help="train, export, gate and register a model version")
    source = t.add_argument_group(
        "training data (default: built from the warehouse, reference dates from the first transaction's day + 30 "
        "to the last one's day - horizon)"
    )
    source.add_argument("--csv", type=Path, help="a training-set CSV (npm run features -- training-set … --out)")
    source.add_argument("--from", dest="from_date", help="first reference date, YYYY-MM-DD (UTC midnight)")
    source.add_argument("--to", dest="to_date", help="end of the reference dates, YYYY-MM-DD, exclusive")
    source.add_argument("--step-days", type=int, default=1, help="days between reference dates (default 1)")
    source.add_argument("--horizon-days", type=int, default=7, help="label horizon in days (default 7)")
    source.add_argument(
        "--ref-times",
        choices=("random", "midnight"),
        default="random",
        help="reference time of each row within its day: random per customer (default; live scores are taken at any "
        "time) or midnight (for evaluations that score at 00:00)",
    )
    source.add_argument("--keep-csv", type=Path, help="also keep the CSV built from the warehouse at this path")
    t.add_argument("--validation-fraction", type=float, default=0.2, help="share of reference times (default 0.2)")
    t.add_argument("--test-fraction", type=float, default=0.2, help="newest share of reference times (default 0.2)")
    t.add_argument("--min-improvement", type=float, default=0.0, help="gate margin on ROC-AUC (default 0)")
    t.add_argument("--min-roc-auc", type=float, default=0.5, help="floor a model must exceed to be current")
    t.add_argument(
        "--min-improvement-over-logistic",
        type=float,
        default=0.0,
        help="gate margin over the run's logistic-regression baseline on ROC-AUC (default 0)",
    )
    t.add_argument(
        "--bootstrap-resamples",
        type=int,
        default=1000,
        help="customer resamples for the comparison's confidence intervals (default 1000)",
    )
    t.add_argument(
        "--data-source",
        help="what the training data is (e.g. online-retail), recorded as training_data.dataset in the manifest so "
        "an evaluation can refuse a model trained on other data",
    )
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    _common(t)
    t.add_argument("--version", help="model version (default: now in UTC, e.g. 20261124T101500Z)")
    t.add_argument("--definitions", type=Path, default=DEFINITIONS_PATH, help=argparse.SUPPRESS)

    s = commands.add_parser("status", help="print the registry")
    _common(s)

    p = commands.add_parser("promote", help="make a registered version current (rollback or manual promotion)")
    p.add_argument("version")
    p.add_argument("--reason", required=True, help="recorded in the registry")
    _common(p)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models-dir", type=Path, default=None, help="default MODEL_DIR, else <repo>/models")
    parser.add_argument(
        "--no-clickhouse",
        action="store_true",
        help="do not write the model_registry table (registry.json and the files are still written)",
    )


def _clickhouse(args: argparse.Namespace) -> ClickHouse | None:
    return None if args.no_clickhouse else ClickHouse(ClickHouseConfig.from_env())


def _models_dir(args: argparse.Namespace) -> Path:
    return (args.models_dir or default_models_dir()).resolve()


@dataclass(frozen=True)
class Source:
    csv: Path
    # What the manifest records as the data's origin (a temporary CSV path would mean nothing later).
    description: str
    # The command that rebuilds the model from the same data.
    reproduce: str


def _source(args: argparse.Namespace, work: Path) -> Source:
    if args.csv is not None:
        if args.from_date or args.to_date:
            raise DataError("give either --csv or --from/--to, not both")
        return Source(args.csv, str(args.csv), f"npm run train -- --csv {shlex.quote(str(args.csv))}")
    if args.from_date and args.to_date:
        window = Window(parse_date(args.from_date), parse_date(args.to_date))
    else:
        found = warehouse_window(ClickHouse(ClickHouseConfig.from_env()), args.horizon_days)
        window = Window(
            parse_date(args.from_date) if args.from_date else found.start,
            parse_date(args.to_date) if args.to_date else found.end,
        )
    if window.end <= window.start:
        raise DataError(f"--to {window.end} must be after --from {window.start} (--to is exclusive)")
    log(
        f"reference dates {window.describe()} every {args.step_days} day(s) at {args.ref_times} times, "
        f"horizon {args.horizon_days} days"
    )
    out = args.keep_csv or work / "training-set.csv"
    build_training_set(window, args.step_days, args.horizon_days, out, args.ref_times)
    flags = (
        f"--from {window.start} --to {window.end} --step-days {args.step_days} --horizon-days {args.horizon_days} "
        f"--ref-times {args.ref_times}"
    )
    return Source(
        out,
        f"ClickHouse {ClickHouseConfig.from_env().describe()}: npm run features -- training-set {flags}",
        f"npm run train -- {flags}",
    )


def _print_summary(result: TrainResult) -> None:
    print(f"model {result.version}: {result.status} ({result.decision.reason})")
    for name, c in result.candidates.items():
        mark = "*" if name == result.selected else " "
        print(
            f" {mark} {name:<9} validation ROC-AUC {c.validation.roc_auc:.4f} PR-AUC {c.validation.pr_auc:.4f} | "
            f"test ROC-AUC {c.test.roc_auc:.4f} PR-AUC {c.test.pr_auc:.4f}"
        )
    for line in comparison_lines(result.comparison, result.selected):
        print(line)
    print(f"files: {result.version_dir}")


def cmd_train(args: argparse.Namespace) -> int:
    version = check_version(args.version or new_version())
    if args.bootstrap_resamples < 100:
        raise DataError("--bootstrap-resamples must be at least 100 for a 95 % interval to mean anything")
    data_source = f" --data-source {shlex.quote(args.data_source)}" if args.data_source else ""
    features = load_features(args.definitions)
    clickhouse = _clickhouse(args)
    if clickhouse is not None:
        check_table(clickhouse)
    with tempfile.TemporaryDirectory(prefix="patternos-training-") as work:
        source = _source(args, Path(work))
        log(f"reading {source.csv}")
        dataset = replace(read_training_csv(source.csv, features), source=source.description)
        log(f"{dataset.rows:,} rows, {int(dataset.y.sum()):,} positive, {len(features)} features")
    options = TrainOptions(
        models_dir=_models_dir(args),
        version=version,
        split=SplitConfig(args.horizon_days, args.validation_fraction, args.test_fraction),
        gate=GateConfig(args.min_improvement, args.min_roc_auc, args.min_improvement_over_logistic),
        seed=args.seed,
        threads=max(1, args.threads),
        clickhouse=clickhouse,
        reproduce=f"{source.reproduce}{data_source} --seed {args.seed} --version <new version>",
        bootstrap_resamples=args.bootstrap_resamples,
        data_source=args.data_source,
    )
    result = train(dataset, options)
    _print_summary(result)
    print(json.dumps(result.summary_json()))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    store = ModelStore(_models_dir(args))
    registry = store.read_registry()
    pointer = store.read_pointer()
    print(f"{store.root}: current {pointer or '(none)'}")
    for version in sorted(registry.models):
        e = registry.models[version]
        print(
            f"  {version}  {e.status:<9}  {e.algorithm:<8}  ROC-AUC {e.roc_auc:.4f}  PR-AUC {e.pr_auc:.4f}  {e.reason}"
        )
    warehouse = None
    clickhouse = _clickhouse(args)
    if clickhouse is not None:
        warehouse = fetch_clickhouse_registry(clickhouse)
        local = {v: e.status for v, e in registry.models.items()}
        remote = {str(r["version"]): str(r["status"]) for r in warehouse}
        if local != remote:
            print(f"note: {clickhouse.config.describe()} model_registry differs from registry.json: {remote}")
    print(
        json.dumps(
            {
                "models_dir": str(store.root),
                "current": pointer,
                "registry_current": registry.current,
                "models": [vars(registry.models[v]) for v in sorted(registry.models)],
            }
        )
    )
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    store = ModelStore(_models_dir(args))
    registry, entries = promote_by_hand(store, _clickhouse(args), args.version, args.reason)
    for e in entries:
        print(f"{e.version}: {e.status} ({e.reason})")
    print(json.dumps({"current": registry.current, "changes": [vars(e) for e in entries]}))
    return 0


COMMANDS = {"train": cmd_train, "status": cmd_status, "promote": cmd_promote}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["compare"]:
        from .compare import main as compare

        return compare(argv[1:])
    if argv[:1] == ["ceiling"]:
        from .ceiling import main as ceiling

        return ceiling(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except EXPECTED_ERRORS as err:
        print(f"[train] error: {err}", file=sys.stderr)
        return 1
