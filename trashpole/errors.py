"""
The exceptions that mean "the user can fix this": a wrong command-line value, a missing or
unreadable file, a config key that does not exist, an export that cannot be used.

The tools (:mod:`trashpole.cli`) print these as one line, ``error: <message>``, and exit with
status 2; every other exception is a bug and keeps its traceback. A message names the file or
option, the record, and the fix.

Both types are ``ValueError``s, so code that catches ``ValueError`` (or ``FileNotFoundError``
for :class:`MissingFileError`) keeps working.
"""


class UserError(ValueError):
    """A mistake in the command line, the config or the input files that the user can fix."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder named by the user (a run, a config, an input) does not exist."""
