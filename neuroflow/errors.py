"""One exception base for the whole library, with specific subclasses.

Every error a user can cause (a bad argument, config key, data file or checkpoint) is raised as a
subclass of :class:`NeuroflowError`, with a message that names the offending argument, key, file
or value and says what was expected. Subclasses also derive from the matching built-in exception
(``ValueError``, ``FileNotFoundError``...) so generic ``except`` clauses keep working.
"""

from __future__ import annotations


class NeuroflowError(Exception):
    """Base class of every error neuroflow raises on purpose."""


class InvalidArgumentError(NeuroflowError, ValueError):
    """A function or module argument has a bad value, e.g. ``tau <= 0``."""


class InputShapeError(NeuroflowError, ValueError):
    """A tensor has the wrong rank, shape or dtype for the operation."""


class ConfigError(NeuroflowError, ValueError):
    """A config file or override is invalid; the message names the key path."""


class DataFormatError(NeuroflowError, ValueError):
    """A data file is malformed; ``path`` and (where known) the byte ``offset`` say where."""

    def __init__(self, message: str, path: str | None = None, offset: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}" + (f" (byte offset {offset})" if offset is not None else "") + ": "
        super().__init__(where + message)
        self.path = path
        self.offset = offset


class DatasetNotFoundError(NeuroflowError, FileNotFoundError):
    """A dataset folder is missing or empty; the message says how to obtain or prepare it."""


class CheckpointError(NeuroflowError, RuntimeError):
    """A checkpoint cannot be read, or does not match the model or config."""


class RegistryError(NeuroflowError, KeyError):
    """A name is not in a registry (model, dataset, hardware profile)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
