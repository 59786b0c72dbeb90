"""User-facing errors.

    raise MobilenetsError(f"no such file: {path}")

The CLI turns a `MobilenetsError` into one line on stderr and exit code 2.
Anything else is a bug and keeps its traceback.
"""


class MobilenetsError(Exception):
    """An error the user can fix: bad spec, bad file, bad data folder."""


class SpecError(MobilenetsError, ValueError):
    """A model spec string that does not parse."""
