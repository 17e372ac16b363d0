"""Experiment tooling that reads finished runs: `python -m experiments.report <multirun folder>...`."""
