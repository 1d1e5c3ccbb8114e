"""Every error this project raises on purpose, in one module with no CLI dependency.

``OcError`` is the base: a problem the user can act on, whose message already says what and where (file, line, key
or option) and, where it helps, what to do. Both CLIs print it as one red line and exit with code 2; library callers
catch ``OcError`` (or one of the kinds below) instead of parsing messages. Anything else that escapes is a bug and
keeps its traceback.
"""

from __future__ import annotations


class OcError(Exception):
    """A problem the user can fix; the message names what is wrong and where."""


class UsageError(OcError):
    """A command-line option or argument that cannot be used (names the option)."""


class ConfigError(OcError, ValueError):
    """A config that cannot be used. The message names the source file and the offending key."""


class InputError(OcError, ValueError):
    """An input path that cannot be used (missing, unreadable, no record files). The message names the path."""


class OutputError(OcError):
    """An output location that cannot be written as asked (exists from another run, lies inside an input, ...)."""


class OutputExistsError(OutputError):
    """OUT holds the results of a different run (or files we did not write)."""


class EnvironmentProblem(OcError):
    """The machine refuses (disk full, read-only location, too many open files, missing tool). Names the path."""


class BackendError(OcError, RuntimeError):
    """A model backend that cannot be built or used (model not found, option not supported, server gone)."""


class SandboxError(OcError, RuntimeError):
    """The sandbox itself cannot work here (not a verdict on a program). The message says what to fix."""


class ConversionError(OcError):
    """A checkpoint or HF model that cannot be converted; the message says which file or tensor and why."""


class CheckpointError(OcError):
    """A checkpoint that cannot be loaded as asked (missing, corrupt, incompatible); names the file."""
