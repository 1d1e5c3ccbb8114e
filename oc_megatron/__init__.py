from oc_common import __version__  # noqa: F401
