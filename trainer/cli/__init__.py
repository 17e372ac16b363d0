"""The command line: argv checked before Hydra starts (every job composed and checked), one-line errors, the
config shown once, the task run, the closing line and the sweep's objective.

    main     precheck: argv read as Hydra reads it, every job composed and checked before any starts
    compose  a job's config as Hydra composes it (compose_config; JobComposer for the jobs of a sweep)
    folders  a run or sweep folder must be a folder of its own
    show     --help, and the config shown at the start of a run
    task     the task inside Hydra: job_info, run_task and how a job ends
    lines    the one-line messages, the exit codes, the closing line and the sweep's objective
"""

from trainer.cli.compose import CONF_DIR, JobComposer, compose_config
from trainer.cli.lines import EXIT_INTERRUPTED, EXIT_TERMINATED, fail, objective, outcome
from trainer.cli.main import hydra_args_parser, precheck
from trainer.cli.show import help_text
from trainer.cli.task import job_info, parallel_slot, run_task
