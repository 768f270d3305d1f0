"""User-facing errors.

A `UserError` is a mistake the user can fix (a missing file, a bad config key, a corrupt video):
the CLI prints its message on one line and exits with code 2, without a traceback. Anything else
is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input; the message must name the file or key at fault."""


class Stopped(Exception):
    """Work stopped from outside (Ctrl-C, SIGTERM) after saving what it could; the message says
    what was kept and how to go on. The CLI prints it and exits with `exit_code` (128 + signal)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
