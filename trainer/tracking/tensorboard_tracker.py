"""logger=tensorboard: event files in the run folder (tensorboard --logdir outputs/)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from trainer.config import resolved
from trainer.records import EpochRow, Job, StepRow, Summary
from trainer.tracking.base import Tracker, summary_values


class TensorBoardTracker(Tracker):
    """Event files for TensorBoard (torch's SummaryWriter) in <run folder>/<log_dir>: epoch figures under
    epoch/<name> against the epoch, per-step LR and loss under step/<name> against the step, curves under
    <curve>/<name>, and the summary's figures as text and as hparams. Resume appends to the same folder;
    TensorBoard shows the last value written for a step."""

    def __init__(
        self,
        *,
        config,
        run_dir: Path,
        job: Job,
        resume_id: str | None = None,
        log_dir: str = "tensorboard",
        log_steps: bool = True,
    ):
        from torch.utils.tensorboard import SummaryWriter

        self.id = resume_id
        self.log_dir = Path(run_dir) / log_dir
        self._log_steps = bool(log_steps)
        self._config = resolved(config)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.writer.add_text("config", "```\n" + OmegaConf.to_yaml(self._config) + "```", 0)

    def log_steps(self, steps: list[StepRow]) -> None:
        if self.writer is None or not self._log_steps:
            return
        for s in steps:
            self.writer.add_scalar("step/lr", s.lr, s.step)
            self.writer.add_scalar("step/loss", s.loss, s.step)

    def log_epoch(self, row: EpochRow, steps: list[StepRow]) -> None:
        self.log_steps(steps)
        if self.writer is None:
            return
        values = row.to_dict()
        epoch = values.pop("epoch")
        for key, value in values.items():
            self.writer.add_scalar(f"epoch/{key}", value, epoch)
        self.writer.flush()

    def log_curve(self, name: str, columns: dict[str, list[float]]) -> None:
        if self.writer is None:
            return
        for step, values in enumerate(zip(*columns.values(), strict=True)):
            for key, value in zip(columns, values, strict=True):
                self.writer.add_scalar(f"{name}/{key}", value, step)
        self.writer.flush()

    def summary(self, summary: Summary) -> None:
        if self.writer is None:
            return
        values = summary_values(summary)
        lines = [f"| {k} | {v} |" for k, v in values.items()]
        self.writer.add_text("summary", "| key | value |\n|---|---|\n" + "\n".join(lines), summary.epochs_completed)
        metrics = {f"summary/{k}": float(v) for k, v in summary.figures.items() if isinstance(v, (int, float))}
        if metrics:
            hparams = {k: v for k, v in _flat(self._config).items() if isinstance(v, (int, float, str, bool))}
            self.writer.add_hparams(hparams, metrics, run_name=".")

    def finish(self, exit_code: int) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out
