"""The ``data`` settings every dataset shares, and how they are read from a config section."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from neuroflow.errors import InvalidArgumentError


@dataclass
class DataOptions:
    """The data settings this module reads from a config section (see ``build_datasets``)."""

    name: str = "synthetic-nmnist"
    root: str = "datasets/synthetic-nmnist"
    time_steps: int = 10
    split_by: str = "time"
    denoise_us: int | None = None
    translate: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    cache: bool = True
    on_bad_file: str = "error"
    max_samples: int | None = None
    prepare: bool = True
    synthetic_train_per_class: int | None = None
    synthetic_test_per_class: int | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> DataOptions:
        """Read the fields from a dataclass/object (attributes) or a mapping (keys); missing ones
        take the defaults, other attributes (batch_size...) are ignored."""
        if isinstance(cfg, DataOptions):
            return cfg
        values = {}
        for f in fields(cls):
            if isinstance(cfg, Mapping):
                if f.name in cfg:
                    values[f.name] = cfg[f.name]
            elif hasattr(cfg, f.name):
                values[f.name] = getattr(cfg, f.name)
        options = cls(**values)
        options.validate()
        return options

    def validate(self) -> None:
        def bad(key: str, expected: str) -> InvalidArgumentError:
            return InvalidArgumentError(
                f"data.{key} must be {expected}, got {getattr(self, key)!r}"
            )

        def is_int(v) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        if not is_int(self.time_steps) or self.time_steps < 1:
            raise bad("time_steps", "an integer >= 1")
        if self.split_by not in ("time", "count"):
            raise bad("split_by", "'time' or 'count'")
        if self.denoise_us is not None and (not is_int(self.denoise_us) or self.denoise_us <= 0):
            raise bad("denoise_us", "null or an integer number of microseconds > 0")
        if not is_int(self.translate) or self.translate < 0:
            raise bad("translate", "an integer number of pixels >= 0")
        for key in ("val_fraction", "test_fraction"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise bad(key, "a fraction in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise InvalidArgumentError(
                f"data.val_fraction + data.test_fraction must be < 1, got "
                f"{self.val_fraction} + {self.test_fraction}"
            )
        if self.on_bad_file not in ("error", "skip"):
            raise bad("on_bad_file", "'error' or 'skip'")
        if self.max_samples is not None and (not is_int(self.max_samples) or self.max_samples < 1):
            raise bad("max_samples", "null or an integer >= 1")
        for key in ("synthetic_train_per_class", "synthetic_test_per_class"):
            v = getattr(self, key)
            if v is not None and (not is_int(v) or v < 1):
                raise bad(key, "null or an integer >= 1")
        if not isinstance(self.root, (str, os.PathLike)) or not str(self.root):
            raise bad("root", "a folder path")
