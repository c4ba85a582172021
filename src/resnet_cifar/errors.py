"""The one exception type for mistakes a user can make and fix.

The command line prints its message as a single sentence, without a traceback;
anything else that escapes is a bug in this package and keeps its traceback.
It subclasses ValueError so Python callers can catch it the usual way.
"""


class UserError(ValueError):
    """Bad input from the user: the message names the file or flag and the fix."""
