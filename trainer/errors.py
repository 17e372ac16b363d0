"""The one exception type for bad input: run.py prints its message as a single line and exits 2.

It is defined in schedulers/errors.py (the schedule library raises it and imports nothing from trainer);
this module is the name the rest of the trainer uses.
"""

from schedulers.errors import ConfigError

__all__ = ["ConfigError"]
