"""A run or sweep folder must be a folder of its own that can be created: never the project, one of its folders,
or the current directory."""

from __future__ import annotations

import os
from pathlib import Path

from trainer.cli.compose import ROOT
from trainer.cli.lines import fail

# folders of the project a run must never write into (nor into a folder that holds them)
PROJECT_FOLDERS = ("conf", "trainer", "schedulers", "experiments", "tests", "benchmarks")


def _writable_ancestor(path: Path) -> bool:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent.is_dir() and os.access(parent, os.W_OK)
    return False


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def project_folder(path: str) -> str | None:
    """What of the project (or the current directory) a run folder at `path` would write into; None if nothing."""
    out = Path(os.path.realpath(path or "."))
    for name in PROJECT_FOLDERS:
        if _within(ROOT / name, out) or _within(out, ROOT / name):
            return f"it is, holds or lies inside the project's {name}/ folder"
    if _within(ROOT, out):
        return "it is or holds the project folder"
    if _within(Path.cwd(), out):
        return "it is or holds the current directory"
    return None


def check_output_folder(key: str, path: str) -> None:
    """A run or sweep folder must be a folder of its own, that can be created."""
    why = project_folder(path)
    if why:
        fail(f"{key}={path!r} is not allowed: {why}; give the run a folder of its own (e.g. under outputs/)")
    if not _writable_ancestor(Path(path)):
        fail(f"{key}={path!r} is not writable: choose an output folder you can create files in")
