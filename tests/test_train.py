"""The training loop end to end: it learns, it is reproducible, and it leaves every result file."""

from __future__ import annotations

import json

import pytest
from helpers import FAST, compose_config

from trainer import data
from trainer.engine.fit import fit
from trainer.records import machine_figures, read_metrics

RESULT_FILES = ["config.yaml", "metrics.jsonl", "steps.csv", "summary.json", "provenance.json", "checkpoint.pt"]
TIMING_KEYS = set(machine_figures())


def train(tmp_path, *overrides, name="run"):
    cfg = compose_config([*FAST, *overrides])
    summary = fit(cfg, tmp_path / name, {"overrides": list(overrides)})
    return summary, read_metrics(tmp_path / name)


@pytest.mark.slow
def test_two_epochs_on_synthetic_data_learn(tmp_path):
    summary, metrics = train(
        tmp_path,
        "trainer.epochs=2",
        "optimizer=momentum",
        "optimizer.lr=0.05",
        "trainer.batch_size=64",
        "dataset.train_size=4096",
        "dataset.val_size=0",
    )
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    steps = [line.split(",") for line in (tmp_path / "run" / "steps.csv").read_text().splitlines()[1:]]
    first_losses = [float(s[3]) for s in steps[:5]]
    assert metrics[-1]["train_loss"] < 0.5 * (sum(first_losses) / 5)
    assert metrics[-1]["test_acc"] > 0.5  # chance is 0.1
    assert [r["epoch"] for r in metrics] == [1, 2]
    for r in metrics:
        assert r["gap"] == pytest.approx(r["train_acc"] - r["test_acc"])
        assert r["lr"] == 0.05
    assert len(steps) == 2 * 64  # 4096 examples / 64 per batch


@pytest.mark.slow
def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    _, a = train(tmp_path, "trainer.epochs=1", "seed=3", name="a")
    _, b = train(tmp_path, "trainer.epochs=1", "seed=3", name="b")
    _, c = train(tmp_path, "trainer.epochs=1", "seed=4", name="c")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]  # noqa: E731
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)
    assert (tmp_path / "a" / "steps.csv").read_text() == (tmp_path / "b" / "steps.csv").read_text()


@pytest.mark.parametrize("model,optimizer", [("mlp", "adam"), ("resnet", "nesterov"), ("lenet", "adamw")])
@pytest.mark.slow
def test_every_model_trains_with_other_optimizers(tmp_path, model, optimizer):
    summary, _ = train(
        tmp_path, f"model={model}", f"optimizer={optimizer}", "trainer.epochs=1", "trainer.max_steps_per_epoch=4"
    )
    assert summary["status"] == "completed" and summary["steps_per_epoch"] == 4


def test_summary_and_provenance_describe_the_run(tmp_path):
    summary, metrics = train(tmp_path, "trainer.epochs=1", "trainer.max_steps_per_epoch=3")
    run = tmp_path / "run"
    for name in RESULT_FILES:
        assert (run / name).exists(), name
    assert summary["final_test_acc"] == metrics[-1]["test_acc"]
    assert summary["device"] == "cpu" and summary["precision"] == "fp32"
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["seed"] == 0 and prov["packages"]["torch"] and "git_commit" in prov and "command" in prov
    assert "max_steps_per_epoch: 3" in (run / "config.yaml").read_text()


@pytest.mark.slow
@pytest.mark.skipif(
    not data.DEBIAN_FASHION_MNIST.exists(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
)
def test_real_fashion_mnist_run_through_run_py(cli, tmp_path):
    run = tmp_path / "fm"
    result = cli(
        [
            "trainer.epochs=1",
            "trainer.max_steps_per_epoch=20",
            "trainer.progress=false",
            "logger=none",
            f"dataset.root={tmp_path / 'data'}",
            f"hydra.run.dir={run}",
        ]
    )
    assert result.returncode == 0, result.stderr
    for name in RESULT_FILES:
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_per_epoch"] == 20
    assert summary["final_test_acc"] == read_metrics(run)[0]["test_acc"]
    assert len((run / "steps.csv").read_text().splitlines()) == 1 + 20
    assert (tmp_path / "data" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").exists()
    assert (run / ".hydra" / "overrides.yaml").exists()
    assert result.stdout.strip().endswith(f"results in {run}")
    assert result.stdout.splitlines()[-1].startswith(f"completed: test acc {summary['final_test_acc']:.2%}")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.slow
def test_mixed_precision_trains_and_checkpoints_its_scaler(tmp_path, precision):
    import torch

    summary, metrics = train(tmp_path, f"trainer.precision={precision}", "trainer.epochs=1")
    assert summary["status"] == "completed" and summary["precision"] == precision
    assert metrics[0]["test_acc"] > 0.1
    scaler = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["scaler"]
    assert ("scale" in scaler) == (precision == "fp16")  # fp16 scales the loss, bf16 needs no scaler
