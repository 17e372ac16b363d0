"""Your own model and data: a model, a schedule and data files that live outside the
package, written by each test in its temporary folder. Every data format (an image folder, a torchvision set by
name, tensors in .pt and .npz files) loads the files' exact pixels and trains an own model with an own schedule;
every bad input is one line naming the key before any work (or, where only the loaded data tells, before any
training); an own model stacks with both strategies; and the README's section runs as typed (its sweeps with
both launchers)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FAST, ROOT, assert_close, bad_input, compose_config, readme_blocks, stacked

from trainer import data, models
from trainer.config import validate
from trainer.errors import ConfigError
from trainer.records import RunFolder

MY_MODELS = '''
"""A user's own models."""
import torch
from torch import nn

WIDTH = 8


class Net(nn.Module):
    """Takes in_channels and num_classes (not image_size); width from model.kwargs."""

    def __init__(self, in_channels, num_classes, width=WIDTH):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x):
        return self.body(x)


class Flat(nn.Module):
    """A linear model that assumes 28x28 grey images."""

    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(28 * 28, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


class Reads(Net):
    """Reads a value of its input on the host: vmap cannot batch that."""

    def forward(self, x):
        return super().forward(x) * (1 + 0 * x.abs().max().item())


def make_net(num_classes):
    return Net(1, num_classes)


def not_a_model():
    return 42
'''

MY_SCHEDULES = """
def halve(t, every=1.0):
    return 0.5 ** (t / every)
"""

SHORT = [
    "logger=none",
    "trainer.progress=false",
    "trainer.epochs=1",
    "trainer.max_steps_per_epoch=2",
    "trainer.batch_size=16",
    "trainer.train_eval_size=32",
    "trainer.num_threads=1",
]
MODEL = [
    "model=custom",
    "model._target_=my_models.Net",
    "scheduler=custom",
    "scheduler.fn=my_schedules.halve",
    "scheduler.interval=step",
]
COLOUR = ["dataset.channels=3", "dataset.image_size=16", "dataset.num_classes=3"]


@pytest.fixture
def own(tmp_path, monkeypatch) -> Path:
    """my_models.py and my_schedules.py in a folder of their own, importable (as PYTHONPATH would make them)."""
    folder = tmp_path / "own"
    folder.mkdir()
    (folder / "my_models.py").write_text(MY_MODELS)
    (folder / "my_schedules.py").write_text(MY_SCHEDULES)
    (folder / "my_broken.py").write_text("raise ImportError('this module is broken')\n")
    monkeypatch.syspath_prepend(str(folder))
    for name in ("my_models", "my_schedules", "my_broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    models._check_model.cache_clear()
    return folder


# ------------------------------------------------------------------------------------ data files, written here


def draw(n: int, channels: int = 3, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n images N x H x W x C uint8 of three classes (a bright square in another place each) and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    labels[:3] = [0, 1, 2]  # every class in every split
    images = rng.integers(0, 80, (n, size, size, channels), dtype=np.uint8)
    for image, label in zip(images, labels, strict=True):
        image[4 * label : 4 * label + 6, 4 * label : 4 * label + 6] = 255
    return images, labels


def write_image_folder(root: Path, n_train: int = 60, n_test: int = 20, size: int = 16, odd: tuple = ()) -> dict:
    """root/{train,test}/class<k>/<i>.png; `odd`: indices of training images saved at another size (resized at
    load). Returns the arrays written, by split."""
    from PIL import Image

    written = {}
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images, labels = draw(n, seed=seed, size=size)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            img = Image.fromarray(image)
            if split == "train" and i in odd:
                img = img.resize((size + 7, size - 3))
            img.save(folder / f"{i:04d}.png")
        written[split] = (images, labels)
    return written


def write_tensors(path: Path, layout: str = "NCHW", as_float: bool = False) -> dict:
    """train_/test_images and _labels in a .pt or .npz file; returns the uint8 N x C x H x W arrays."""
    arrays, expected = {}, {}
    for split, n, seed in (("train", 60, 0), ("test", 20, 1)):
        images, labels = draw(n, seed=seed)
        expected[split] = (images.transpose(0, 3, 1, 2), labels)
        stored = images if layout == "NHWC" else images.transpose(0, 3, 1, 2)
        arrays[f"{split}_images"] = stored.astype(np.float32) / 255 if as_float else np.ascontiguousarray(stored)
        arrays[f"{split}_labels"] = labels
    if path.suffix == ".npz":
        np.savez(path, **arrays)
    else:
        torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, path)
    return expected


def write_kmnist(root: Path) -> dict:
    """KMNIST in torchvision's own layout (root/KMNIST/raw, IDX files): what its download leaves."""
    raw = root / "KMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for split, (images, labels) in data.IDX_FILES.items():
        n = 40 if split == "train" else 16
        x, y = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n, dtype=np.uint8) % 10
        data.write_idx(raw / images, x)
        data.write_idx(raw / labels, y)
        written[split] = (x[:, None], y)
    return written


def loaded(overrides: list[str]) -> tuple[data.Split, data.Split]:
    cfg = compose_config([*overrides, "trainer.batch_size=8"])
    validate(cfg)
    return data.load_splits(cfg.dataset)


def assert_split(split: data.Split, images: np.ndarray, labels: np.ndarray) -> None:
    assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
    assert torch.equal(split.images, torch.from_numpy(np.ascontiguousarray(images)))
    assert split.labels.tolist() == [int(v) for v in labels]


# ----------------------------------------------------------------------------------- each format, exactly


def test_an_image_folder_loads_its_pixels_labelled_by_sorted_class_folders_and_resized(tmp_path):
    from PIL import Image

    root = tmp_path / "images"
    written = write_image_folder(root, odd=(5,))
    train, test = loaded(["dataset=image_folder", f"dataset.root={root}", *COLOUR])
    order = {s: np.argsort(written[s][1], kind="stable") for s in written}  # read class by class, files sorted
    test_images, test_labels = written["test"]
    assert_split(test, test_images[order["test"]].transpose(0, 3, 1, 2), test_labels[order["test"]])
    images, labels = written["train"]
    assert train.labels.tolist() == sorted(labels.tolist())
    at = int(np.nonzero(order["train"] == 5)[0][0])
    with Image.open(root / "train" / f"class{labels[5]}" / "0005.png") as odd:  # saved at 23x13, read at 16x16
        resized = np.asarray(odd.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR))
    assert torch.equal(train.images[at], torch.from_numpy(resized.transpose(2, 0, 1).copy()))
    keep = [i for i in order["train"] if i != 5]
    assert torch.equal(
        train.images[[j for j, i in enumerate(order["train"]) if i != 5]],
        torch.from_numpy(images[keep].transpose(0, 3, 1, 2).copy()),
    )
    grey, _ = loaded(
        [
            "dataset=image_folder",
            f"dataset.root={root}",
            "dataset.channels=1",
            "dataset.image_size=16",
            "dataset.num_classes=3",
        ]
    )
    with Image.open(root / "train" / "class0" / sorted(os.listdir(root / "train" / "class0"))[0]) as first:
        assert torch.equal(grey.images[0, 0], torch.from_numpy(np.asarray(first.convert("L")).copy()))


@pytest.mark.parametrize(
    "name,layout,as_float",
    [("data.pt", "NCHW", False), ("data.npz", "NHWC", True), ("data.npz", "NCHW", False)],
)
def test_a_tensors_file_loads_its_pixels(tmp_path, name, layout, as_float):
    path = tmp_path / name
    written = write_tensors(path, layout, as_float)
    train, test = loaded(["dataset=tensors", f"dataset.path={path}", f"dataset.layout={layout}", *COLOUR])
    assert_split(train, *written["train"])  # floats in [0, 1] come back as the uint8 they were made of
    assert_split(test, *written["test"])


def test_one_channel_tensors_may_leave_the_channel_out(tmp_path):
    images, labels = draw(30, channels=1, size=28)
    np.savez(
        tmp_path / "grey.npz",
        train_images=images[..., 0],
        train_labels=labels,
        test_images=images[:10, ..., 0],
        test_labels=labels[:10],
    )
    train, _ = loaded(["dataset=tensors", f"dataset.path={tmp_path / 'grey.npz'}", "dataset.num_classes=3"])
    assert_split(train, images.transpose(0, 3, 1, 2), labels)


def test_a_torchvision_set_by_name_loads_its_own_files(tmp_path):
    written = write_kmnist(tmp_path)
    train, test = loaded(
        [
            "dataset=torchvision",
            "dataset.name=KMNIST",
            f"dataset.root={tmp_path}",
            "dataset.download=false",
            "dataset.channels=1",
            "dataset.image_size=28",
        ]
    )
    assert_split(train, *written["train"])
    assert_split(test, *written["test"])


def test_fake_data_by_name_needs_no_files():
    train, test = loaded(["dataset=torchvision", "+dataset.kwargs.size=40", *COLOUR])
    assert train.images.shape == test.images.shape == (40, 3, 16, 16)
    assert not torch.equal(train.images, test.images)  # the test split's images are other ones
    assert set(train.labels.tolist()) == {0, 1, 2}


def test_own_data_gets_the_validation_split_and_the_training_parts_statistics(tmp_path):
    path = tmp_path / "data.pt"
    write_tensors(path)
    cfg = compose_config(["dataset=tensors", f"dataset.path={path}", *COLOUR])
    train, val, test = data.load(cfg.dataset, torch.device("cpu"))
    assert (len(train), len(val), len(test)) == (54, 6, 20)  # a tenth held out
    whole, _ = data.load_splits(cfg.dataset)
    part, _ = data.split_validation(whole, 6, 0)
    mean, std = data.pixel_mean_std(part.images)
    assert torch.allclose(train.shift.flatten(), -mean / std)


# ------------------------------------------------------------------ an own model and schedule on each format

FORMATS = {
    "image_folder": lambda p: (
        write_image_folder(p / "images"),
        ["dataset=image_folder", f"dataset.root={p / 'images'}", *COLOUR],
    )[1],
    "tensors_pt": lambda p: (write_tensors(p / "d.pt"), ["dataset=tensors", f"dataset.path={p / 'd.pt'}", *COLOUR])[1],
    "tensors_npz": lambda p: (
        write_tensors(p / "d.npz", "NHWC", True),
        ["dataset=tensors", f"dataset.path={p / 'd.npz'}", "dataset.layout=NHWC", *COLOUR],
    )[1],
    "torchvision_kmnist": lambda p: (
        write_kmnist(p),
        [
            "dataset=torchvision",
            "dataset.name=KMNIST",
            f"dataset.root={p}",
            "dataset.download=false",
            "dataset.channels=1",
            "dataset.image_size=28",
        ],
    )[1],
    "torchvision_fake": lambda p: ["dataset=torchvision", "+dataset.kwargs.size=48", *COLOUR],
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_an_own_model_trains_with_an_own_schedule_on_each_format(tmp_path, own, fmt):
    from trainer.engine.fit import fit

    cfg = compose_config([*FORMATS[fmt](tmp_path), *MODEL, "+model.kwargs.width=4", *SHORT])
    validate(cfg)
    summary = fit(cfg, tmp_path / "run", {"overrides": ["model=custom"]})
    assert summary.status == "completed"
    folder = RunFolder(tmp_path / "run")
    assert len(folder.read_metrics()) == 1
    assert [s.lr for s in folder.read_steps()] == pytest.approx([0.3, 0.3 * 0.5**0.5])  # halve(t), t = 0, 1/2
    assert folder.read_summary().overrides == ["model=custom"]
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"]
    assert state["body.0.weight"].shape[0] == 4  # width from model.kwargs


# ------------------------------------------------------------------------------------ one line, before any work


def _bad(tmp_path: Path) -> list[tuple[list[str], str]]:
    """(overrides, the line's start) for every kind of bad input about an own model or own data."""
    root = tmp_path / "images"
    write_image_folder(root, n_train=12, n_test=6)
    (tmp_path / "no_test" / "train" / "a").mkdir(parents=True)
    write_tensors(tmp_path / "d.pt")
    np.savez(tmp_path / "missing.npz", train_images=np.zeros((4, 1, 28, 28), np.uint8), train_labels=np.zeros(4))
    np.savez(
        tmp_path / "ints.npz",
        train_images=np.zeros((4, 28, 28), np.int64),
        train_labels=np.zeros(4, np.int64),
        test_images=np.zeros((4, 28, 28), np.uint8),
        test_labels=np.zeros(4, np.int64),
    )
    np.savez(
        tmp_path / "short.npz",
        train_images=np.zeros((4, 28, 28), np.uint8),
        train_labels=np.zeros(3, np.int64),
        test_images=np.zeros((4, 28, 28), np.uint8),
        test_labels=np.zeros(4, np.int64),
    )
    (tmp_path / "data.csv").write_text("1,2\n")
    m = ["model=custom", *FAST]
    tensors = ["dataset=tensors", "trainer.batch_size=8"]
    return [
        (
            [*m, "model._target_=my_modelz.Net"],
            "model._target_=my_modelz.Net cannot be imported: No module named 'my_modelz'",
        ),
        (
            [*m, "model._target_=my_models.Nett"],
            "model._target_=my_models.Nett cannot be imported: my_models has no Nett",
        ),
        (
            [*m, "model._target_=my_broken.Net"],
            "model._target_=my_broken.Net cannot be imported: my_broken raised ImportError: this module is broken",
        ),
        (
            [*m, "model._target_=my_models.WIDTH"],
            "model._target_=my_models.WIDTH is not allowed: it is int 8, not an nn.Module class",
        ),
        (
            [*m, "model._target_=my_models.not_a_model"],
            "model._target_=my_models.not_a_model is not allowed: it returned a int, not an nn.Module",
        ),
        ([*m, "model._target_=Net"], "model._target_=Net is not allowed: name an nn.Module class by its import path"),
        (
            [*m, "model._target_=my_models.Net", "+model.kwargs.depth=2"],
            "model._target_=my_models.Net cannot be built: Net(in_channels=1, num_classes=10, depth=2) raised TypeError",
        ),
        (
            [*m, "model._target_=my_models.Flat", "dataset.channels=3", "dataset.image_size=32"],
            "model._target_=my_models.Flat fails on a zero batch of the dataset's channels and image_size ([2, 3, 32, 32], "
            "on cpu): RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x3072 and 784x10)",
        ),
        (
            [*m, "model._target_=torch.nn.Identity"],
            "model._target_=torch.nn.Identity returns [2, 1, 28, 28] for an input of [2, 1, 28, 28]: it must return logits "
            "[batch, num_classes] = [2, 10]",
        ),
        (
            ["dataset=image_folder", f"dataset.root={tmp_path / 'nowhere'}"],
            f"dataset.root='{tmp_path / 'nowhere'}' is not allowed: there is no such folder",
        ),
        (
            ["dataset=image_folder", f"dataset.root={tmp_path / 'no_test'}"],
            f"dataset.root='{tmp_path / 'no_test'}' is not allowed: it has no test/ folder",
        ),
        (
            ["dataset=image_folder", f"dataset.root={root}", "trainer.batch_size=8"],
            f"dataset.num_classes=10 does not match dataset.root='{root}': its train/ has 3 class folders (class0, class1, class2)",
        ),
        (
            ["dataset=image_folder", f"dataset.root={root}", "dataset.channels=2"],
            "dataset.channels=2 is not allowed: must be 1",
        ),
        (
            ["dataset=image_folder", "dataset.format=tensors"],
            "dataset.format='tensors' is not allowed: it is set by the option: use dataset=tensors",
        ),
        (
            [*tensors, f"dataset.path={tmp_path / 'nothing.pt'}"],
            f"dataset.path='{tmp_path / 'nothing.pt'}' is not allowed: there is no such file",
        ),
        (
            [*tensors, f"dataset.path={tmp_path / 'data.csv'}"],
            "is not allowed: use a .pt file (torch.save of a dict) or an .npz file",
        ),
        (
            [*tensors, f"dataset.path={tmp_path / 'missing.npz'}"],
            "is not allowed: it has no test_images, test_labels; it must hold",
        ),
        (
            [*tensors, f"dataset.path={tmp_path / 'ints.npz'}"],
            "is not allowed: its train_images are int64: use uint8 (0..255) or floats in [0, 1]",
        ),
        (
            [*tensors, f"dataset.path={tmp_path / 'short.npz'}"],
            "is not allowed: its train_labels have shape [3], for 4 train_images: one label per image",
        ),
        (
            [*tensors, f"dataset.path={tmp_path / 'd.pt'}", "dataset.num_classes=3"],
            f"dataset.channels=1 does not match the data: {tmp_path / 'd.pt'} holds 3x16x16 train_images",
        ),
        (
            [*tensors, f"dataset.path={tmp_path / 'd.pt'}", "dataset.channels=3", "dataset.layout=NHWC"],
            f"dataset.channels=3 does not match the data: {tmp_path / 'd.pt'} holds 16x3x16 train_images (channels x height x width, as dataset.layout=NHWC reads [60, 3, 16, 16])",
        ),
        (
            [*tensors, f"dataset.path={tmp_path / 'd.pt'}", "dataset.channels=3", "dataset.num_classes=3"],
            "dataset.image_size=28 does not match the data",
        ),
        (
            ["dataset=torchvision", "dataset.name=SVNH"],
            "dataset.name='SVNH' is not allowed: torchvision.datasets has no such dataset (did you mean SVHN?)",
        ),
        (
            ["dataset=torchvision", "dataset.name=EuroSAT"],
            "dataset.name='EuroSAT' is not allowed: torchvision.datasets.EuroSAT has no train and test split",
        ),
    ]


@pytest.mark.slow
def test_every_bad_own_model_or_data_is_one_line_before_any_work(tmp_path, own, capsys):
    """Each case's line from the checks run.py's precheck runs (composed as its JobComposer composes a sweep's jobs,
    so that the two dozen cases cost a few compositions); three of them through precheck itself, exit 2."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from trainer.cli import CONF_DIR, JobComposer
    from trainer.cli.main import without_hydra

    cases = _bad(tmp_path)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        composer = JobComposer("config")
        for overrides, says in cases:
            with pytest.raises(ConfigError) as e:
                validate(without_hydra(composer(overrides)))
            assert says in str(e.value) and "\n" not in str(e.value), (overrides, str(e.value))
    GlobalHydra.instance().clear()
    for overrides, says in (cases[0], cases[7], cases[-2]):
        line = bad_input(capsys, *overrides, f"hydra.run.dir={tmp_path / 'run'}")
        assert line == f"schedlab: error: {says}" or line.startswith("schedlab: error: ") and says in line, line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "case,says",
    [
        (
            "num_classes",
            "model._target_=my_models.Net returns [2, 5] for an input of [2, 1, 28, 28]: it must return "
            "logits [batch, num_classes] = [2, 10] (dataset.num_classes=10)",
        ),
        ("no_root", "dataset.root=None is not allowed: dataset=image_folder needs the folder that holds"),
        ("no_path", "dataset.path=None is not allowed: dataset=tensors needs a .pt or .npz file"),
        ("range", "is not allowed: its train_images hold floats from 2 to 2: floats must be in [0, 1]"),
        (
            "batch",
            "trainer.batch_size=64 is not allowed: must be at most the training set size (36 for dataset=KMNIST)",
        ),
    ],
)
def test_what_only_the_loaded_data_tells_is_one_line_before_any_training(tmp_path, own, case, says):
    from trainer.engine.fit import fit

    np.savez(
        tmp_path / "range.npz",
        train_images=np.full((8, 1, 28, 28), 2.0, np.float32),
        train_labels=np.arange(8) % 2,
        test_images=np.zeros((4, 1, 28, 28), np.float32),
        test_labels=np.arange(4) % 2,
    )
    if case == "batch":
        write_kmnist(tmp_path)
    overrides = {
        "num_classes": [*FAST, "model=custom", "model._target_=my_models.Net", "model.num_classes=5"],
        "no_root": ["dataset=image_folder", "trainer.batch_size=8"],
        "no_path": ["dataset=tensors", "trainer.batch_size=8"],
        "range": [
            "dataset=tensors",
            f"dataset.path={tmp_path / 'range.npz'}",
            "dataset.num_classes=2",
            "trainer.batch_size=4",
        ],
        "batch": [
            "dataset=torchvision",
            "dataset.name=KMNIST",
            f"dataset.root={tmp_path}",
            "dataset.download=false",
            "dataset.channels=1",
            "dataset.image_size=28",
            "trainer.batch_size=64",
        ],
    }[case]
    cfg = compose_config([*overrides, "logger=none", "trainer.progress=false"])
    validate(cfg)  # nothing to refuse before the data is loaded
    with pytest.raises(ConfigError, match=re.escape(says)) as e:
        fit(cfg, tmp_path / "run")
    assert "\n" not in str(e.value)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"
    assert not (tmp_path / "run" / "metrics.jsonl").read_text()  # no epoch trained


def test_a_torchvision_set_that_is_not_there_offline_says_what_to_do(tmp_path):
    cfg = compose_config(
        ["dataset=torchvision", "dataset.name=KMNIST", f"dataset.root={tmp_path}", "dataset.download=false"]
    )
    with pytest.raises(ConfigError) as e:
        data.load_splits(cfg.dataset)
    assert str(e.value).startswith(
        f"dataset.name=KMNIST: torchvision.datasets.KMNIST(train=True) could not load it from {tmp_path}"
    )
    assert str(e.value).endswith(
        "put its files there (set dataset.root or SCHEDLAB_DATA) or allow dataset.download=true with a network"
    )


# ----------------------------------------------------------------------------------------------- stacked


@pytest.mark.slow
def test_an_own_model_stacks_with_both_strategies(tmp_path, own):
    """Sequential stacks equal the jobs run alone bit for bit whatever the model (test_stack.py); batched ones run
    an own model under vmap, to float tolerance of the sequential ones."""
    base = [
        *FAST,
        *MODEL,
        "trainer.epochs=1",
        "trainer.max_steps_per_epoch=3",
        "trainer.num_threads=1",
        "trainer.train_eval_size=64",
    ]
    arms = [["seed=0"], ["seed=1", "optimizer=adamw", "optimizer.lr=0.003"]]
    _, sequential = stacked(tmp_path, "sequential", arms, "sequential", base)
    summaries, batched = stacked(tmp_path, "batched", arms, "batched", base)
    for seq, bat in zip(sequential, batched, strict=True):
        assert_close(seq, bat, rel=1e-4)
    assert [s.stack["strategy"] for s in summaries] == ["batched", "batched"]


def test_a_model_vmap_cannot_batch_falls_back_to_one_arm_after_another(tmp_path, own, capsys):
    """A batched stack of a model that reads a value on the host: one line says why, the stack trains its arms
    sequentially, and their numbers equal a sequential stack's bit for bit."""
    base = [
        *FAST,
        *MODEL,
        "model._target_=my_models.Reads",
        "trainer.epochs=1",
        "trainer.max_steps_per_epoch=3",
        "trainer.num_threads=1",
    ]
    arms = [["seed=0"], ["seed=1"]]
    _, sequential = stacked(tmp_path, "sequential", arms, "sequential", base)
    capsys.readouterr()
    summaries, fallen_back = stacked(tmp_path, "batched", arms, "batched", base)
    lines = [line for line in capsys.readouterr().err.splitlines() if "cannot be stacked" in line]
    assert len(lines) == 1
    assert lines[0].startswith("schedlab: model._target_=my_models.Reads cannot be stacked (")
    assert ".item()" in lines[0] and lines[0].endswith("its 2 arms train one after another")
    assert [s.stack["strategy"] for s in summaries] == ["sequential", "sequential"]
    for seq, fell in zip(sequential, fallen_back, strict=True):
        assert_close(seq, fell, rel=None)


def test_vmap_problem_says_in_one_line_why_a_model_cannot_train_batched(own):
    import my_models

    x = torch.randn(4, 1, 28, 28)
    assert models.vmap_problem(my_models.Net(1, 10), x) is None
    model = my_models.Reads(1, 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    why = models.vmap_problem(model, x)
    assert why is not None and ".item()" in why and "\n" not in why
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)


# ----------------------------------------------------------------------------------------- the README, as typed

SECTION = "Your own model, data and schedule"


def section_blocks(language: str) -> list[str]:
    return readme_blocks(SECTION, language)


def user_files(home: Path) -> list[Path]:
    """The README's python files, each saved where its first line says (under a HOME of the test's own)."""
    saved = []
    for code in section_blocks("python"):
        if where := re.match(r"# ~/(\S+\.py)", code):
            path = home / where[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(code)
            saved.append(path)
    assert [p.name for p in saved] == ["mine.py", "make_data.py"]
    return saved


@pytest.mark.slow
@pytest.mark.skipif(
    not (ROOT / ".venv" / "bin" / "activate").exists(), reason="no .venv: the README's set-up has not run"
)
def test_the_readme_section_runs_as_typed(tmp_path):
    """In a fresh shell whose HOME is the test's: the python file saved as the README says, then each command as
    typed, the runs shortened (one epoch of two steps, no tracker) and given folders of the test's: an own model, an
    own schedule, both data files, both launchers."""
    home = tmp_path / "home"
    user_files(home)
    commands = [line for block in section_blocks("bash") for line in block.strip().splitlines()]
    assert (
        len(commands) == 3 and all("run.py -m" in c for c in commands[1:]) and "hydra/launcher=stacked" in commands[2]
    )
    venv = str(Path(sys.prefix) / "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH", "SCHEDLAB_DATA")}
    env.update(
        HOME=str(home),
        WANDB_MODE="disabled",
        PATH=os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv),
    )
    short = (
        "trainer.epochs=1 trainer.max_steps_per_epoch=2 trainer.train_eval_size=64 logger=none trainer.progress=false"
    )
    for i, command in enumerate(commands):
        if "run.py" in command:
            key = "hydra.sweep.dir" if " -m " in command else "hydra.run.dir"
            command += f" {short} {key}={tmp_path / 'runs' / str(i)}"
        shell = f". .venv/bin/activate && {command}"
        done = subprocess.run(["bash", "-c", shell], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
    assert (home / "schedlab-own" / "data.npz").exists() and (home / "schedlab-own" / "images" / "test").is_dir()
    for sweep, strategy in (("1", None), ("2", "sequential")):  # the basic launcher, the stacked one
        for job in ("0", "1"):
            summary = json.loads((tmp_path / "runs" / sweep / job / "summary.json").read_text())
            assert summary["status"] == "completed", (sweep, job)
            assert summary.get("stack") == (strategy and {"jobs": ["0", "1"], "strategy": strategy})
            assert [s.lr for s in RunFolder(tmp_path / "runs" / sweep / job).read_steps()] == [
                0.3,
                0.3,
            ]  # epoch 1: t = 0


def test_the_readme_says_what_model_custom_passes(own):
    """The README's Net names in_channels and num_classes, not image_size: it is built with what it names."""
    import my_models

    model = models.build_model(compose_config(["model=custom", "model._target_=my_models.make_net"]).model)
    assert isinstance(model, my_models.Net)
    assert models.accepted(my_models.Net, {"in_channels": 1, "image_size": 28, "num_classes": 10}) == {
        "in_channels": 1,
        "num_classes": 10,
    }
    assert "def __init__(self, in_channels, num_classes, width=16)" in section_blocks("python")[0]
