"""Whole epochs of the d2l LeNet on Fashion-MNIST, batch 256: the d2l chapter's loop against schedlab's fit().

    python -m benchmarks.epoch                          # the d2l baseline and schedlab's defaults, 4 epochs each
    python -m benchmarks.epoch --variants cpu           # + the variants the CPU defaults were chosen from
    python -m benchmarks.epoch --no-baseline --epochs 30 --variants default "trainer.compile=true"

An epoch is training plus the test evaluation, as both loops time it. Each figure is the median over the
epochs after the first (warm-up). A variant is a preset name (below) or a quoted list of config overrides.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from benchmarks.common import hardware, median_after_warmup, memory_check, reset_peak_memory
from trainer import data
from trainer.cli import compose_config
from trainer.engine.fit import fit
from trainer.engine.setup import memory_use, resolve_device
from trainer.models import LeNet
from trainer.records import read_metrics, write_json

BATCH_SIZE = 256
D2L_LR = 0.3
D2L_WORKERS = 4  # d2l.get_dataloader_workers()
BASELINE = "d2l baseline"
VARIANTS = {  # presets: the alternatives to each default, one change at a time
    "cpu": [
        "default",
        "trainer.channels_last=false",
        "+optimizer.foreach=true",
        "+optimizer.fused=true",
        "trainer.compile=true",
        "trainer.compile=true trainer.channels_last=false",
        "trainer.num_threads=1",
        "trainer.precision=bf16",
    ],
    "cuda": [
        "default",
        "trainer.precision=fp32",
        "trainer.channels_last=false",
        "+optimizer.foreach=false",
        "+optimizer.fused=true",
        "trainer.compile=true",
        "trainer.compile=true +optimizer.fused=true",
    ],
}


class EpochTimer:
    """Seconds between start() and stop(): CUDA events on the GPU, perf_counter on the CPU."""

    def __init__(self, device: torch.device):
        self.stream = torch.cuda.current_stream(device) if device.type == "cuda" else None

    def start(self) -> None:
        if self.stream is not None:
            self.begin, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.begin.record(self.stream)
        else:
            self.begin = time.perf_counter()

    def stop(self) -> float:
        if self.stream is not None:
            self.end.record(self.stream)
            self.end.synchronize()
            return self.begin.elapsed_time(self.end) / 1000
        return time.perf_counter() - self.begin


# --- the d2l baseline ---------------------------------------------------------------------------------


class PILImages(Dataset):
    """Images served as torchvision's MNIST classes serve them (a PIL image through the transform), for
    datasets torchvision does not have (the synthetic one the tests use)."""

    def __init__(self, split: data.Split, transform):
        self.images, self.labels, self.transform = split.images, split.labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i, 0].numpy(), mode="L")), int(self.labels[i])


def d2l_data(dataset_cfg, workers: int) -> tuple[DataLoader, DataLoader]:
    """d2l.load_data_fashion_mnist: torchvision's dataset with ToTensor, DataLoaders with 4 workers."""
    trans = transforms.ToTensor()
    if dataset_cfg.name in data.IDX_DATASETS:
        data.load_splits(dataset_cfg)  # puts the files in torchvision's layout if they are not there yet
        cls = getattr(torchvision.datasets, data.IDX_DATASETS[dataset_cfg.name])
        root = str(data.data_root(dataset_cfg))
        train, test = (cls(root, train=split, transform=trans, download=False) for split in (True, False))
    else:
        train, test = (PILImages(split, trans) for split in data.load_splits(dataset_cfg))
    return (
        DataLoader(train, BATCH_SIZE, shuffle=True, num_workers=workers),
        DataLoader(test, BATCH_SIZE, shuffle=False, num_workers=workers),
    )


def d2l_accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """d2l.accuracy: the number of correct predictions, read to the host."""
    cmp = y_hat.argmax(axis=1).type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def d2l_evaluate(net: nn.Module, test_iter: DataLoader, device: torch.device) -> float:
    """d2l.evaluate_accuracy_gpu."""
    net.eval()
    correct, n = 0.0, 0
    with torch.no_grad():
        for X, y in test_iter:
            X, y = X.to(device), y.to(device)
            correct += d2l_accuracy(net(X), y)
            n += y.numel()
    return correct / n


def d2l_epoch(net, optimizer, loss, train_iter, test_iter, device) -> dict:
    """One epoch of d2l.train_ch6: two host reads per step (the loss and the accuracy, via d2l.Accumulator)."""
    metric = [0.0, 0.0, 0.0]  # loss sum, correct, examples
    net.train()
    for X, y in train_iter:
        optimizer.zero_grad()
        X, y = X.to(device), y.to(device)
        y_hat = net(X)
        l = loss(y_hat, y)  # noqa: E741 (d2l's name)
        l.backward()
        optimizer.step()
        with torch.no_grad():
            for k, v in enumerate((float(l * X.shape[0]), d2l_accuracy(y_hat, y), X.shape[0])):
                metric[k] += v
    return {
        "train_loss": metric[0] / metric[2],
        "train_acc": metric[1] / metric[2],
        "test_acc": d2l_evaluate(net, test_iter, device),
    }


def run_baseline(cfg, device: torch.device, epochs: int, workers: int) -> dict:
    """The d2l loop for `epochs` epochs; the same fields per epoch as schedlab's metrics.jsonl."""
    peak_reset = reset_peak_memory(device)
    torch.manual_seed(int(cfg.seed))
    train_iter, test_iter = d2l_data(cfg.dataset, workers)
    net = LeNet()

    def init_weights(m):  # d2l.train_ch6
        if type(m) in (nn.Linear, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)

    net.apply(init_weights)
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=D2L_LR)
    loss = nn.CrossEntropyLoss()
    timer, rows = EpochTimer(device), []
    for epoch in range(epochs):
        timer.start()
        row = d2l_epoch(net, optimizer, loss, train_iter, test_iter, device)
        rows.append({"epoch": epoch + 1, **row, "epoch_time": timer.stop(), **memory_use(device)})
    return summarize(BASELINE, [], rows, len(train_iter.dataset), peak_reset)


# --- schedlab -----------------------------------------------------------------------------------------


def run_schedlab(variant: str, args, run_dir: Path) -> dict:
    """schedlab's fit() as run.py calls it, with the variant's overrides; epoch figures from metrics.jsonl."""
    extra = [] if variant == "default" else variant.split()
    base = [
        f"dataset={args.dataset}",
        f"seed={args.seed}",
        f"trainer.device={args.device}",
        f"trainer.batch_size={BATCH_SIZE}",
    ]
    threads = torch.get_num_threads()
    try:
        cfg = compose_config([*base, f"trainer.epochs={args.epochs}", "logger=none", "trainer.progress=false", *extra])
        device = resolve_device(cfg.trainer.device)
        peak_reset = reset_peak_memory(device)
        timer = EpochTimer(device)
        timer.start()
        summary = fit(cfg, run_dir, {"overrides": extra})
    except Exception as e:  # a variant that does not work here (torch.compile without a compiler) is a figure too
        return {
            "name": variant,
            "overrides": extra,
            "error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}",
        }
    finally:
        torch.set_num_threads(threads)  # trainer.num_threads sets it for the whole process
        torch._dynamo.reset()
    run_s = timer.stop()
    out = summarize(variant, extra, read_metrics(run_dir), data.train_size(cfg.dataset), peak_reset)
    out.update(run_s=run_s, status=summary["status"], precision=summary["precision"])
    return out


def summarize(name: str, overrides: list[str], rows: list[dict], train_images: int, peak_reset: bool) -> dict:
    times = [r["epoch_time"] for r in rows]
    median = median_after_warmup(times)
    return {
        "name": name,
        "overrides": overrides,
        "epochs": len(rows),
        "epoch_times": times,
        "median_epoch_s": median,
        "train_images": train_images,
        "images_per_s": train_images / median,
        "sum_epoch_s": sum(times),
        "final_test_acc": rows[-1]["test_acc"],
        "memory": memory_check(rows),
        "peak_reset": peak_reset,
        "rows": rows,
    }


def combine(samples: list[dict]) -> dict:
    """One loop timed several times: the median of the runs' medians; memory steady only if every run was."""
    failed = [r for r in samples if "error" in r]
    if failed or len(samples) == 1:
        return failed[0] if failed else samples[0]
    medians = [r["median_epoch_s"] for r in samples]
    median = statistics.median(medians)
    out = {k: v for k, v in samples[-1].items() if k not in ("epoch_times", "rows")}
    out.update(median_epoch_s=median, images_per_s=out["train_images"] / median)
    out["memory"] = {**samples[-1]["memory"], "steady": all(r["memory"]["steady"] for r in samples)}
    out["repeat_medians"] = medians
    out["repeats"] = samples
    return out


# --- report -------------------------------------------------------------------------------------------


def table(results: list[dict], baseline: dict | None) -> str:
    cuda = any("cuda_peak_mb_epoch1" in r.get("memory", {}) for r in results)
    head = f"{'loop':<48} {'s/epoch':>8} {'images/s':>9} {'baseline/this':>13} {'sum s':>7}"
    head += f" {'peak RSS MB ep1 -> last':>23} {'RSS MB ep1 -> last':>19}"
    head += f" {'GPU peak MB ep1 -> last':>23}" if cuda else ""
    repeats = any("repeat_medians" in r for r in results)
    head += f" {'runs min-max s':>15}" if repeats else ""
    lines = [head + f" {'steady':>6} {'test acc':>8}"]
    for r in results:
        name = r["name"] if r["name"] != "default" else "schedlab (defaults)"
        if "error" in r:
            lines.append(f"{name:<48} failed: {r['error']}")
            continue
        m = r["memory"]
        ratio = f"{baseline['median_epoch_s'] / r['median_epoch_s']:.2f}x" if baseline else "-"
        line = f"{name:<48} {r['median_epoch_s']:>8.3f} {r['images_per_s']:>9.0f} {ratio:>13} {r['sum_epoch_s']:>7.2f}"
        line += f" {m['peak_rss_mb_epoch1']:>13.0f} -> {m['peak_rss_mb_last']:<5.0f}"
        line += f" {m['rss_mb_epoch1']:>9.0f} -> {m['rss_mb_last']:<5.0f}"
        if cuda:
            line += f" {m.get('cuda_peak_mb_epoch1', 0):>13.0f} -> {m.get('cuda_peak_mb_last', 0):<5.0f}"
        if repeats:
            line += f" {min(r['repeat_medians']):>8.3f}-{max(r['repeat_medians']):<6.3f}"
        lines.append(line + f" {'yes' if m['steady'] else 'NO':>6} {r['final_test_acc']:>8.3f}")
    return "\n".join(lines)


def expand(variants: list[str]) -> list[str]:
    out = []
    for v in variants:
        out += [x for x in VARIANTS.get(v, [v]) if x not in out]
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.epoch", description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=4, help="epochs per loop; the first is warm-up (default 4)")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True, help="time the d2l loop too")
    p.add_argument(
        "--variants", nargs="+", default=["default"], help=f"presets ({', '.join(VARIANTS)}), default, or overrides"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (trainer.device)")
    p.add_argument(
        "--dataset", default="fashion_mnist", help="fashion_mnist (default), mnist, or synthetic (smoke runs)"
    )
    p.add_argument("--workers", type=int, default=D2L_WORKERS, help="DataLoader workers of the baseline (d2l: 4)")
    p.add_argument(
        "--repeat", type=int, default=1, help="time every loop this many times, interleaved (noisy machines)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write every figure, per epoch, to this file")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.repeat < 1:
        p.error("--epochs and --repeat must be >= 1")

    cfg = compose_config([f"dataset={args.dataset}", f"seed={args.seed}", f"trainer.device={args.device}"])
    device = resolve_device(cfg.trainer.device)
    machine = hardware(device)
    epochs = f"median of epochs 2-{args.epochs}" if args.epochs > 1 else "1 epoch, no warm-up left out"
    print(
        f"LeNet on {args.dataset}, batch {BATCH_SIZE}, {device} ({machine['gpu'] or machine['cpu']}, {machine['cores']} cores, "
        f"{machine['torch_threads']} torch threads), torch {machine['torch']}: {epochs}",
        flush=True,
    )
    loops = ([BASELINE] if args.baseline else []) + expand(args.variants)
    samples = {name: [] for name in loops}
    with tempfile.TemporaryDirectory(prefix="schedlab-bench-") as tmp:
        for r in range(args.repeat):  # round robin, so that a slow spell of the machine hits every loop alike
            for k, name in enumerate(loops):
                print(f"  timing {name} ({r + 1}/{args.repeat}) ...", file=sys.stderr, flush=True)
                if name == BASELINE:
                    samples[name].append(run_baseline(cfg, device, args.epochs, args.workers))
                else:
                    samples[name].append(run_schedlab(name, args, Path(tmp) / f"run{r}-{k}"))
    results = [combine(samples[name]) for name in loops]
    baseline = results[0] if args.baseline else None
    print(table(results, baseline))
    report = {
        "benchmark": "epoch",
        "hardware": machine,
        "settings": vars(args) | {"json": str(args.json), "batch_size": BATCH_SIZE},
    }
    report["baseline"] = baseline
    report["schedlab"] = [r for r in results if r is not baseline]
    for r in report["schedlab"]:
        if baseline and "error" not in r:
            r["baseline_over_this"] = baseline["median_epoch_s"] / r["median_epoch_s"]
    if args.json:
        write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
