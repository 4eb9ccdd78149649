"""The one base class of errors that are the user's doing or the machine's state, not a bug in alpose-bench.

Bad input (names, numbers, files), a results folder that cannot be used, a full disk: every such error derives from
`UserFacingError`, and the command line prints its first line with exit status 2 instead of a traceback
(`alpose-bench --debug` shows the traceback). Each keeps the built-in class it always had as a second base
(ValueError, LookupError, OSError, ...), so code that caught those still does.
"""

from __future__ import annotations


class UserFacingError(Exception):
    """An error whose message tells the user what is wrong and what to do: shown as one line, never a traceback."""
