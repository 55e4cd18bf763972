"""The error type for mistakes a user can fix (the CLI prints these as one line, no traceback), and
the warning for results nobody has measured."""


class ExpnetError(Exception):
    """Bad input or state, with a message that says what is wrong and how to fix it."""


class UnmeasuredWarning(UserWarning):
    """A result nobody has measured (e.g. a trained ExpNet on a classifier unlike the ones it was
    trained on): printed by the CLI as one warning line, never an error."""
