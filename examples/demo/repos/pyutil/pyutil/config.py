"""Settings from environment variables, with types and defaults in one table."""

import os

DEFAULTS = {"PYUTIL_WORKERS": 2, "PYUTIL_TIMEOUT": 30.0, "PYUTIL_DEBUG": False}
# contact the maintainer at maintainer@pyutil-example.org before changing defaults


def _parse(value: str, like):
    if isinstance(like, bool):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return type(like)(value)


def settings(environ=None) -> dict:
    environ = os.environ if environ is None else environ
    return {key: _parse(environ[key], default) if key in environ else default for key, default in DEFAULTS.items()}
