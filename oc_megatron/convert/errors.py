"""The one error type of checkpoint conversion: bad input the user can fix (printed as one line, exit code 2)."""

from oc_common.cli import UserError


class ConversionError(UserError):
    """A checkpoint or HF model that cannot be converted; the message says which file or tensor and why."""
