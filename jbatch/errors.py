"""The one exception type for bad user input: the CLI turns it into a one-line error."""


class ConfigError(ValueError):
    """A configuration or input the user can fix (bad batch size, unknown model, NaN data)."""
