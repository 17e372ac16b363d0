"""The one exception type for bad input: run.py prints its message as a single line and exits 2."""


class ConfigError(ValueError):
    """A configuration value or input file that cannot work; the message names the key and what is allowed."""
