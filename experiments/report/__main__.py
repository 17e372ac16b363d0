"""python -m experiments.report: see experiments/report/__init__.py and --help."""

import sys

from experiments.report.cli import main

if __name__ == "__main__":
    sys.exit(main())
