"""The CUDA paths: bf16 / fp16 autocast with the grad scaler, the dataset on the device, torch.compile, the
benchmarks and stacked training on a GPU. Skipped without CUDA; `python -m pytest -m cuda` runs every
GPU test of the suite (tests/test_stack.py has the stacked ones)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import FAST, compose_config, stop_in_epoch

import trainer.engine.fit
from trainer.engine.fit import fit
from trainer.engine.setup import build
from trainer.records import Job, RunFolder

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

RUN = [*FAST, "trainer.device=cuda", "trainer.epochs=2", "trainer.max_steps_per_epoch=8"]


def test_the_data_lives_on_the_device_and_auto_picks_cuda_with_bf16():
    run = build(compose_config([*FAST, "trainer.device=auto", "trainer.precision=auto"]), job=Job())
    assert run.device.type == "cuda" and run.train_set.images.device.type == "cuda"
    assert run.train_set.images.dtype == torch.uint8 and run.test_set.labels.device.type == "cuda"
    assert run.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    x, y = next(run.train_set.batches(64, torch.Generator(device=run.device).manual_seed(0)))
    assert x.device.type == "cuda" and x.dtype == torch.float32 and y.device.type == "cuda"


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_each_precision_trains_on_cuda_and_resumes_exactly(tmp_path, precision, monkeypatch):
    whole = fit(compose_config([*RUN, f"trainer.precision={precision}"]), tmp_path / "whole", {})
    assert whole.status == "completed" and whole.precision == precision and whole.device.startswith("cuda")
    rows = RunFolder(tmp_path / "whole").read_metrics()
    assert all(math.isfinite(r.train_loss) for r in rows) and rows[-1].test_acc > 0.1
    assert rows[-1].cuda_peak_mb > 0
    saved = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    assert ("scale" in saved["scaler"]) == (precision == "fp16")  # fp16 scales the loss; bf16 needs no scaler
    # interrupted after epoch 1, resumed: the same numbers
    real = stop_in_epoch(monkeypatch, tmp_path / "cut", 2)
    with pytest.raises(KeyboardInterrupt):
        fit(compose_config([*RUN, f"trainer.precision={precision}"]), tmp_path / "cut", {})
    monkeypatch.setattr(trainer.engine.fit, "evaluate", real)
    fit(compose_config([*RUN, f"trainer.precision={precision}"]), tmp_path / "cut", {})
    cut = RunFolder(tmp_path / "cut").read_metrics()
    assert [(r.train_loss, r.test_acc) for r in cut] == [(r.train_loss, r.test_acc) for r in rows]


def test_compile_trains_on_cuda_close_to_eager(tmp_path):
    eager = fit(compose_config(RUN), tmp_path / "eager", {})
    compiled = fit(compose_config([*RUN, "trainer.compile=true"]), tmp_path / "compiled", {})
    assert compiled.status == eager.status == "completed"
    a, b = (RunFolder(tmp_path / d).read_metrics() for d in ("eager", "compiled"))
    for x, y in zip(a, b, strict=True):
        assert math.isclose(x.train_loss, y.train_loss, rel_tol=2e-2)


def test_the_epoch_benchmark_runs_on_cuda(tmp_path):
    from benchmarks import epoch

    out = tmp_path / "epoch.json"
    report = epoch.main(
        ["--dataset", "synthetic", "--epochs", "2", "--workers", "0", "--device", "cuda", "--json", str(out)]
    )
    assert report["schedlab"][0]["status"] == "completed" and report["baseline"]["median_epoch_s"] > 0
    assert json.loads(out.read_text())["hardware"]["gpu"]
