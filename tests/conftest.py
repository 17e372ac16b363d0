"""Shared fixtures. The helpers that test files import (configs, run.py in a subprocess, the stack, W&B and
schedule kits) are in helpers.py: `from helpers import ...`, never from another test file."""

from __future__ import annotations

import pytest
from helpers import run_cli


@pytest.fixture
def cli():
    return run_cli
