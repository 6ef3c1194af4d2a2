"""The base of errors that are the user's to fix (bad input, a missing file, an unknown run).

The command line shows these as one message and exits with status 1; any other exception is a
bug and keeps its traceback. Each module's error subclasses `UserError` and the built-in error it
is (``ValueError``, ``LookupError``, ...), so library callers can catch either.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """An error whose message tells the user what to fix."""
