"""python -m experiments.report: the command line. Every bad argument is one `report: error:` line and exit 2,
before any run is read."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from experiments.report.build import check_options, one_line, write_report
from experiments.report.columns import DEFAULT_METRICS
from experiments.report.compare import MODES
from experiments.report.live import watch
from experiments.report.targets import target_figures
from trainer.records import METRICS


def _comma_list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """A usage error in one line, exit 2 (argparse prints the whole usage first)."""
        self.exit(2, f"report: error: {' '.join(message.split())} (see --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m experiments.report",
        description="Tables (md, tex, csv) and plots from multirun or run folders: mean ± std and 95 % CI over "
        "seeds, the best group chosen on validation (or a baseline named in advance), every pair of groups tested "
        "with Holm's correction, bootstrap intervals, P(A > B) and the seeds a difference needs, time to target. "
        "Given a results.csv an earlier report wrote, computes its tables again without the run folders.",
    )
    p.add_argument(
        "folders",
        nargs="+",
        type=Path,
        help="multirun folders (pooled), run folders, or folders of them; or results.csv files an earlier report "
        "wrote (the tables alone: table.md, table.tex, groups.csv, pairs.csv)",
    )
    p.add_argument(
        "--out", type=Path, help="where to write (default: FOLDER/report of the first folder, or beside a results.csv)"
    )
    p.add_argument(
        "--metrics",
        help=f"comma list of columns from: {', '.join(METRICS)} (default: those of {', '.join(DEFAULT_METRICS)} "
        "the runs have, eval_gap instead of gap where they have it); table.tex then has them all, else the test "
        "figures alone",
    )
    p.add_argument(
        "--sort",
        help="order of the groups: group, n, diverged, failed or a metric; -COLUMN for descending (default: sweep order)",
    )
    p.add_argument("--group-by", help="comma list of override keys (default: every override but the seed)")
    p.add_argument(
        "--compare",
        metavar="METRIC",
        help="the metric the groups are tested on (default: the first of --metrics with a better direction); the "
        "best group is chosen on its validation figure (test_acc: val_acc; test_loss: val_loss; best_epoch_test_acc: "
        "best_val_acc), on the metric itself where the runs have none",
    )
    p.add_argument(
        "--baseline",
        metavar="LABEL",
        help="the reference group (its label in the table), named in advance instead of the best",
    )
    p.add_argument(
        "--comparisons",
        choices=MODES,
        help="the family of tests, Holm-corrected across all of it: all-pairs (every pair of groups; the default "
        "without --baseline), baseline (every group against --baseline; the default with it), best (every group "
        "against the best only: a choice made by looking, so its p-values are too small; for earlier tables)",
    )
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="FIGURE=VALUE",
        help=f"time to target: the epoch and seconds of training (train_time where the runs record it, else "
        f"epoch_time) at which each run first reached VALUE (a fraction for accuracies); repeatable or comma list; "
        f"FIGURE one of {', '.join(target_figures())}",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        metavar="N",
        help="the number of classes, for runs that do not say (a results.csv written before it had the column): "
        "chance is 1/N, and a run whose training accuracy never rose above 1.5x chance is flagged as stuck",
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="keep the tables and index.html current while the sweep runs, from the files its jobs append; "
        "Ctrl-C stops, then writes the whole report",
    )
    p.add_argument(
        "--serve",
        type=int,
        metavar="PORT",
        help="--watch, and serve the report on http://127.0.0.1:PORT/ only (0: a free port)",
    )
    p.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="how often --watch looks at the run files (2)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_parser = parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv[:-1]):
        if arg == "--sort" and argv[i + 1].startswith("-"):  # argparse would take "-test_acc" for an option
            argv[i : i + 2] = [f"--sort={argv[i + 1]}"]
            break
    args = args_parser.parse_args(argv)
    if args.serve is not None and not 0 <= args.serve <= 65535:
        args_parser.error(f"argument --serve: {args.serve} is not a port (0-65535)")
    if not (math.isfinite(args.interval) and args.interval > 0):
        args_parser.error(f"argument --interval: {args.interval:g} is not a positive number of seconds")
    options = dict(
        metrics=_comma_list(args.metrics),
        sort=args.sort,
        group_by=_comma_list(args.group_by),
        compare=args.compare,
        baseline=args.baseline,
        targets=args.target,
        comparisons=args.comparisons,
        num_classes=args.num_classes,
    )
    live = args.watch or args.serve is not None
    try:
        check_options(**options)
        if live and any(f.suffix == ".csv" and f.is_file() for f in args.folders):
            raise ValueError("--watch and --serve follow run folders as their jobs write them, not a results.csv")
    except ValueError as e:
        print(f"report: error: {one_line(e)}", file=sys.stderr)
        return 2
    if live:
        return watch(args.folders, args.out, options, args.interval, args.serve)
    try:
        report = write_report(args.folders, args.out, **options)
    except (ValueError, OSError) as e:  # bad arguments, missing folders, a report folder that cannot be written
        print(f"report: error: {one_line(e)}", file=sys.stderr)
        return 2
    print(report.markdown)
    out = report.files["table.md"].parent
    print(f"wrote {', '.join(report.files)} to {out}", file=sys.stderr)
    return 0
