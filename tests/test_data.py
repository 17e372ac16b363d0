"""Dataset loading through the real readers, on small files written in the real formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer import data
from trainer.config import ImageDatasetConfig, SyntheticDatasetConfig
from trainer.errors import ConfigError

SHAPES = {"cifar10": dict(channels=3, image_size=32)}  # conf/dataset/cifar10.yaml's; the others' are the defaults


def dataset_cfg(name: str, root: Path, **kw):
    """A shipped set's typed dataset node, as a run gets it, reading the files under `root`."""
    values = {"name": name, "root": str(root), "download": False, "val_size": 0, **SHAPES.get(name, {}), **kw}
    return ImageDatasetConfig(**values)


def write_idx_dataset(root: Path, folder: str, n_train: int = 50, n_test: int = 20) -> dict:
    rng = np.random.default_rng(0)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for split, (images, labels) in data.IDX_FILES.items():
        n = n_train if split == "train" else n_test
        arrays[images] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[labels] = rng.integers(0, 10, n, dtype=np.uint8)
    for name, array in arrays.items():
        data.write_idx(raw / name, array)
    return arrays


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_files_load_with_their_exact_pixels(tmp_path, name, folder):
    arrays = write_idx_dataset(tmp_path, folder)
    train, test = data.load_splits(dataset_cfg(name, tmp_path))
    assert train.images.shape == (50, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (20, 1, 28, 28)
    assert np.array_equal(train.images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(test.labels.numpy(), arrays["t10k-labels-idx1-ubyte"].astype(np.int64))


def test_idx_header_written_in_the_published_layout(tmp_path):
    path = tmp_path / "x"
    data.write_idx(path, np.zeros((3, 2, 2), dtype=np.uint8))
    raw = path.read_bytes()
    # magic 0x00000803, then the dims as big-endian int32, then the pixels
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert raw[4:16] == (3).to_bytes(4, "big") + (2).to_bytes(4, "big") + (2).to_bytes(4, "big")
    assert len(raw) == 16 + 12


def test_truncated_idx_file_is_named_in_the_error(tmp_path):
    write_idx_dataset(tmp_path, "MNIST")
    victim = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte is truncated"):
        data.load_splits(dataset_cfg("mnist", tmp_path))


def test_cifar10_python_batches_load(tmp_path):
    folder = tmp_path / data.CIFAR_FOLDER
    folder.mkdir()
    rng = np.random.default_rng(1)
    written = {}
    for name in data.CIFAR_TRAIN + data.CIFAR_TEST:
        batch = {
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, 4).tolist(),
            b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
            b"filenames": [f"img{i}.png".encode() for i in range(4)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        written[name] = batch
    train, test = data.load_splits(dataset_cfg("cifar10", tmp_path))
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    # rows are the R, G, B planes of a 32x32 image, in that order
    first = written["data_batch_1"][b"data"][0]
    assert np.array_equal(train.images[0, 1].numpy().ravel(), first[1024:2048])
    assert train.labels[:4].tolist() == written["data_batch_1"][b"labels"]


def test_missing_dataset_says_what_was_tried_and_how_to_fix(tmp_path):
    with pytest.raises(ConfigError) as e:
        data.load_splits(dataset_cfg("mnist", tmp_path / "empty"))
    message = str(e.value)
    assert "\n" not in message
    assert "dataset=mnist" in message and "dataset.root" in message and "download" in message


@pytest.mark.skipif(not data.DEBIAN_FASHION_MNIST.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_taken_from_the_debian_package(tmp_path):
    train, test = data.load_splits(dataset_cfg("fashion_mnist", tmp_path))
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert sorted(train.labels.unique().tolist()) == list(range(10))
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()


def synthetic_cfg(**kw):
    base = dict(channels=1, image_size=28, num_classes=10, train_size=256, test_size=64, val_size=0)
    return SyntheticDatasetConfig(**{**base, "noise": 0.35, "generator_seed": 7, **kw})


def test_synthetic_is_deterministic_and_depends_on_its_seed():
    a, _ = data.synthetic(synthetic_cfg())
    b, _ = data.synthetic(synthetic_cfg())
    c, _ = data.synthetic(synthetic_cfg(generator_seed=8))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


def test_device_batches_are_normalized_and_cover_every_example_once():
    train, _val, _test = data.load(synthetic_cfg(), torch.device("cpu"))
    xs, ys = zip(*train.batches(100, torch.Generator().manual_seed(0)), strict=False)
    assert [len(y) for y in ys] == [100, 100, 56]  # the last batch is kept, as a DataLoader does
    x = torch.cat(xs)
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-2
    # every label appears exactly as often as in the split: a permutation, not a sample with replacement
    assert torch.equal(torch.cat(ys).bincount(minlength=10), train.labels.bincount(minlength=10))
    limited = list(train.batches(100, torch.Generator().manual_seed(0), limit=2))
    assert len(limited) == 2 and train.num_batches(100, 2) == 2


def test_pixel_statistics_from_the_histogram_equal_the_direct_ones():
    images = torch.randint(0, 256, (500, 3, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = data.pixel_mean_std(images)
    x = images.double() / 255
    assert torch.allclose(mean.double(), x.mean(dim=(0, 2, 3)), atol=1e-7)
    assert torch.allclose(std.double(), x.std(dim=(0, 2, 3)), atol=1e-7)


# --- the loaded data against the config (dataset.num_classes, channels, image_size) ----------------------

IDX_CONFIG = dict(channels=1, image_size=28, num_classes=10)


def write_cifar_dataset(root: Path, labels: dict[str, list[int]] | None = None) -> Path:
    folder = root / data.CIFAR_FOLDER
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name in data.CIFAR_TRAIN + data.CIFAR_TEST:
        batch = {
            b"labels": (labels or {}).get(name, list(range(10))),
            b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    return folder


def one_line_error(cfg) -> str:
    with pytest.raises(ConfigError) as e:
        data.load_splits(cfg)
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_files_matching_the_config_load(tmp_path, name, folder):
    write_idx_dataset(tmp_path, folder, n_train=200, n_test=100)  # every class present
    train, test = data.load_splits(dataset_cfg(name, tmp_path, **IDX_CONFIG))
    assert train.images.shape == (200, 1, 28, 28) and len(test.labels) == 100


def test_num_classes_above_the_files_is_refused_naming_both(tmp_path):
    write_idx_dataset(tmp_path, "FashionMNIST", n_train=200, n_test=100)
    message = one_line_error(dataset_cfg("fashion_mnist", tmp_path, **{**IDX_CONFIG, "num_classes": 100}))
    assert message == "dataset.num_classes=100 does not match the data: its labels are 0..9 (10 classes)"


def test_num_classes_below_the_files_is_refused_naming_both(tmp_path):
    write_idx_dataset(tmp_path, "MNIST", n_train=200, n_test=100)
    message = one_line_error(dataset_cfg("mnist", tmp_path, **{**IDX_CONFIG, "num_classes": 5}))
    assert message == "dataset.num_classes=5 does not match the data: its labels are 0..9 (10 classes)"


def test_an_out_of_range_label_in_one_file_names_the_file(tmp_path):
    arrays = write_idx_dataset(tmp_path, "MNIST", n_train=200, n_test=100)
    labels = arrays["t10k-labels-idx1-ubyte"].copy()
    labels[7] = 200
    data.write_idx(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", labels)
    message = one_line_error(dataset_cfg("mnist", tmp_path, **IDX_CONFIG))
    assert "t10k-labels-idx1-ubyte holds label 200, outside 0..9 (dataset.num_classes=10" in message


def test_cifar_label_out_of_range_or_negative_names_the_batch(tmp_path):
    write_cifar_dataset(tmp_path / "a", {"data_batch_3": [0, 1, 2, 3, 4, 5, 6, 7, 8, 12]})
    cfg = dict(channels=3, image_size=32, num_classes=10)
    message = one_line_error(dataset_cfg("cifar10", tmp_path / "a", **cfg))
    assert "data_batch_3 holds label 12, outside 0..9" in message
    write_cifar_dataset(tmp_path / "b", {"test_batch": [-1, *range(9)]})
    assert "test_batch holds label -1" in one_line_error(dataset_cfg("cifar10", tmp_path / "b", **cfg))
    write_cifar_dataset(tmp_path / "c")
    train, test = data.load_splits(dataset_cfg("cifar10", tmp_path / "c", **cfg))
    assert train.images.shape == (50, 3, 32, 32) and test.labels.tolist() == list(range(10))


def test_channels_and_image_size_against_the_files_shape(tmp_path):
    write_idx_dataset(tmp_path, "MNIST", n_train=200, n_test=100)
    message = one_line_error(dataset_cfg("mnist", tmp_path, **{**IDX_CONFIG, "channels": 3}))
    assert message.startswith("dataset.channels=3 does not match the data: ")
    assert "train-images-idx3-ubyte hold 1x28x28 images" in message
    message = one_line_error(dataset_cfg("mnist", tmp_path, **{**IDX_CONFIG, "image_size": 32}))
    assert message.startswith("dataset.image_size=32 does not match the data: ")
    assert "1x28x28" in message
    write_cifar_dataset(tmp_path / "cifar")
    message = one_line_error(dataset_cfg("cifar10", tmp_path / "cifar", channels=1, image_size=32, num_classes=10))
    assert message.startswith("dataset.channels=1 does not match the data: data_batch_1") and "3x32x32" in message


def test_the_synthetic_set_passes_its_own_checks_and_a_mismatch_is_caught():
    train, test = data.load_splits(synthetic_cfg(channels=3, image_size=16, num_classes=4))
    assert train.images.shape[1:] == (3, 16, 16) and int(train.labels.max()) < 4
    tiny = synthetic_cfg(num_classes=50, train_size=4, test_size=4)  # may miss classes by chance: not an error
    data.load_splits(tiny)
    train, test = data.synthetic(synthetic_cfg())
    with pytest.raises(ConfigError, match=r"^dataset.num_classes=3 does not match the data: its labels are 0..9"):
        data.check_splits(synthetic_cfg(num_classes=3), train, test)
    with pytest.raises(
        ConfigError, match=r"^dataset.image_size=32 does not match the data: the generated images hold 1x28x28"
    ):
        data.check_splits(synthetic_cfg(image_size=32), train, test)


def test_load_checks_before_anything_goes_to_the_device(tmp_path):
    write_idx_dataset(tmp_path, "FashionMNIST", n_train=200, n_test=100)
    with pytest.raises(ConfigError, match="dataset.num_classes=100"):
        data.load(dataset_cfg("fashion_mnist", tmp_path, **{**IDX_CONFIG, "num_classes": 100}), torch.device("cpu"))
