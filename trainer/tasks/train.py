"""task=train: one training run (trainer/engine/fit.py) into its run folder."""

from __future__ import annotations

from pathlib import Path

from trainer.engine.fit import fit
from trainer.records import Summary


def run(cfg, job: dict, run_dir: Path, show) -> Summary:
    show(cfg)
    return fit(cfg, run_dir, job)
