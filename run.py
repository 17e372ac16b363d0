"""schedlab: train, find a learning rate, or draw schedules; single runs and Hydra sweeps.

    python run.py                                       # d2l baseline: LeNet, Fashion-MNIST, SGD 0.3
    python run.py -m scheduler=cosine,multistep seed=0,1,2
    python run.py task=lr_find
    python run.py task=schedule scheduler=cosine 'schedule_plot.compare=[multistep,sqrt]'
"""

import sys

import hydra
from omegaconf import DictConfig

from trainer.cli import precheck, run_task
from trainer.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    return run_task(cfg)


if __name__ == "__main__":
    precheck(sys.argv[1:])
    main()
