"""User-facing errors.

A `UserError` is a mistake the user can fix (a missing file, a bad config key, a corrupt video):
the CLI prints its message on one line and exits with code 2, without a traceback. Anything else
is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input; the message must name the file or key at fault."""
