"""task=schedule: curves drawn with no data and no training, several overlaid in one figure."""

from __future__ import annotations

import json

import matplotlib.image
import pytest
from conftest import compose_config, run_cli

from schedulers import lr_curve


def test_schedule_task_overlays_several_schedules(tmp_path):
    run = tmp_path / "run"
    result = run_cli(["task=schedule", "scheduler=cosine_warmup", "schedule_plot.compare=[multistep,sqrt,'arm=d2l_sqrt']",
                      "trainer.epochs=12", "schedule_plot.steps_per_epoch=4", "dataset.root=/nonexistent",
                      f"hydra.run.dir={run}"])
    assert result.returncode == 0, result.stderr
    png = run / "schedule.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(png).shape[2] in (3, 4)
    curves = json.loads((run / "schedule.json").read_text())
    assert list(curves) == ["cosine_warmup", "multistep", "sqrt", "arm=d2l_sqrt"]
    for label, override, lr in [("cosine_warmup", "scheduler=cosine_warmup", 0.3), ("multistep", "scheduler=multistep", 0.3),
                                ("sqrt", "scheduler=sqrt", 0.3), ("arm=d2l_sqrt", "arm=d2l_sqrt", 0.1)]:
        cfg = compose_config([override, "trainer.epochs=12"])
        t, expected = lr_curve(cfg.scheduler, lr, 12, 4)
        assert curves[label]["lr"] == pytest.approx(expected, rel=1e-12), label
        assert len(t) == 12 * 4
    # the printed table starts at the warmup's start LR and names every curve
    assert "cosine_warmup" in result.stdout and "arm=d2l_sqrt" in result.stdout
    assert not (run / "metrics.jsonl").exists()  # nothing trained
