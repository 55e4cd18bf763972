"""The error type for mistakes a user can fix; the CLI prints these as one line, no traceback."""


class ExpnetError(Exception):
    """Bad input or state, with a message that says what is wrong and how to fix it."""
