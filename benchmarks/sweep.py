"""The five d2l schedules end to end: `run.py -m experiment=d2l_schedulers seed=0` in a subprocess.

    python -m benchmarks.sweep                          # 6 epochs per schedule
    python -m benchmarks.sweep --epochs 30 --json sweep.json
    python -m benchmarks.sweep --seeds 3 --launchers basic,stacked   # one job per process vs stacked

Reports the wall clock of the whole command, the sum of the epoch times the runs recorded, and the rest
as overhead per job: inside fit() (data loading, checkpoints) and outside it (interpreter start,
imports, composing and checking every job, Hydra's bookkeeping). Extra arguments are config overrides
passed on to run.py (e.g. trainer.device=cpu).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import ROOT, hardware, median_after_warmup
from trainer.records import RunFolder, write_json

# d2l_cosine_warmup warms up for 5 epochs, and a warmup must end before the run does
MIN_EPOCHS = 6


def run_sweep(
    epochs: int, overrides: list[str], sweep_dir: Path, seeds: int = 1
) -> tuple[float, subprocess.CompletedProcess]:
    command = [
        sys.executable,
        str(ROOT / "run.py"),
        "-m",
        "experiment=d2l_schedulers",
        f"seed={','.join(str(s) for s in range(seeds))}",
        f"trainer.epochs={epochs}",
        "logger=none",
        "trainer.progress=false",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done


def job_figures(job_dir: Path) -> dict:
    folder = RunFolder(job_dir, create=False)
    summary = folder.read_summary()
    times = [r.epoch_time for r in folder.read_metrics()]
    arm = next((o.split("=", 1)[1] for o in summary.overrides if o.startswith("arm=")), job_dir.name)
    return {
        "job": int(job_dir.name),
        "arm": arm,
        "status": summary.status,
        "epochs": len(times),
        "sum_epoch_s": sum(times),
        "median_epoch_s": median_after_warmup(times) if times else None,
        "fit_s": summary.wall_time_s,
        "final_test_acc": summary.get("final_test_acc"),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--epochs", type=int, default=MIN_EPOCHS, help=f"epochs per schedule (at least {MIN_EPOCHS}, the default)"
    )
    p.add_argument("--seeds", type=int, default=1, help="seeds per schedule (seed=0,...,N-1; default 1)")
    p.add_argument(
        "--launchers",
        default="basic",
        help="comma list of Hydra launchers to time in turn, e.g. basic,stacked (the first is the baseline)",
    )
    p.add_argument("--json", type=Path, help="write the figures to this file")
    p.add_argument("overrides", nargs="*", help="more config overrides for run.py")
    args = p.parse_args(argv)
    if args.epochs < MIN_EPOCHS:
        p.error(f"--epochs must be >= {MIN_EPOCHS}: d2l_cosine_warmup warms up for 5 epochs")
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    launchers = args.launchers.split(",")
    reports = [time_launcher(args, launcher) for launcher in launchers]
    report = dict(reports[0])
    if len(reports) > 1:
        report["launchers"] = {launcher: r for launcher, r in zip(launchers, reports, strict=True)}
        base = reports[0]["wall_s"]
        for launcher, r in zip(launchers[1:], reports[1:], strict=True):
            print(
                f"{launcher} vs {launchers[0]}: {r['wall_s']:.1f} s vs {base:.1f} s wall clock -> {base / r['wall_s']:.2f}x"
            )
    if args.json:
        write_json(args.json, report)
    return report


def time_launcher(args, launcher: str) -> dict:
    overrides = [*args.overrides, *([f"hydra/launcher={launcher}"] if launcher != "basic" else [])]
    with tempfile.TemporaryDirectory(prefix="schedlab-sweep-") as tmp:
        wall, done = run_sweep(args.epochs, overrides, Path(tmp), args.seeds)
        if done.returncode != 0:
            sys.exit(f"the sweep failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        jobs = sorted(
            (job_figures(d) for d in Path(tmp).iterdir() if (d / "summary.json").exists()), key=lambda j: j["job"]
        )
        device = RunFolder(Path(tmp) / "0", create=False).read_provenance()["device"]

    n = len(jobs)
    sum_epochs = sum(j["sum_epoch_s"] for j in jobs)
    sum_fit = sum(j["fit_s"] for j in jobs)
    report = {
        "benchmark": "sweep",
        "hardware": hardware(torch.device(device)),
        "settings": {"epochs": args.epochs, "seeds": args.seeds, "launcher": launcher, "overrides": args.overrides},
        "jobs": jobs,
        "wall_s": wall,
        "sum_epoch_s": sum_epochs,
        "sum_fit_s": sum_fit,
        "overhead_per_job_s": (wall - sum_epochs) / n,
        "overhead_in_fit_per_job_s": (sum_fit - sum_epochs) / n,
        "overhead_outside_fit_per_job_s": (wall - sum_fit) / n,
    }
    print(
        f"experiment=d2l_schedulers, {args.seeds} seed(s), {args.epochs} epochs per schedule, hydra/launcher={launcher}, "
        f"{device} ({report['hardware']['cpu']})"
    )
    print(f"{'arm':<20} {'status':<10} {'epochs':>6} {'s/epoch':>8} {'epochs s':>9} {'fit s':>7} {'test acc':>8}")
    for j in jobs:
        print(
            f"{j['arm']:<20} {j['status']:<10} {j['epochs']:>6} {j['median_epoch_s']:>8.3f} {j['sum_epoch_s']:>9.2f}"
            f" {j['fit_s']:>7.2f} {j['final_test_acc']:>8.3f}"
        )
    stacked = " (a stack's arms share one process: fit s is the stack's, so per-job overheads are not separable)"
    print(
        f"{n} jobs: {wall:.1f} s wall clock, {sum_epochs:.1f} s in epochs; overhead per job {report['overhead_per_job_s']:.2f} s "
        f"({report['overhead_in_fit_per_job_s']:.2f} s inside fit, {report['overhead_outside_fit_per_job_s']:.2f} s outside)"
        + (stacked if launcher == "stacked" else "")
    )
    return report


if __name__ == "__main__":
    main()
