"""Errors the CLI reports as one clear message (exit code 2), never as a traceback."""


class UserError(Exception):
    """Bad input from the user (a path, a name, a config value): message is shown as is."""


class NotFittedError(UserError):
    """An adapter was asked to predict or extract features before ``fit``."""


class CapabilityError(UserError):
    """An adapter was asked for something its ``capabilities`` do not include."""


class FatalTrialError(Exception):
    """A trial error that a retry cannot mend (a deterministic configuration error, the
    tracking store gone): the trial fails at once, without retries."""


class Aborted(Exception):
    """A command stopped part-way for a reason it reports in one line (exit code 1); what
    was done is kept (the message says where)."""
