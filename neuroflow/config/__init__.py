"""Typed experiment configs: the schema, YAML loading, ``--set`` overrides and validation.

Public names: :class:`ExperimentConfig` (and its sections), :func:`load_config`,
:func:`config_from_dict`, :func:`to_dict`, :func:`dump_config`, :func:`parse_override`.
"""

from neuroflow.config.loader import (
    apply_overrides,
    config_from_dict,
    dump_config,
    load_config,
    parse_override,
    to_dict,
)
from neuroflow.config.schema import (
    DataConfig,
    DistributedConfig,
    ExperimentConfig,
    LoopConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    SchedulerConfig,
)

__all__ = [
    "DataConfig",
    "DistributedConfig",
    "ExperimentConfig",
    "LoopConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizerConfig",
    "SchedulerConfig",
    "apply_overrides",
    "config_from_dict",
    "dump_config",
    "load_config",
    "parse_override",
    "to_dict",
]
