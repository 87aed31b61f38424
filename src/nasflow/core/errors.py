"""Exception types that carry a user-facing message naming the bad file, line or key."""


class NasflowError(Exception):
    """Base class for errors that the CLI reports without a traceback."""


class ConfigError(NasflowError):
    """A configuration value is missing, unknown or of the wrong type."""


class DataError(NasflowError):
    """An input data file is missing, malformed or inconsistent."""
