"""The command line: argv checked before Hydra starts (every job composed and checked), one-line errors, the
config shown once, the task run, the closing line and the sweep's objective."""

from trainer.cli.main import (
    CONF_DIR,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    JobComposer,
    compose_config,
    fail,
    help_text,
    hydra_args_parser,
    job_info,
    objective,
    outcome,
    parallel_slot,
    precheck,
    run_task,
)
