"""Errors the CLI reports as one clear message (exit code 2), never as a traceback."""


class UserError(Exception):
    """Bad input from the user (a path, a name, a config value): message is shown as is."""


class NotFittedError(UserError):
    """An adapter was asked to predict or extract features before ``fit``."""


class CapabilityError(UserError):
    """An adapter was asked for something its ``capabilities`` do not include."""
