"""The model registry: config ``model.name`` -> builder function.

A builder is a plain function ``builder(num_classes, input_shape, **params) -> nn.Module``.
``num_classes`` and ``input_shape`` (one sample, without the time and batch dimensions) come from
the dataset; every other keyword is a config key under ``model:`` and must carry a type
annotation and a default, because configs are validated against the builder's signature.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from torch import nn

from neuroflow.errors import ConfigError
from neuroflow.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")

#: builder arguments filled from the dataset, never from the config
DATA_ARGUMENTS = ("num_classes", "input_shape")


def builder_parameters(builder: Callable) -> dict[str, inspect.Parameter]:
    """The config-settable keywords of ``builder``, annotations resolved to types."""
    # a class is a builder too: its keywords are those of __init__
    hints = typing.get_type_hints(builder.__init__ if isinstance(builder, type) else builder)
    out = {}
    for name, p in inspect.signature(builder).parameters.items():
        if name in DATA_ARGUMENTS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[name] = p.replace(annotation=hints.get(name, Any))
    return out


def build_model(
    name: str, params: dict[str, Any], num_classes: int, input_shape: tuple[int, ...]
) -> nn.Module:
    """Build registered model ``name`` for a dataset with ``num_classes`` and ``input_shape``."""
    builder = MODELS.get(name)
    unknown = set(params) - set(builder_parameters(builder))
    if unknown:
        raise ConfigError(f"model {name!r} has no parameter(s) {sorted(unknown)}")
    return builder(num_classes=num_classes, input_shape=tuple(input_shape), **params)


def build(
    name: str, num_classes: int = 40, input_shape: tuple[int, ...] | None = None, **params: Any
) -> nn.Module:
    """Convenience form of :func:`build_model`: ``build("e3dsnn_t", num_classes=40)``.

    ``input_shape`` defaults to the builder's own default (for the point-cloud models the 6 voxel
    features xyz + normal); ``params`` are the builder's config keywords.
    """
    builder = MODELS.get(name)
    if input_shape is None:
        default = inspect.signature(builder).parameters.get("input_shape")
        if default is None or default.default is inspect.Parameter.empty:
            raise ConfigError(f"model {name!r} has no default input_shape: pass input_shape=")
        input_shape = default.default
    return build_model(name, params, num_classes, input_shape)
