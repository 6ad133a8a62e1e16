"""Training: the trainer loop, losses, optimisers and schedules, checkpoints, distributed runs.

Checkpoint files and seeding live in :mod:`neuroflow.experiment` (re-exported here).

Public names: :func:`train`, :func:`evaluate_checkpoint`, :func:`evaluate`,
:func:`save_checkpoint`, :func:`load_checkpoint`, :func:`build_loss`, :func:`build_optimizer`,
:class:`LRSchedule`, :class:`FiringRateMonitor`, :class:`MetricsLogger`, :func:`seed_everything`.
"""

from neuroflow.experiment import load_checkpoint, save_checkpoint, seed_everything
from neuroflow.train.firing_rates import FiringRateMonitor
from neuroflow.train.losses import build_loss, mean_ce, tet_loss
from neuroflow.train.metrics_log import MetricsLogger
from neuroflow.train.optim import LRSchedule, build_optimizer
from neuroflow.train.trainer import (
    RunExistsError,
    evaluate,
    evaluate_checkpoint,
    resume_config,
    train,
)

__all__ = [
    "FiringRateMonitor",
    "LRSchedule",
    "MetricsLogger",
    "RunExistsError",
    "build_loss",
    "build_optimizer",
    "evaluate",
    "evaluate_checkpoint",
    "load_checkpoint",
    "mean_ce",
    "resume_config",
    "save_checkpoint",
    "seed_everything",
    "tet_loss",
    "train",
]
