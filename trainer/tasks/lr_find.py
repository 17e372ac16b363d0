"""task=lr_find: the LR range test (trainer/engine/lr_find.py) on the run's own data, model and optimizer."""

from __future__ import annotations

from pathlib import Path

from trainer.config import typed
from trainer.engine.lr_find import LRFindResult, log_curve, range_test_from_config, report, settings, write_results
from trainer.engine.setup import build, provenance
from trainer.records import Job, RunFolder
from trainer.tracking import make_tracker


def run(cfg, job: dict, run_dir: Path, show) -> None:
    show(cfg)
    run_lr_find(cfg, run_dir, job)


def run_lr_find(cfg, run_dir: Path, job: Job | dict | None = None) -> LRFindResult:
    """task=lr_find: build the run's data, model and optimizer as training would, run the test, and
    write config.yaml, provenance.json, lr_find.json and lr_find.png; the tracker gets the curve."""
    cfg, job = typed(cfg), Job.of(job)
    folder = RunFolder(run_dir)
    run = build(cfg, job)
    folder.write_config(cfg)
    folder.write_provenance(provenance(cfg, run.device, job))

    result = range_test_from_config(cfg, run.model, run.optimizer, run.train_set, run.amp)
    png = write_results(result, folder.dir, settings(cfg))
    print(report(result, cfg.lr_find.suggestion, png), flush=True)
    tracker = make_tracker(cfg, folder.dir, job)
    try:
        log_curve(tracker, result)
    finally:
        tracker.finish(0)
    return result
