"""The typed schema of an experiment config: one dataclass per YAML section.

A YAML file fills these dataclasses through :func:`neuroflow.config.load_config`, which checks
every key and type against the annotations here (a key that is not a field is an error, never
ignored). Defaults here are the defaults of the library; ``configs/quickstart.yaml`` spells out a
full example. The ``data`` section is the options class of the dataset it names (registered in
:mod:`neuroflow.data`), the ``model`` section the keywords of the model builder it names.

Units: learning rates are absolute; ``warmup_epochs`` and ``milestones`` count epochs (a fraction
of an epoch is allowed for warm-up); ``clip_grad`` is a maximum global L2 norm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from neuroflow.data.options import DataOptions
from neuroflow.data.registry import DATASETS, DEFAULT_DATASET


@dataclass
class ModelConfig:
    """``model: {name: scnn, <builder keyword>: value, ...}``.

    Every key besides ``name`` is a keyword argument of the registered builder and is checked
    against the builder's signature; ``params`` holds them after loading (the YAML stays flat).
    """

    name: str = "scnn"
    params: dict[str, Any] = field(default_factory=dict)


#: The ``data:`` section: the options class of the dataset it names (its ``name`` key picks
#: :data:`neuroflow.data.DATASETS`'s entry, whose ``options`` dataclass lists the keys, types and
#: defaults). Every dataset shares the fields of this base: ``name``, ``root``, ``batch_size``
#: (the *global* batch: under ``torchrun`` each of W processes loads ``batch_size / W``),
#: ``num_workers``, the split fractions, ``cache``, ``on_bad_file``, ``max_samples``, ``prepare``.
#: ``neuroflow config show`` prints a dataset's full set.
DataConfig = DataOptions


def default_data() -> DataOptions:
    """The default dataset's options, all at their defaults."""
    return DATASETS.get(DEFAULT_DATASET).options()


@dataclass
class OptimizerConfig:
    """SGD (``momentum``, ``nesterov``) or AdamW (``betas``, ``eps``); both use ``weight_decay``."""

    name: Literal["sgd", "adamw"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@dataclass
class SchedulerConfig:
    """Learning-rate schedule, evaluated every optimisation step.

    ``cosine`` decays from ``lr`` to ``min_lr`` over the steps after warm-up; ``step`` multiplies
    by ``gamma`` at each epoch in ``milestones``; ``constant`` keeps ``lr``. All three start with a
    linear warm-up from ``lr / (warmup steps)`` to ``lr`` over ``warmup_epochs``.
    """

    name: Literal["cosine", "step", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1


@dataclass
class LossConfig:
    """``ce``: cross-entropy of the time-mean logits; ``tet``: mean over time steps of the
    per-step cross-entropy (+ ``tet_lambda`` x MSE of the logits to ``tet_phi``, Deng et al. 2022).
    ``label_smoothing`` applies to both."""

    name: Literal["ce", "tet"] = "ce"
    label_smoothing: float = 0.0
    tet_lambda: float = 0.0
    tet_phi: float = 1.0


@dataclass
class LoopConfig:
    """The training loop. ``log_every`` is in steps (progress-bar refresh), ``eval_every`` in epochs
    (the last epoch is always evaluated)."""

    epochs: int = 10
    clip_grad: float | None = None
    log_every: int = 10
    eval_every: int = 1
    progress: bool = True
    tensorboard: bool = False  # opt-in: needs the tensorboard package (not a dependency)


@dataclass
class DistributedConfig:
    """Settings used when started by ``torchrun`` (they are ignored in a single process).

    ``backend: auto`` picks nccl on GPUs and gloo on CPUs. ``sync_batchnorm`` makes BatchNorm use
    statistics of the global batch (needs GPUs; PyTorch's SyncBatchNorm has no CPU kernel).
    """

    backend: Literal["auto", "gloo", "nccl"] = "auto"
    sync_batchnorm: bool = False
    timeout_s: int = 1800


@dataclass
class ExperimentConfig:
    """A whole experiment. ``name`` defaults to the config file's stem; ``output_dir`` to
    ``runs/<name>`` (relative to the working directory)."""

    name: str | None = None
    seed: int = 0
    output_dir: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=default_data)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
