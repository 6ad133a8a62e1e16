"""The ``data`` settings: one options dataclass per registered dataset, all sharing these.

Each dataset of :data:`neuroflow.data.registry.DATASETS` declares its options class (a subclass
of :class:`DataOptions` whose fields are exactly the keys its ``data:`` section accepts, with
their types and defaults). The same class is read from YAML (``neuroflow.config`` checks keys and
types against its annotations, then calls :meth:`DataOptions.validate`) and from Python
(:func:`neuroflow.data.build_datasets` with a mapping or an object), so the two give the same
settings. A bad value raises :class:`OptionError`, whose ``key`` (``"data.time_steps"``) lets the
config loader name the key.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from neuroflow.errors import InvalidArgumentError


class OptionError(InvalidArgumentError):
    """A ``data`` setting has a bad value; ``key`` is its dotted path (``data.time_steps``)."""

    def __init__(self, key: str, expected: str, value: Any, message: str | None = None):
        super().__init__(message or f"data.{key} must be {expected}, got {value!r}")
        self.key = f"data.{key}"


def is_int(value: Any) -> bool:
    """An integer that is not a bool (YAML's ``true`` must not pass as 1)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass
class DataOptions:
    """Settings every dataset takes: where it lives, how it is split, cached and batched.

    ``val_fraction`` of each class of the training files is held out for validation;
    ``test_fraction`` of each class is carved out for testing only when the dataset has no test
    files. ``max_samples`` caps every split (stratified). ``batch_size`` is the *global* batch:
    under ``torchrun`` each of the W processes loads ``batch_size / W`` samples per step.
    ``cache``: keep computed frames / sampled clouds in the cache folder (see
    :mod:`neuroflow.data.cache`), never in ``root``.
    """

    name: str = "synthetic-nmnist"
    root: str = "datasets/synthetic-nmnist"
    batch_size: int = 64
    num_workers: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    cache: bool = True
    on_bad_file: Literal["error", "skip"] = "error"
    max_samples: int | None = None
    prepare: bool = True

    @classmethod
    def keys(cls) -> list[str]:
        """The ``data:`` keys this dataset accepts."""
        return [f.name for f in fields(cls)]

    @classmethod
    def types(cls) -> dict[str, Any]:
        """Each key's annotation (``Literal[...]``, ``int | None``...), as the config checks it."""
        return typing.get_type_hints(cls)

    @classmethod
    def from_config(cls, cfg: Any) -> DataOptions:
        """Read the options from a mapping (every key must be a field: a misspelt key is an error,
        as in YAML) or from an object's attributes (those that are fields; others, e.g. a
        loader's, are ignored). Missing keys take this class's defaults. Validated."""
        if isinstance(cfg, cls):
            cfg.validate()
            return cfg
        names = cls.keys()
        if isinstance(cfg, Mapping):
            unknown = [k for k in cfg if k not in names]
            if unknown:
                raise InvalidArgumentError(
                    f"data.{unknown[0]} is not a setting of dataset {cfg.get('name', cls.name)!r} "
                    f"(its settings: {', '.join(names)})"
                )
            values = {k: cfg[k] for k in names if k in cfg}
        else:
            values = {k: getattr(cfg, k) for k in names if hasattr(cfg, k)}
        options = cls(**values)
        options.validate()
        return options

    def validate(self) -> None:
        """Raise :class:`OptionError` for the first bad value (subclasses add their keys)."""
        if not isinstance(self.name, str) or not self.name:
            raise OptionError("name", "a dataset name", self.name)
        if not isinstance(self.root, (str, os.PathLike)) or not str(self.root):
            raise OptionError("root", "a folder path", self.root)
        if not is_int(self.batch_size) or self.batch_size < 1:
            raise OptionError("batch_size", "an integer >= 1", self.batch_size)
        if not is_int(self.num_workers) or self.num_workers < 0:
            raise OptionError("num_workers", "an integer >= 0", self.num_workers)
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            if not is_number(value) or not 0 <= value < 1:
                raise OptionError(key, "a fraction in [0, 1)", value)
        if self.val_fraction + self.test_fraction >= 1:
            raise OptionError(
                "test_fraction",
                f"< 1 - data.val_fraction ({self.val_fraction})",
                self.test_fraction,
            )
        if not isinstance(self.cache, bool):
            raise OptionError("cache", "true or false", self.cache)
        if self.on_bad_file not in ("error", "skip"):
            raise OptionError("on_bad_file", "'error' or 'skip'", self.on_bad_file)
        if self.max_samples is not None and (not is_int(self.max_samples) or self.max_samples < 1):
            raise OptionError("max_samples", "null or an integer >= 1", self.max_samples)
        if not isinstance(self.prepare, bool):
            raise OptionError("prepare", "true or false", self.prepare)


def validate_synthetic_sizes(options: Any) -> None:
    """Check ``synthetic_train_per_class`` / ``synthetic_test_per_class`` of a generated dataset:
    files per class to generate on first use (null: the generator's default, or whatever a
    prepared folder holds)."""
    for key in ("synthetic_train_per_class", "synthetic_test_per_class"):
        value = getattr(options, key)
        if value is not None and (not is_int(value) or value < 1):
            raise OptionError(key, "null or an integer >= 1", value)
