"""Data-parallel training across processes started by ``torchrun`` (DistributedDataParallel).

``torchrun --nproc-per-node N -m neuroflow train CONFIG`` sets ``RANK`` / ``WORLD_SIZE`` /
``LOCAL_RANK``; :func:`init_distributed` reads them (a plain ``neuroflow train`` is a world of
one). The backend is nccl on GPUs and gloo on CPUs.

Batch semantics: ``data.batch_size`` is the **global** batch. Each rank loads
``batch_size / world_size`` samples per step from a ``DistributedSampler`` (seeded with the config
seed, ``set_epoch`` every epoch) and DDP averages the gradients, so one step sees the same samples
and the same mean gradient as a single process with the same ``batch_size`` (up to float summation
order). BatchNorm is the exception: each rank normalises with its own batch statistics unless
``distributed.sync_batchnorm`` is set (SyncBatchNorm, GPUs only).
"""

from __future__ import annotations

import datetime
import gc
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from neuroflow.config.schema import ExperimentConfig
from neuroflow.errors import ConfigError
from neuroflow.experiment import select_device


@dataclass
class DistContext:
    """Where this process sits: ``rank`` of ``world_size``, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, shows progress and writes files."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(cfg: ExperimentConfig) -> DistContext:
    """Join the process group when started by torchrun; otherwise a single-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = select_device(cfg, local_rank)
    if world > 1:
        backend = cfg.distributed.backend
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        if backend == "nccl" and device.type != "cuda":
            raise ConfigError("config key 'distributed.backend': nccl needs CUDA devices; use gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(
                backend,
                rank=rank,
                world_size=world,
                timeout=datetime.timedelta(seconds=cfg.distributed.timeout_s),
            )
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group, with the DDP model freed first.

    Why: DDP's reducer holds the process group, and DDP objects sit in reference cycles; left to
    the interpreter's own shutdown, gloo's worker threads were destroyed while it tore down, and a
    rank aborted once ("terminate called without an active exception", SIGABRT, in the 2-process
    point-cloud test, after the run had finished). No barrier here: after an error on one rank the
    others may be inside a collective, and a barrier would hang both until the timeout.
    """
    if ctx.is_distributed and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.is_distributed:
        dist.barrier()


def all_reduce_sum(values: Sequence[float] | torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a vector of float64 values over all ranks (identity in a single process)."""
    t = torch.as_tensor(values, dtype=torch.float64).clone()
    if ctx.is_distributed:
        # gloo reduces CPU tensors, nccl CUDA ones
        dev = ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")
        t = t.to(dev)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t = t.cpu()
    return t


def per_rank_batch(global_batch: int, ctx: DistContext) -> int:
    """``data.batch_size`` split evenly across ranks (a ConfigError when it does not divide)."""
    if global_batch % ctx.world_size:
        raise ConfigError(
            f"config key 'data.batch_size': the global batch {global_batch} must be divisible by "
            f"the number of processes ({ctx.world_size})"
        )
    return global_batch // ctx.world_size


def wrap_model(model: nn.Module, cfg: ExperimentConfig, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around ``model`` (already on ``ctx.device``) when distributed."""
    if not ctx.is_distributed:
        return model
    if cfg.distributed.sync_batchnorm:
        if ctx.device.type != "cuda":
            raise ConfigError(
                "config key 'distributed.sync_batchnorm': PyTorch's SyncBatchNorm runs on GPUs "
                "only; set it to false on CPUs (each rank then uses its own batch statistics)"
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (the one whose state dict goes into checkpoints)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class ShardSampler(Sampler[int]):
    """Evaluation sampler: rank ``r`` of ``W`` takes indices ``r, r + W, ...`` in order.

    Unlike ``DistributedSampler`` it neither shuffles nor pads, so summed metrics count every
    sample exactly once (ranks may get one sample more or less).
    """

    def __init__(self, length: int, ctx: DistContext):
        self.length, self.rank, self.world = length, ctx.rank, ctx.world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world))
