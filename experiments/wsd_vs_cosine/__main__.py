"""python -m experiments.wsd_vs_cosine: see experiments/wsd_vs_cosine/study.py and --help."""

import sys

from experiments.wsd_vs_cosine.study import main

if __name__ == "__main__":
    sys.exit(main())
