"""reminders: keeps iontophoresis patients on their treatment schedule."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("reminders")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0"
