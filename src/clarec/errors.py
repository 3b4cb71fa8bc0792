"""Errors a user can cause. The CLI prints them as one line, without a traceback."""

from __future__ import annotations

from pathlib import Path


class ClarecError(Exception):
    """Base class of every error caused by user input (files, configs, ids)."""


class DataError(ClarecError):
    """A data file cannot be read: names the file, the line (when known) and the reason."""

    def __init__(self, path: str | Path | None, reason: str, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = reason
        where = self.path or "<data>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {reason}")


class ConfigError(ClarecError, ValueError):
    """A configuration or hyper-parameter is invalid: unknown key, wrong type, missing file.

    Also a ``ValueError``, so code that guards a bad argument the standard way catches it.
    """


class UnknownIdError(ClarecError, KeyError):
    """A user or item id is not known to the data set or model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown id"
