"""The WSD-against-cosine study: `python -m experiments.wsd_vs_cosine` (see study.py and README.md here)."""
