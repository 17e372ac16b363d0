"""Datasets as uint8 tensors resident on the device, normalized on the device, batched by a device randperm.

Files are read by this module (IDX for MNIST / Fashion-MNIST, pickled batches for CIFAR-10) from the
torchvision folder layout; torchvision is used only to download them where a network is available.
Your own data (`dataset.format`): an image folder (ImageFolder layout, resized once at load), any torchvision
classification set by name, or tensors in a .pt / .npz file; each becomes the same uint8 Split as the others.
"""

from __future__ import annotations

import copy
import difflib
import gzip
import inspect
import os
import pickle
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.errors import ConfigError
from trainer.records import atomic_write_bytes

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {  # split -> (images, labels), as torchvision names them in <root>/<Class>/raw/
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_DATASETS = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST"}
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = ["test_batch"]
TRAIN_SIZES = {"fashion_mnist": 60000, "mnist": 60000, "cifar10": 50000}
# A training split whose size only its loading tells (a torchvision set by name; a root or path not set yet):
# no check before loading can fail on it, and load() and the trainer check the loaded size instead.
SIZE_UNKNOWN = sys.maxsize // 4


@dataclass
class Split:
    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor  # int64, N
    # where the split came from, for messages: (file, lowest label, highest label) per label file, image files
    label_files: list[tuple[Path, int, int]] = field(default_factory=list, repr=False)
    image_files: list[Path] = field(default_factory=list, repr=False)


def data_root(cfg) -> Path:
    if cfg.root:
        return Path(cfg.root).expanduser()
    if os.environ.get("SCHEDLAB_DATA"):
        return Path(os.environ["SCHEDLAB_DATA"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "schedlab" / "data"


def file_train_size(cfg) -> int:
    """Size of the dataset's training split (before a validation set is held out of it), known without
    loading it."""
    if cfg.name == "synthetic":
        return cfg.train_size
    if (fmt := dataset_format(cfg)) is not None:
        return _own_train_size(cfg, fmt)
    if cfg.name not in TRAIN_SIZES:
        raise ConfigError(f"dataset.name={cfg.name!r} is not allowed: use one of synthetic, {', '.join(TRAIN_SIZES)}")
    return TRAIN_SIZES[cfg.name]


def val_count(cfg, n: int) -> int:
    """dataset.val_size as a number of examples out of n: a count (>= 1) or a fraction (< 1) of them."""
    size = cfg.val_size
    return round(size * n) if size < 1 else int(size)


def train_size(cfg) -> int:
    """Size of the set a run trains on: the training split less the validation set (for checks before any
    work starts)."""
    n = file_train_size(cfg)
    return n - val_count(cfg, n)


def split_validation(split: Split, count: int, seed: int) -> tuple[Split, Split]:
    """Hold `count` examples out of `split`, stratified by class (each class gives its share, the remainder
    to the classes with the largest fractional shares), chosen by `seed` alone: the same examples for every
    seed and every arm of a sweep. Returns (train, validation), each in the split's original order."""
    labels = split.labels
    classes, counts = torch.unique(labels, return_counts=True)
    quota = counts.double() * count / len(labels)
    take = quota.floor().long()
    short = count - int(take.sum())
    if short:
        take[torch.argsort(quota - take, descending=True, stable=True)[:short]] += 1
    g = torch.Generator().manual_seed(int(seed))
    held = torch.zeros(len(labels), dtype=torch.bool)
    for c, k in zip(classes.tolist(), take.tolist(), strict=True):
        members = torch.nonzero(labels == c).squeeze(1)
        held[members[torch.randperm(len(members), generator=g)[:k]]] = True

    def part(mask: torch.Tensor) -> Split:
        return Split(split.images[mask], labels[mask], split.label_files, split.image_files)

    return part(~held), part(held)


# --- file formats -------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format): 0, 0, type 0x08 (uint8), ndim, ndim big-endian int32 dims."""
    data = path.read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ConfigError(f"{path} is not an uint8 IDX file (bad header); delete it and fetch the dataset again")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">i4"))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ConfigError(
            f"{path} is truncated or corrupt: {len(data)} bytes, the header {shape} needs {expected}; "
            "delete it and fetch the dataset again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (the inverse of read_idx)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    path.write_bytes(header + array.tobytes())


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one pickled CIFAR-10 batch: b'data' N x 3072 uint8 (RGB planes), b'labels' list of ints."""
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as e:
        raise ConfigError(f"{path} is truncated or corrupt ({e}); delete it and fetch the dataset again") from e
    if len(images) != len(labels):
        raise ConfigError(f"{path} is corrupt: {len(images)} images but {len(labels)} labels")
    return images, labels


# --- locating files -----------------------------------------------------------------------------


def _idx_folder(cfg, root: Path) -> Path:
    """<root>/<Class>/raw with the four IDX files, copying Debian's files or downloading as needed."""
    raw = root / IDX_DATASETS[cfg.name] / "raw"
    names = [n for pair in IDX_FILES.values() for n in pair]
    if all((raw / n).exists() for n in names):
        return raw
    tried = [f"{raw} (torchvision layout)"]
    if cfg.name == "fashion_mnist":
        tried.append(f"{DEBIAN_FASHION_MNIST} (Debian package dataset-fashion-mnist)")
        if all((DEBIAN_FASHION_MNIST / f"{n}.gz").exists() for n in names):
            raw.mkdir(parents=True, exist_ok=True)
            for n in names:  # atomic: parallel jobs may unpack at the same time
                atomic_write_bytes(raw / n, gzip.decompress((DEBIAN_FASHION_MNIST / f"{n}.gz").read_bytes()))
            return raw
    if cfg.download:
        import torchvision

        tried.append("torchvision download")
        cls = getattr(torchvision.datasets, IDX_DATASETS[cfg.name])
        try:
            cls(str(root), train=True, download=True)
            return raw
        except Exception as e:  # network errors come in many types
            tried[-1] += f" ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    hint = "apt-get install dataset-fashion-mnist, " if cfg.name == "fashion_mnist" else ""
    raise ConfigError(
        f"dataset={cfg.name}: no data found; tried {'; '.join(tried)}. Fix: {hint}"
        f"put the files in {raw} (set dataset.root or SCHEDLAB_DATA), or allow dataset.download=true with a network"
    )


def _cifar_folder(cfg, root: Path) -> Path:
    folder = root / CIFAR_FOLDER
    if all((folder / n).exists() for n in CIFAR_TRAIN + CIFAR_TEST):
        return folder
    tried = f"{folder} (torchvision layout)"
    if cfg.download:
        import torchvision

        try:
            torchvision.datasets.CIFAR10(str(root), train=True, download=True)
            return folder
        except Exception as e:
            tried += f"; torchvision download ({type(e).__name__})"
    raise ConfigError(
        f"dataset=cifar10: no data found; tried {tried}. Fix: put the python batches in {folder} "
        "(set dataset.root or SCHEDLAB_DATA), or allow dataset.download=true with a network"
    )


# --- loading ------------------------------------------------------------------------------------


def _idx_split(raw: Path, split: str) -> Split:
    image_file, label_file = (raw / n for n in IDX_FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ConfigError(f"{image_file} and {label_file} do not match: shapes {images.shape} and {labels.shape}")
    labels = labels.astype(np.int64)
    return Split(
        torch.from_numpy(images.copy()).unsqueeze(1),
        torch.from_numpy(labels),
        _ranges([(label_file, labels)]),
        [image_file],
    )


def _ranges(files: list[tuple[Path, np.ndarray]]) -> list[tuple[Path, int, int]]:
    return [(path, int(labels.min()), int(labels.max())) for path, labels in files if len(labels)]


def _cifar_split(folder: Path, names: list[str]) -> Split:
    parts = [read_cifar_batch(folder / n) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    files = [folder / n for n in names]
    label_files = _ranges([(f, p[1]) for f, p in zip(files, parts, strict=True)])
    return Split(torch.from_numpy(images), torch.from_numpy(labels), label_files, files)


def synthetic(cfg) -> tuple[Split, Split]:
    """Each class is a fixed smooth random pattern; an image is its pattern, shifted by up to 2 pixels,
    plus Gaussian noise. Deterministic for a given generator_seed, learnable within an epoch or two."""
    g = torch.Generator().manual_seed(cfg.generator_seed)
    c, s, k = cfg.channels, cfg.image_size, cfg.num_classes
    coarse = torch.rand(k, c, 7, 7, generator=g)
    patterns = torch.nn.functional.interpolate(coarse, size=(s, s), mode="bilinear", align_corners=False)

    def draw(n: int) -> Split:
        labels = torch.randint(0, k, (n,), generator=g)
        images = patterns[labels] + cfg.noise * torch.randn(n, c, s, s, generator=g)
        shifts = torch.randint(-2, 3, (n, 2), generator=g)
        # each image rolled by its own (dy, dx), as torch.roll does, in one gather
        grid = torch.arange(s)
        rows = (grid[None, :] - shifts[:, :1]) % s  # n x s
        cols = (grid[None, :] - shifts[:, 1:]) % s
        images = images[
            torch.arange(n)[:, None, None, None],
            torch.arange(c)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]
        return Split((images.clamp(0, 1) * 255).round().to(torch.uint8), labels)

    return draw(cfg.train_size), draw(cfg.test_size)


def load_splits(cfg) -> tuple[Split, Split]:
    """(train, test) as uint8 CPU tensors for the configured dataset, checked against the config's
    channels, image_size and num_classes."""
    if (fmt := dataset_format(cfg)) is not None:
        splits = OWN_READERS[fmt](cfg)
    elif cfg.name == "synthetic":
        splits = synthetic(cfg)
    else:
        file_train_size(cfg)  # rejects unknown names
        root = data_root(cfg)
        if cfg.name == "cifar10":
            folder = _cifar_folder(cfg, root)
            splits = _cifar_split(folder, CIFAR_TRAIN), _cifar_split(folder, CIFAR_TEST)
        else:
            raw = _idx_folder(cfg, root)
            splits = _idx_split(raw, "train"), _idx_split(raw, "test")
    check_splits(cfg, *splits)
    return splits


# --- your own data: an image folder, a torchvision set by name, tensors in a file ---------------------

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # ImageFolder's
TENSOR_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
TENSOR_SUFFIXES = (".pt", ".pth", ".npz")


def dataset_format(cfg) -> str | None:
    """The reader of your own data (dataset.format: image_folder, torchvision, tensors); None for a shipped set."""
    return getattr(cfg, "format", None) or None


def _own_train_size(cfg, fmt: str) -> int:
    if fmt == "image_folder" and cfg.root is not None:
        return sum(_image_folder(_expand(cfg.root))[1].values())
    if fmt == "tensors" and cfg.path is not None:
        return _tensor_file(_expand(cfg.path))["train_labels"][0][0]
    if fmt == "torchvision" and cfg.name == "FakeData":
        return int(_kwargs(cfg).get("size", 1000))
    return SIZE_UNKNOWN


def _expand(path: str) -> Path:
    return Path(str(path)).expanduser()


def _kwargs(cfg) -> dict:
    return dict(cfg.kwargs or {})


def _image_error(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# image folders


@lru_cache(maxsize=16)
def _image_folder(root: Path) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """(classes, images per class in train/, in test/) of an ImageFolder layout; one line naming dataset.root
    when it is not one. The classes are train/'s subfolders, sorted; test/ may not have another."""
    layout = "it must hold train/<class>/<image> and test/<class>/<image> (torchvision's ImageFolder layout)"
    if not root.is_dir():
        raise ConfigError(f"dataset.root={str(root)!r} is not allowed: there is no such folder; {layout}")
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise ConfigError(f"dataset.root={str(root)!r} is not allowed: it has no {split}/ folder; {layout}")
    counts = {}
    for split in ("train", "test"):
        folder = root / split
        classes = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
        counts[split] = {
            c: sum(1 for f in os.scandir(folder / c) if f.name.lower().endswith(IMAGE_EXTENSIONS)) for c in classes
        }
        if not any(counts[split].values()):
            raise ConfigError(
                f"dataset.root={str(root)!r} is not allowed: {folder} holds no images in class folders "
                f"({', '.join(IMAGE_EXTENSIONS)}); {layout}"
            )
    classes = sorted(counts["train"])
    extra = sorted(set(counts["test"]) - set(classes))
    if extra:
        raise ConfigError(
            f"dataset.root={str(root)!r} is not allowed: test/ has class folder(s) {', '.join(extra)} "
            f"that train/ has not ({', '.join(classes)}): the labels are train/'s sorted class folders"
        )
    return classes, counts["train"], counts["test"]


def check_image_folder(cfg) -> None:
    """Before loading: dataset.root is an ImageFolder layout with dataset.num_classes class folders."""
    root = _expand(cfg.root)
    classes, _, _ = _image_folder(root)
    if len(classes) != cfg.num_classes:
        shown = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
        raise ConfigError(
            f"dataset.num_classes={cfg.num_classes} does not match dataset.root={str(root)!r}: its "
            f"train/ has {len(classes)} class folders ({shown})"
        )


def _read_images(files: list[Path], mode: str, size: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(files), size, size, 3 if mode == "RGB" else 1), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as img:
                img = img.convert(mode)
                if img.size != (size, size):
                    img = img.resize((size, size), Image.Resampling.BILINEAR)
                out[i] = np.asarray(img).reshape(size, size, -1)
        except Exception as e:
            raise ConfigError(
                f"dataset.root: {path} cannot be read as an image ({_image_error(e)}); remove it or replace it"
            ) from None
    return out


def image_folder_splits(cfg) -> tuple[Split, Split]:
    """dataset=image_folder: root/train and root/test, images converted to grey or RGB and resized to image_size."""
    if cfg.root is None:
        raise ConfigError(
            "dataset.root=None is not allowed: dataset=image_folder needs the folder that holds "
            "train/<class>/<image> and test/<class>/<image>, e.g. dataset.root=~/my-images"
        )
    root = _expand(cfg.root)
    _image_folder.cache_clear()  # the files as they are now
    classes, _, _ = _image_folder(root)
    mode, size = ("L" if cfg.channels == 1 else "RGB"), cfg.image_size

    def split(name: str) -> Split:
        folder = root / name
        files, labels = [], []
        for label, c in enumerate(classes):
            if not (folder / c).is_dir():
                continue
            names = sorted(f.name for f in os.scandir(folder / c) if f.name.lower().endswith(IMAGE_EXTENSIONS))
            files += [folder / c / n for n in names]
            labels += [label] * len(names)
        images = torch.from_numpy(_read_images(files, mode, size)).permute(0, 3, 1, 2).contiguous()
        labels_t = torch.tensor(labels, dtype=torch.int64)
        return Split(images, labels_t, _ranges([(folder, labels_t.numpy())]), [folder])

    return split("train"), split("test")


# torchvision sets by name


def _torchvision_classes() -> dict[str, type]:
    import torchvision.datasets

    return {
        n: c
        for n in dir(torchvision.datasets)
        if isinstance(c := getattr(torchvision.datasets, n), type) and issubclass(c, torch.utils.data.Dataset)
    }


def _split_argument(cfg, cls: type) -> str | None:
    """How the class takes its split: `train` (True / False), `split` (train_split / test_split), or None."""
    params = inspect.signature(cls).parameters
    if "train" in params or "split" in _kwargs(cfg):  # EMNIST: split is its subset, train passes on
        return "train"
    return "split" if "split" in params else None


def check_torchvision_name(cfg) -> None:
    """Before loading: dataset.name is a torchvision.datasets class that has a train and a test split."""
    classes = _torchvision_classes()
    cls = classes.get(cfg.name)
    if cls is None:
        close = difflib.get_close_matches(cfg.name, classes, n=1)
        hint = f"did you mean {close[0]}?" if close else "e.g. SVHN, KMNIST, CIFAR100, STL10, FakeData"
        raise ConfigError(
            f"dataset.name={cfg.name!r} is not allowed: torchvision.datasets has no such dataset ({hint})"
        )
    if cfg.name != "FakeData" and _split_argument(cfg, cls) is None:
        raise ConfigError(
            f"dataset.name={cfg.name!r} is not allowed: torchvision.datasets.{cfg.name} has no train and "
            "test split (no `train` or `split` argument); put its files in an image folder "
            "(dataset=image_folder) or a tensors file (dataset=tensors)"
        )


def _to_split(ds, cfg, where: str) -> Split:
    """A torchvision dataset's (image, target) pairs as a uint8 Split, each image converted and resized."""
    from PIL import Image

    mode, size = ("L" if cfg.channels == 1 else "RGB"), cfg.image_size
    n = len(ds)
    images = np.empty((n, size, size, 3 if mode == "RGB" else 1), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        img, target = ds[i]
        if isinstance(img, torch.Tensor):
            from torchvision.transforms.functional import to_pil_image

            img = to_pil_image(img)
        if not isinstance(img, Image.Image):
            raise ConfigError(f"{where} is not allowed: its images are {type(img).__name__}, not PIL images or tensors")
        img = img.convert(mode)
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        images[i] = np.asarray(img).reshape(size, size, -1)
        if isinstance(target, torch.Tensor) and target.numel() == 1:
            target = target.item()
        if isinstance(target, (bool, float)) or not isinstance(target, (int, np.integer)):
            raise ConfigError(
                f"{where} is not allowed: its targets are {type(target).__name__}, not class indices "
                "(a classification set is needed)"
            )
        labels[i] = int(target)
    return Split(
        torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        torch.from_numpy(labels),
        _ranges([(Path(where), labels)]),
        [Path(where)],
    )


def torchvision_splits(cfg) -> tuple[Split, Split]:
    """dataset=torchvision: torchvision.datasets.<name>'s train and test splits from dataset.root (downloaded with
    dataset.download), as uint8 tensors. FakeData: dataset.kwargs.size random images of the configured shape and
    classes in each split, other ones in the test split."""
    check_torchvision_name(cfg)
    cls = _torchvision_classes()[cfg.name]
    where = f"dataset.name={cfg.name}"
    kwargs = _kwargs(cfg)
    params = inspect.signature(cls).parameters
    if cfg.name == "FakeData":
        size = int(kwargs.pop("size", 1000))
        shape = (cfg.channels, cfg.image_size, cfg.image_size)
        args = {"size": size, "image_size": shape, "num_classes": cfg.num_classes, **kwargs}
        made = [cls(**args, random_offset=0), cls(**args, random_offset=size)]
    else:
        root = data_root(cfg)
        if "root" in params or not params:
            kwargs["root"] = str(root)
        if "download" in params:
            kwargs["download"] = cfg.download
        how = _split_argument(cfg, cls)
        values = (True, False) if how == "train" else (cfg.train_split, cfg.test_split)
        made = []
        for value in values:
            try:
                made.append(cls(**kwargs, **{how: value}))
            except Exception as e:
                fix = "allow dataset.download=true with a network" if not cfg.download else "check the network"
                raise ConfigError(
                    f"{where}: torchvision.datasets.{cfg.name}({how}={value!r}) could not load it from "
                    f"{root} ({_image_error(e)}); put its files there (set dataset.root or SCHEDLAB_DATA) "
                    f"or {fix}"
                ) from None
    return _to_split(made[0], cfg, f"{where} (train)"), _to_split(made[1], cfg, f"{where} (test)")


# tensors in a .pt or .npz file


@lru_cache(maxsize=16)
def _tensor_file_at(path: Path, _stamp: tuple) -> dict[str, tuple[tuple[int, ...], str]]:
    """Each array of the file: (shape, dtype name), read without its data (a .pt through mmap, an .npz's headers)."""
    if path.suffix == ".npz":
        out = {}
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _fortran, dtype = read(f)
                out[info.filename[:-4]] = (tuple(shape), np.dtype(dtype).name)
        return out
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # the legacy (non-zip) format cannot be mapped
        saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict):
        raise ConfigError(
            f"dataset.path={str(path)!r} is not allowed: it holds a {type(saved).__name__}, not a dict of "
            f"tensors ({', '.join(TENSOR_KEYS)})"
        )
    out = {}
    for key, value in saved.items():
        if isinstance(value, (torch.Tensor, np.ndarray)):
            out[str(key)] = (tuple(value.shape), str(value.dtype).removeprefix("torch."))
    return out


def _tensor_file(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """The file's arrays (shape, dtype), with one line naming dataset.path when it is not a tensors file."""
    if not path.is_file():
        raise ConfigError(f"dataset.path={str(path)!r} is not allowed: there is no such file")
    if path.suffix not in TENSOR_SUFFIXES:
        raise ConfigError(
            f"dataset.path={str(path)!r} is not allowed: use a .pt file (torch.save of a dict) or an "
            ".npz file (numpy.savez)"
        )
    stat = path.stat()
    try:
        arrays = _tensor_file_at(path, (stat.st_mtime_ns, stat.st_size))
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(
            f"dataset.path={str(path)!r} cannot be read ({_image_error(e)}): it must be a .pt file "
            "(torch.save of a dict of tensors) or an .npz file (numpy.savez)"
        ) from None
    missing = [k for k in TENSOR_KEYS if k not in arrays]
    if missing:
        raise ConfigError(
            f"dataset.path={str(path)!r} is not allowed: it has no {', '.join(missing)}; it must hold "
            f"{', '.join(TENSOR_KEYS)} (it holds {', '.join(arrays) or 'no arrays'})"
        )
    return arrays


def _image_shape(shape: tuple[int, ...], layout: str) -> tuple[int, int, int] | None:
    """(channels, height, width) of N x C x H x W, N x H x W x C (by layout) or N x H x W images; None for another rank."""
    if len(shape) == 3:
        return 1, shape[1], shape[2]
    if len(shape) != 4:
        return None
    return (shape[1], shape[2], shape[3]) if layout == "NCHW" else (shape[3], shape[1], shape[2])


def check_tensor_file(cfg) -> None:
    """Before loading: dataset.path holds the four arrays, images of dataset.channels x image_size^2 in the
    layout, uint8 or float, and integer labels, one per image."""
    path = _expand(cfg.path)
    arrays = _tensor_file(path)
    layout = cfg.layout
    for split in ("train", "test"):
        (shape, dtype), (lshape, ldtype) = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        where = f"dataset.path={str(path)!r}"
        chw = _image_shape(shape, layout)
        if chw is None:
            raise ConfigError(
                f"{where} is not allowed: its {split}_images have shape {list(shape)}: they must be "
                "N x C x H x W (dataset.layout=NCHW), N x H x W x C (NHWC) or N x H x W (one channel)"
            )
        if not (dtype == "uint8" or dtype.startswith(("float", "bfloat"))):
            raise ConfigError(
                f"{where} is not allowed: its {split}_images are {dtype}: use uint8 (0..255) or floats in [0, 1]"
            )
        if len(lshape) != 1 or lshape[0] != shape[0]:
            raise ConfigError(
                f"{where} is not allowed: its {split}_labels have shape {list(lshape)}, for "
                f"{shape[0]} {split}_images: one label per image"
            )
        if not ldtype.startswith(("int", "uint")):
            raise ConfigError(f"{where} is not allowed: its {split}_labels are {ldtype}: use integers 0..num_classes-1")
        c, h, w = chw
        if c != cfg.channels:
            raise ConfigError(
                f"dataset.channels={cfg.channels} does not match the data: {path} holds {c}x{h}x{w} "
                f"{split}_images (channels x height x width, as dataset.layout={layout} reads "
                f"{list(shape)})"
            )
        if h != cfg.image_size or w != cfg.image_size:
            raise ConfigError(
                f"dataset.image_size={cfg.image_size} does not match the data: {path} holds "
                f"{c}x{h}x{w} {split}_images (channels x height x width)"
            )


def _as_uint8(array: Any, key: str, path: Path) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(array)) if not isinstance(array, torch.Tensor) else array
    if t.dtype == torch.uint8:
        return t
    if not t.is_floating_point():
        raise ConfigError(
            f"dataset.path={str(path)!r} is not allowed: its {key} are {t.dtype}: use uint8 or floats in [0, 1]"
        )
    t = t.float()
    lo, hi = float(t.min()), float(t.max())
    if not (0 <= lo and hi <= 1):
        raise ConfigError(
            f"dataset.path={str(path)!r} is not allowed: its {key} hold floats from {lo:g} to {hi:g}: "
            "floats must be in [0, 1] (or save uint8 0..255)"
        )
    return (t * 255).round().to(torch.uint8)


def tensor_splits(cfg) -> tuple[Split, Split]:
    """dataset=tensors: the four arrays of dataset.path as uint8 N x C x H x W images and int64 labels."""
    if cfg.path is None:
        raise ConfigError(
            "dataset.path=None is not allowed: dataset=tensors needs a .pt or .npz file holding "
            f"{', '.join(TENSOR_KEYS)}, e.g. dataset.path=~/data.npz"
        )
    path = _expand(cfg.path)
    check_tensor_file(cfg)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in TENSOR_KEYS}
    else:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        arrays = {k: saved[k] for k in TENSOR_KEYS}

    def split(name: str) -> Split:
        images = _as_uint8(arrays[f"{name}_images"], f"{name}_images", path)
        if images.ndim == 3:
            images = images.unsqueeze(1)
        elif cfg.layout == "NHWC":
            images = images.permute(0, 3, 1, 2)
        labels = torch.as_tensor(np.asarray(arrays[f"{name}_labels"])).to(torch.int64)
        source = Path(f"{path} ({name}_labels)")
        return Split(images.contiguous(), labels, _ranges([(source, labels.numpy())]), [path])

    return split("train"), split("test")


OWN_READERS = {"image_folder": image_folder_splits, "torchvision": torchvision_splits, "tensors": tensor_splits}


def _files(split: Split) -> str:
    if not split.image_files:
        return "the generated images"
    if len(split.image_files) == 1:
        return str(split.image_files[0])
    return f"{', '.join(f.name for f in split.image_files)} in {split.image_files[0].parent}"


def check_splits(cfg, train: Split, test: Split) -> None:
    """Raise ConfigError, one line naming the key, when the loaded data is not what the config says: images
    of another shape than dataset.channels x dataset.image_size^2, labels outside [0, dataset.num_classes)
    (naming the file when the other files agree with the config), or files holding another number of
    classes than dataset.num_classes."""
    channels, size, k = cfg.channels, cfg.image_size, cfg.num_classes
    for split in (train, test):
        _n, c, h, w = split.images.shape
        shape = f"{c}x{h}x{w}"
        if c != channels:
            raise ConfigError(
                f"dataset.channels={channels} does not match the data: {_files(split)} hold {shape} images "
                f"(channels x height x width), {c} channel(s)"
            )
        if h != size or w != size:
            raise ConfigError(
                f"dataset.image_size={size} does not match the data: {_files(split)} hold {shape} images "
                "(channels x height x width)"
            )
    sources = [
        source
        for split, generated in ((train, "the generated training set"), (test, "the generated test set"))
        for source in (split.label_files or _ranges([(generated, split.labels.numpy())]))
    ]
    if not sources:
        return
    for name, lo, _hi in sources:
        if lo < 0:
            raise ConfigError(
                f"{name} holds label {lo}: labels must be 0 or more; delete it and fetch the dataset again"
            )
    lo, hi = min(s[1] for s in sources), max(s[2] for s in sources)
    over = [s for s in sources if s[2] >= k]
    if over and len(over) < len(sources):  # the other files agree with the config: this one is corrupt
        name, _lo, top = over[0]
        raise ConfigError(
            f"{name} holds label {top}, outside 0..{k - 1} (dataset.num_classes={k}, which the other files "
            "agree with); delete it and fetch the dataset again"
        )
    # a generated set may miss its last classes by chance; files with fewer classes than configured are a mistake
    if over or (hi + 1 < k and cfg.name != "synthetic"):
        raise ConfigError(
            f"dataset.num_classes={k} does not match the data: its labels are {lo}..{hi} ({hi + 1} classes)"
        )


def num_batches(size: int, batch_size: int, limit: int | None = None) -> int:
    """Batches in an epoch: the last one may be smaller; `limit` caps them (trainer.max_steps_per_epoch)."""
    n = -(-size // batch_size)
    return min(n, limit) if limit else n


class DeviceDataset:
    """A split held on the device as uint8; batches are normalized there (no DataLoader, no host copies)."""

    def __init__(self, split: Split, mean: torch.Tensor, std: torch.Tensor, device: torch.device, channels_last: bool):
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        # (x / 255 - mean) / std as one multiply-add on the uint8 values
        self.scale = (1.0 / (255.0 * std)).view(1, -1, 1, 1).to(device)
        self.shift = (-mean / std).view(1, -1, 1, 1).to(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        return len(self.labels)

    def num_batches(self, batch_size: int, limit: int | None = None) -> int:
        return num_batches(len(self), batch_size, limit)

    def fixed_subset(self, size: int) -> DeviceDataset | None:
        """`size` examples spread evenly over the set (every (len/size)-th, the same for every seed and arm),
        normalized as the set is; the whole set when it is smaller; None for size 0."""
        if size <= 0:
            return None
        subset = copy.copy(self)
        if size < len(self):
            idx = torch.linspace(0, len(self) - 1, size, device=self.labels.device).round().long()
            subset.images, subset.labels = self.images[idx], self.labels[idx]
        return subset

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled when a generator is given (a device randperm); the last batch may be smaller."""
        order = torch.randperm(len(self), device=self.labels.device, generator=generator) if generator else None
        for b in range(self.num_batches(batch_size, limit)):
            sel = slice(b * batch_size, (b + 1) * batch_size)
            idx = order[sel] if order is not None else sel
            x = torch.addcmul(self.shift, self.images[idx].float(), self.scale)
            yield x.contiguous(memory_format=self.memory_format), self.labels[idx]


def pixel_mean_std(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (unbiased) std of uint8 images scaled to [0, 1], exactly, from a histogram of
    the 256 pixel values: no float copy of the whole set."""
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        n = counts.sum()
        mean = (counts * values).sum() / n
        means.append(mean)
        stds.append(((counts * (values - mean) ** 2).sum() / (n - 1)).sqrt())
    return torch.stack(means).float(), torch.stack(stds).float().clamp_min(1e-6)


def load(
    cfg, device: torch.device, channels_last: bool = False
) -> tuple[DeviceDataset, DeviceDataset | None, DeviceDataset]:
    """Load the dataset once onto the device as (train, validation, test); the validation set (None when
    dataset.val_size is 0) is held out of the training split by dataset.split_seed. Mean and std come from
    the images a run trains on."""
    train, test = load_splits(cfg)
    val = None
    if count := val_count(cfg, len(train.labels)):
        if count >= len(train.labels):
            raise ConfigError(
                f"dataset.val_size={cfg.val_size:g} leaves nothing to train on: the training files hold "
                f"{len(train.labels)} examples; hold out fewer (a fraction such as 0.1 works for any size)"
            )
        train, val = split_validation(train, count, cfg.split_seed)
    if cfg.normalize:
        mean, std = pixel_mean_std(train.images)
    else:
        mean, std = torch.zeros(train.images.shape[1]), torch.ones(train.images.shape[1])
    on_device = [None if s is None else DeviceDataset(s, mean, std, device, channels_last) for s in (train, val, test)]
    return on_device[0], on_device[1], on_device[2]
