"""The WSD-against-cosine study (conf/experiment/wsd_vs_cosine.yaml): three Hydra sweeps in the order their
runs need, then the report over all three.

1. `constant/seed<S>`: one constant-LR run per seed that keeps the states its cooldowns start from;
2. `cooldowns/<job>`: each budget's cooldown, branched from its seed's constant run (`branch.parent`);
3. `cosine/<job>`: cosine-to-zero trained from scratch for each budget;
4. `report/`: `python -m experiments.report` over the three (its anytime figure draws the branches).

A sweep whose jobs all completed is not run again, so the command picks up where an interrupted one stopped.
Arguments after the options are passed to every `run.py` (a launcher, `trainer.num_threads=1`, ...)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from trainer.records import RunFolder

ROOT = Path(__file__).resolve().parents[2]
BUDGETS = (8, 16, 24, 32)  # epochs; each cooldown is the last quarter of its budget (conf/arm/wsd_cooldown_*.yaml)


def stages(out: Path, seeds: str) -> list[tuple[str, list[str]]]:
    """Each sweep's folder name and its run.py arguments."""
    common = ["-m", "experiment=wsd_vs_cosine", f"seed={seeds}"]
    cooldowns = ",".join(f"wsd_cooldown_{b}" for b in BUDGETS)
    cosines = ",".join(f"cosine_{b}" for b in BUDGETS)
    parents = out / "constant"
    return [
        ("constant", [*common, "arm=wsd_constant", "hydra.sweep.subdir=seed${seed}"]),
        ("cooldowns", [*common, f"arm={cooldowns}", f"branch.parent={parents}/seed${{seed}}"]),
        ("cosine", [*common, f"arm={cosines}"]),
    ]


def finished(sweep: Path, jobs: int) -> bool:
    """Whether `sweep` holds `jobs` run folders that all completed."""
    if not sweep.is_dir():
        return False
    runs = [RunFolder(p, create=False) for p in sweep.iterdir() if p.is_dir()]
    summaries = [r.read_summary() for r in runs if r.is_run()]
    done = [s for s in summaries if s is not None and s.status == "completed"]
    return len(done) == jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.wsd_vs_cosine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="the study's folder (default outputs/multirun/wsd_vs_cosine/<time>)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    args, extra = parser.parse_known_args(argv)
    out = (args.out or ROOT / "outputs/multirun/wsd_vs_cosine" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")).resolve()
    n_seeds = len(args.seeds.split(","))
    for name, overrides in stages(out, args.seeds):
        jobs = n_seeds * (1 if name == "constant" else len(BUDGETS))
        if finished(out / name, jobs):
            print(f"{out / name}: its {jobs} runs completed; not run again", flush=True)
            continue
        command = [sys.executable, str(ROOT / "run.py"), *overrides, f"hydra.sweep.dir={out / name}", *extra]
        print("+", " ".join(command[1:]), flush=True)
        if subprocess.run(command, cwd=ROOT).returncode != 0:
            print(f"schedlab: the {name} sweep failed; its finished runs are kept in {out / name}", file=sys.stderr)
            return 1
    return subprocess.run([sys.executable, "-m", "experiments.report", str(out)], cwd=ROOT).returncode
