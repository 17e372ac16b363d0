"""task=eval: a run folder's checkpoint on the validation and test sets, into the folder's eval.json.

    python run.py task=eval resume=outputs/runs/<date>/<time>                       # checkpoint.pt
    python run.py task=eval resume=outputs/runs/<date>/<time> eval.checkpoint=best  # best.pt

The run's own config.yaml says what to build (dataset, model, precision, ...): nothing of the training
command needs repeating. The command line may change only how the evaluation runs (EVAL_KEYS); any other
override must agree with the run's config, so that repeating the training command works and a different
dataset or model is refused rather than silently ignored."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from trainer.config import EVAL_IGNORES, EVAL_SETS, SchedlabConfig, from_saved, keys_with
from trainer.errors import ConfigError
from trainer.records import RunFolder, write_json

EVAL_FILE = "eval.json"
BEST_FILE = "best.pt"
# keys the eval command line may set (they change where and how the evaluation runs, not what it evaluates), and
# keys an evaluation does not use (the command line's values are neither compared nor used): the schema's roles
EVAL_KEYS = keys_with(EVAL_SETS)
UNUSED_KEYS = keys_with(EVAL_IGNORES)


def _within(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith((prefix + ".", prefix + "["))


def _override_keys(overrides: list[str]) -> dict[str, str]:
    """{key or group: the override as written} for the command line's overrides of the config."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return {
        o.key_or_group.split("@")[0]: o.input_line or o.key_or_group
        for o in parsed
        if not o.key_or_group.startswith("hydra")
    }


def _differences(a: dict, b: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    out = []
    for k in sorted(set(a) | set(b), key=str):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append((f"{prefix}{k}", va, vb))
    return out


def run_folder(cfg) -> RunFolder:
    """The folder task=eval evaluates (resume=...), refused in one line unless it holds a run's checkpoint."""
    folder = RunFolder(Path(cfg.resume), create=False)
    if not folder.dir.is_dir():
        raise ConfigError(f"resume={cfg.resume!r} is not a folder: point task=eval at a run folder")
    if not folder.checkpoint.exists():
        jobs = sorted(p.parent.name for p in folder.dir.glob(f"*/{folder.checkpoint.name}"))
        hint = f" (a sweep folder: give one of its jobs, e.g. resume={folder.dir / jobs[0]})" if jobs else ""
        raise ConfigError(f"resume={cfg.resume!r} holds no checkpoint.pt: nothing to evaluate{hint}")
    if not folder.config.exists():
        raise ConfigError(f"resume={cfg.resume!r} holds no config.yaml: it is not a schedlab run folder")
    return folder


def eval_config(cfg, overrides: list[str]) -> tuple[DictConfig, SchedlabConfig]:
    """(the run's config as it trained, the config to evaluate with, typed): the run folder's config.yaml with
    the command line's EVAL_KEYS overrides; an override of any other key must agree with the run's config."""
    folder = run_folder(cfg)
    try:
        trained = OmegaConf.load(folder.config)
    except Exception as e:
        raise ConfigError(f"{folder.config} cannot be read ({type(e).__name__}): it is damaged") from None
    if not isinstance(trained, DictConfig) or not all(k in trained for k in ("dataset", "model", "trainer")):
        raise ConfigError(f"{folder.config} is not a schedlab run's config (no dataset, model or trainer)")
    keys = _override_keys(overrides)
    now = OmegaConf.to_container(cfg, resolve=True)
    then = OmegaConf.to_container(trained, resolve=True)
    # a key the command line names first, then what names an option (dataset.name, model._target_), then the rest
    differences = sorted(
        _differences(now, then), key=lambda d: (d[0] not in keys, not d[0].endswith((".name", "._target_")), d[0])
    )
    for key, _, theirs in differences:
        if any(_within(key, k) for k in (*EVAL_KEYS, *UNUSED_KEYS)):
            continue
        given = [
            line for k, line in sorted(keys.items(), key=lambda kv: -len(kv[0])) if _within(key, k) or _within(k, key)
        ]
        if given:
            raise ConfigError(
                f"{given[0]} does not match the run ({key}={theirs!r} in {folder.config}): task=eval evaluates the "
                f"run as it trained; drop the override (only {', '.join(EVAL_KEYS)} may change)"
            )
    run_cfg = OmegaConf.create(then)
    for key in keys:
        if any(_within(key, k) for k in EVAL_KEYS):
            OmegaConf.update(run_cfg, key, OmegaConf.select(cfg, key), force_add=True)
    OmegaConf.update(run_cfg, "task", "eval", force_add=True)
    OmegaConf.update(run_cfg, "eval", OmegaConf.to_container(cfg.eval), force_add=True)
    OmegaConf.update(run_cfg, "resume", str(folder.dir), force_add=True)
    return trained, from_saved(OmegaConf.to_container(run_cfg), str(folder.config))


def choose_checkpoint(folder: RunFolder, which: str) -> tuple[Path, str | None]:
    """The checkpoint file eval.checkpoint names, and a note when it falls back to checkpoint.pt."""
    if which == "best":
        best = folder.dir / BEST_FILE
        if best.exists():
            return best, None
        return folder.checkpoint, f"no {BEST_FILE} in the folder: the last epoch's checkpoint.pt instead"
    return folder.checkpoint, None


def run(cfg, job: dict, run_dir: Path, show) -> None:
    trained, run_cfg = eval_config(cfg, job["overrides"])
    show(run_cfg, run_choices(run_dir))
    run_eval(trained, run_cfg)


def run_choices(run_dir: Path) -> dict:
    """The group options a run folder's run was composed with (its .hydra/hydra.yaml), for the config tree."""
    import yaml

    try:
        hydra_cfg = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())
        return dict(hydra_cfg["hydra"]["runtime"]["choices"])
    except Exception:  # no record (a folder of fit() alone) or a damaged one: the tree goes without
        return {}


def run_eval(trained: DictConfig, cfg: SchedlabConfig) -> dict:
    """Evaluate the checkpoint on the validation and test sets; write eval.json; print one line."""
    import torch

    from trainer import data
    from trainer.engine import checkpoint
    from trainer.engine.loop import evaluate
    from trainer.engine.setup import (
        DEFAULT_THREADS,
        autocast,
        device_name,
        resolve_device,
        resolve_precision,
        seed_everything,
    )

    folder = RunFolder(Path(cfg.resume), create=False)
    path, note = choose_checkpoint(folder, cfg.eval.checkpoint)
    with folder.owned():  # not while a run writes to the folder
        source = RunFolder(folder.dir, create=False)
        source.checkpoint = path
        saved = checkpoint.load(source, trained)  # weights_only; a checkpoint of another config is refused
        t = cfg.trainer
        seed_everything(cfg.seed, t.deterministic)
        torch.set_num_threads(t.num_threads or DEFAULT_THREADS)
        device = resolve_device(t.device)
        precision = resolve_precision(t.precision, device)
        _, val_set, test_set = data.load(cfg.dataset, device, t.channels_last)
        memory_format = torch.channels_last if t.channels_last else torch.preserve_format
        from trainer.models import build_model

        model = build_model(cfg.model).to(device, memory_format=memory_format)
        model.load_state_dict(saved["model"])  # the weights training evaluated: a schedule-free optimizer's average
        amp = autocast(device, precision)
        val_loss, val_acc = evaluate(model, val_set, t.eval_batch_size, amp) if val_set is not None else (None, None)
        test_loss, test_acc = evaluate(model, test_set, t.eval_batch_size, amp)
        result = {
            "checkpoint": path.name,
            "requested": cfg.eval.checkpoint,
            "epoch": int(saved["state"]["epoch"]),
            "val_loss": val_loss,
            "val_acc": val_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "device": str(device),
            "device_name": device_name(device),
            "precision": precision,
            "eval_batch_size": t.eval_batch_size,
            "evaluated_at": datetime.now(timezone.utc).isoformat(),
        }
        if note:
            result["note"] = note
        write_json(folder.dir / EVAL_FILE, result)
    print(eval_line(result, folder.dir), flush=True)
    if note:
        print(f"schedlab: eval.checkpoint=best: {note}", file=sys.stderr, flush=True)
    return result


def eval_line(result: dict, run_dir: Path) -> str:
    val = "" if result["val_acc"] is None else f"val acc {result['val_acc']:.2%} (loss {result['val_loss']:.4f}), "
    return (
        f"eval of {result['checkpoint']} (epoch {result['epoch']}): {val}test acc {result['test_acc']:.2%} "
        f"(loss {result['test_loss']:.4f}); written to {run_dir / EVAL_FILE}"
    )
