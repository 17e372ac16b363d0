"""schedlab: train, find a learning rate, evaluate a run, or draw schedules; single runs and Hydra sweeps.

python run.py                                       # d2l baseline: LeNet, Fashion-MNIST, SGD 0.3
python run.py debug=fast scheduler=onecycle         # any config in seconds
python run.py -m scheduler=cosine,multistep seed=0,1,2
python run.py task=lr_find
python run.py task=eval resume=outputs/runs/<date>/<time>
python run.py task=schedule scheduler=cosine 'schedule_plot.compare=[multistep,sqrt]'
python run.py --help                                # the groups, options, tasks and keys
"""

import os
import sys

import hydra
from omegaconf import DictConfig

from trainer.cli import EXIT_INTERRUPTED, precheck, run_task
from trainer.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    return run_task(cfg)


if __name__ == "__main__":
    try:
        sys.argv += precheck(sys.argv[1:])
        main()
    except KeyboardInterrupt:  # Ctrl-C before or after a task (run_task reports one inside it)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print("schedlab: interrupted", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)
