"""Hydra finds launchers in the `hydra_plugins` namespace package; this one is schedlab's stacked launcher:
`python run.py -m ... hydra/launcher=stacked` trains the jobs that share a dataset, a model and a budget
together, one process per stack (trainer/engine/stack.py, hydra_plugins/schedlab_launcher/_core.py)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher


@dataclass
class StackedLauncherConf:
    _target_: str = "hydra_plugins.schedlab_launcher.stacked_launcher.StackedLauncher"
    max_stack: Optional[int] = None  # noqa: UP045 (OmegaConf reads the annotation); the most jobs one stack trains (memory); null: no limit
    strategy: str = "auto"  # auto (batched on CUDA, sequential on CPU), sequential, batched


ConfigStore.instance().store(group="hydra/launcher", name="stacked", node=StackedLauncherConf, provider="schedlab")


class StackedLauncher(Launcher):
    def __init__(self, max_stack: Optional[int] = None, strategy: str = "auto") -> None:  # noqa: UP045
        from hydra_plugins.schedlab_launcher._core import check_settings

        check_settings(max_stack, strategy)  # before any job starts
        self.max_stack, self.strategy = max_stack, strategy
        self.config = self.task_function = self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.schedlab_launcher._core import launch

        return launch(self, job_overrides, initial_job_idx)
