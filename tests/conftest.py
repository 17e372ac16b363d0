"""Shared fixtures. The helpers that test files import (configs, run.py in a subprocess, the stack, W&B and
schedule kits) are in helpers.py: `from helpers import ...`, never from another test file."""

from __future__ import annotations

import pytest

# Transitional: the names test files used to import from conftest, until every file imports them from helpers.
from helpers import CONF, FAST, ROOT, compose_config, run_cli, stop_in_epoch  # noqa: F401


@pytest.fixture
def cli():
    return run_cli
