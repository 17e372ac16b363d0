"""task=schedule: draw the configured schedule, and any others named in schedule_plot.compare, without
data or training. Every curve uses the run's optimizer LR, epochs and steps per epoch."""

from __future__ import annotations

from pathlib import Path

from hydra import compose
from hydra.core.hydra_config import HydraConfig

from schedulers import key_epochs, lr_curve, plot_schedules
from trainer.config import validate
from trainer.data import num_batches, train_size
from trainer.records import write_json


def steps_per_epoch(cfg) -> int:
    if cfg.schedule_plot.steps_per_epoch:
        return int(cfg.schedule_plot.steps_per_epoch)
    return num_batches(train_size(cfg.dataset), cfg.trainer.batch_size, cfg.trainer.max_steps_per_epoch)


def compared_configs(cfg) -> dict:
    """label -> config: the run's own, then each entry of schedule_plot.compare composed with the same
    command-line overrides (so trainer.epochs=50 or optimizer.lr=0.1 apply to every curve)."""
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith(("scheduler", "schedule_plot"))]
    configs = {cfg.scheduler.name: cfg}
    for entry in cfg.schedule_plot.compare:
        # a scheduler option, or any override such as arm=d2l_sqrt (a study arm with its own LR)
        override = entry if "=" in entry else f"scheduler={entry}"
        configs[entry] = compose(config_name="config", overrides=[*overrides, override])
    return configs


def run_schedule_task(cfg, run_dir: Path) -> dict:
    spe = steps_per_epoch(cfg)
    epochs = int(cfg.trainer.epochs)
    curves = {}
    configs = compared_configs(cfg)
    for label, c in configs.items():
        if c is not cfg:  # the run's own config was checked before the task started
            validate(c)
        curves[label] = lr_curve(c.scheduler, float(c.optimizer.lr), epochs, spe)
    run_dir.mkdir(parents=True, exist_ok=True)
    png = run_dir / "schedule.png"
    plot_schedules(curves, png, title=f"{epochs} epochs x {spe} steps")
    write_json(run_dir / "schedule.json", {k: {"t": t, "lr": lr} for k, (t, lr) in curves.items()})

    points = sorted({e for c in configs.values() for e in key_epochs(c.scheduler, epochs)})
    width = max(len(k) for k in curves)
    print(f"{'LR at epoch':<{width}}  " + "  ".join(f"{e:>9d}" for e in points))
    for label, (_t, lr) in curves.items():
        at = [lr[e * spe] for e in points]
        print(f"{label:<{width}}  " + "  ".join(f"{v:9.3g}" for v in at))
    print(f"plot: {png}")
    return curves
