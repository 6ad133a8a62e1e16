"""The training loop behind ``neuroflow train`` and the evaluation behind ``neuroflow eval``.

One epoch: train on the train split (progress bar with loss, accuracy, samples/s), evaluate on the
validation split every ``loop.eval_every`` epochs, append a metrics record, then write
``last.pt`` (and ``best.pt`` when validation accuracy improved). At the end the best checkpoint is
evaluated on the test split with firing-rate hooks, its energy per sample is estimated on a few
test samples (45 nm CMOS, fp32) and ``summary.json`` is written.

Determinism: the config seed seeds Python, NumPy and torch before the model is built; the sampler
is a ``DistributedSampler`` (also in a single process) whose permutation depends only on
``(seed, epoch)``, and the DataLoader's own generator is re-seeded every epoch. A checkpoint stores
the generator states at the end of its epoch, so ``--resume`` continues bit-for-bit.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from neuroflow.config.loader import config_from_dict, to_dict
from neuroflow.config.schema import ExperimentConfig
from neuroflow.errors import CheckpointError, ConfigError, NeuroflowError
from neuroflow.experiment import (
    atomic_write,
    build_datasets,
    build_loader,
    build_model,
    checkpoint_config,
    diff_keys,
    ensure_output_dir,
    load_checkpoint,
    load_model_state,
    load_trained_model,
    model_io,
    save_checkpoint,
    seed_everything,
    select_device,
)
from neuroflow.train.distributed import (
    DistContext,
    ShardSampler,
    all_reduce_sum,
    barrier,
    init_distributed,
    per_rank_batch,
    shutdown,
    unwrap,
    wrap_model,
)
from neuroflow.train.firing_rates import FiringRateMonitor
from neuroflow.train.losses import build_loss, mean_ce
from neuroflow.train.metrics_log import MetricsLogger
from neuroflow.train.optim import LRSchedule, build_optimizer
from neuroflow.train.seeding import capture_rng, restore_rng


class RunExistsError(NeuroflowError):
    """``train`` into an output_dir that already holds a run, without resume or overwrite."""


@dataclass
class TrainState:
    """Progress that a checkpoint must carry besides model and optimiser."""

    epoch: int = 0  # completed epochs
    global_step: int = 0  # optimiser steps taken
    best_val_accuracy: float = -1.0
    best_val_loss: float = float("inf")  # breaks ties in accuracy (small validation sets)
    best_epoch: int = 0
    wall_time_s: float = 0.0  # training time summed over all (resumed) segments


# ---------------------------------------------------------------------------------------------
# building blocks


def _main_first(fn: Callable[[], Any], ctx: DistContext, what: str) -> Any:
    """Run ``fn`` on rank 0, then on the other ranks (rank 0 may create files they read).

    A failure on rank 0 is re-raised there and reported on the others instead of leaving them
    waiting at a barrier.
    """
    result, error = None, None
    if ctx.is_main:
        try:
            result = fn()
        except Exception as exc:  # re-raised below, after telling the other ranks
            error = exc
    if ctx.is_distributed:
        failed = all_reduce_sum([1.0 if error is not None else 0.0], ctx)[0].item()
        if failed and not ctx.is_main:
            raise NeuroflowError(f"rank 0 failed while {what}; see its error")
    if error is not None:
        raise error
    return result if ctx.is_main else fn()


def load_datasets(cfg: ExperimentConfig, ctx: DistContext) -> dict:
    """``{"train", "val", "test"}`` datasets for the config (rank 0 prepares data first)."""
    return _main_first(lambda: build_datasets(cfg), ctx, "loading the data")


def make_model(cfg: ExperimentConfig, dataset) -> nn.Module:
    """The configured model for ``dataset``, its initial weights depending on the seed only."""
    return build_model(cfg, dataset)


def make_loader(
    dataset,
    batch_size: int,
    sampler,
    cfg: ExperimentConfig,
    ctx: DistContext,
    generator: torch.Generator | None = None,
) -> DataLoader:
    return build_loader(dataset, cfg, batch_size, sampler, generator, ctx.device)


def _bar(iterable, total: int, desc: str, enabled: bool):
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        leave=False,
        disable=not enabled,
        dynamic_ncols=True,
        unit="batch",
        file=sys.stderr,
    )


def _say(ctx: DistContext, text: str) -> None:
    if ctx.is_main:
        tqdm.write(text)


#: seconds of silence after which a slow first step says what it is doing
SLOW_NOTICE_S = 8.0


class _SlowNotice:
    """Print ``text`` once if the ``with`` block is still running after ``after_s`` seconds.

    The first batch of a fresh installation runs for tens of seconds while numba compiles the
    neuron kernels (cached on disk afterwards); without a word it looks like a hang.
    """

    def __init__(self, ctx: DistContext, text: str | None, after_s: float = SLOW_NOTICE_S):
        self.timer = None
        if text is not None and ctx.is_main:
            self.timer = threading.Timer(after_s, tqdm.write, (text,), {"file": sys.stderr})
            self.timer.daemon = True

    def __enter__(self):
        if self.timer is not None:
            self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.timer is not None:
            self.timer.cancel()


COMPILE_NOTICE = (
    "first batch: numba is compiling the kernels (first run only; later runs load them from "
    "its cache)..."
)
DATA_NOTICE = "preparing the data (the first run builds its caches)..."


# ---------------------------------------------------------------------------------------------
# one epoch / one evaluation


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    schedule: LRSchedule,
    loss_fn: Callable,
    state: TrainState,
    cfg: ExperimentConfig,
    ctx: DistContext,
    first_batch_notice: str | None = None,
) -> dict[str, float]:
    """Train for one pass over ``loader``; returns epoch means summed over all ranks.

    ``first_batch_notice`` is printed when the first step takes more than ``SLOW_NOTICE_S``."""
    model.train()
    totals = torch.zeros(3, dtype=torch.float64)  # loss * n, correct, n (this rank)
    start = time.perf_counter()
    show = cfg.loop.progress and ctx.is_main
    # updated by hand: a bar wrapping the loader syncs its count only every 0.1 s, so a postfix
    # refresh between syncs showed a stale step
    bar = _bar(None, len(loader), f"epoch {state.epoch + 1}/{cfg.loop.epochs} train", show)
    lr = schedule.lr(state.global_step)
    batches = iter(loader)
    for i in range(len(loader)):
        with _SlowNotice(ctx, first_batch_notice if i == 0 else None):
            x, y = next(batches)
            x = x.to(ctx.device, non_blocking=True)
            y = y.to(ctx.device, non_blocking=True)
            logits = model(x)  # [T, B, classes]
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if cfg.loop.clip_grad is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.loop.clip_grad)
        lr = schedule.apply(optimizer, state.global_step)
        optimizer.step()
        state.global_step += 1
        n = y.shape[0]
        correct = (logits.detach().mean(0).argmax(1) == y).sum().item()
        totals += torch.tensor([loss.item() * n, correct, n], dtype=torch.float64)
        bar.update()
        if show and (i % cfg.loop.log_every == 0 or i == len(loader) - 1):
            seen = totals[2].item() * ctx.world_size
            bar.set_postfix(
                {
                    "loss": f"{totals[0].item() / totals[2].item():.3f}",
                    "acc": f"{totals[1].item() / totals[2].item():.1%}",
                    "samples/s": f"{seen / (time.perf_counter() - start):.0f}",
                }
            )
    bar.close()
    totals = all_reduce_sum(totals, ctx)
    seconds = time.perf_counter() - start
    n = max(totals[2].item(), 1.0)
    return {
        "train_loss": totals[0].item() / n,
        "train_accuracy": totals[1].item() / n,
        "lr": lr,
        "train_samples": int(totals[2].item()),
        "epoch_time_s": seconds,
        "samples_per_s": totals[2].item() / seconds if seconds > 0 else 0.0,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    ctx: DistContext,
    desc: str = "eval",
    progress: bool = False,
) -> dict[str, Any]:
    """Loss (cross-entropy of the time-mean logits), accuracy, mean class accuracy and firing
    rates over ``loader``, summed over all ranks (each rank sees its own shard).

    ``class_accuracy`` lists each class's accuracy (None for a class without samples) and
    ``mean_class_accuracy`` averages it over the classes that have samples (the "avg. class
    accuracy" of point-cloud papers, beside the overall accuracy); both None when the dataset does
    not say its ``num_classes``."""
    model = unwrap(model)  # evaluation needs no gradient synchronisation
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64)
    num_classes = int(getattr(loader.dataset, "num_classes", 0) or 0)
    per_class = torch.zeros(2, num_classes, dtype=torch.float64)  # correct, samples
    with FiringRateMonitor(model) as monitor:
        for x, y in _bar(loader, len(loader), desc, progress and ctx.is_main):
            x = x.to(ctx.device, non_blocking=True)
            y = y.to(ctx.device, non_blocking=True)
            logits = model(x)
            n = y.shape[0]
            hits = logits.mean(0).argmax(1) == y
            totals += torch.tensor(
                [mean_ce(logits, y).item() * n, hits.sum().item(), n], dtype=torch.float64
            )
            if num_classes:
                labels = y.cpu()  # in range: the cross-entropy above checked them
                per_class[0] += torch.bincount(
                    labels, weights=hits.cpu().double(), minlength=num_classes
                )
                per_class[1] += torch.bincount(labels, minlength=num_classes)
    summed = all_reduce_sum(
        torch.cat(
            [totals, per_class.flatten(), torch.tensor(monitor.totals(), dtype=torch.float64)]
        ),
        ctx,
    )
    counts = summed[3 : 3 + 2 * num_classes].view(2, num_classes)
    monitor.load_totals(summed[3 + 2 * num_classes :].tolist())
    n = summed[2].item()
    seen = counts[1] > 0
    class_accuracy = [c / t if t else None for c, t in zip(counts[0].tolist(), counts[1].tolist())]
    return {
        "loss": summed[0].item() / n if n else float("nan"),
        "accuracy": summed[1].item() / n if n else float("nan"),
        "mean_class_accuracy": float((counts[0][seen] / counts[1][seen]).mean())
        if seen.any()
        else None,
        "class_accuracy": class_accuracy if num_classes else None,
        "num_samples": int(n),
        "mean_firing_rate": monitor.mean_rate(),
        "firing_rates": monitor.rates(),
    }


# ---------------------------------------------------------------------------------------------
# checkpoints of a run


def _payload(model, optimizer, state: TrainState, cfg: ExperimentConfig, io: dict) -> dict:
    return {
        "epoch": state.epoch,
        "global_step": state.global_step,
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": {"name": cfg.scheduler.name, "step": state.global_step},
        "rng": capture_rng(),
        "best_val_accuracy": state.best_val_accuracy,
        "best_val_loss": state.best_val_loss,
        "best_epoch": state.best_epoch,
        "wall_time_s": state.wall_time_s,
        "config": to_dict(cfg),
        "model_io": io,
    }


def _resume(path: Path, model, optimizer, cfg: ExperimentConfig, ctx: DistContext) -> TrainState:
    """Restore model, optimiser, progress and generator states from ``path``."""
    ckpt = load_checkpoint(path)
    saved = ckpt.get("config", {})
    current = to_dict(cfg)
    changed = diff_keys(saved, current)
    model_changes = [k for k in changed if k.startswith("model")]
    if model_changes:
        raise CheckpointError(
            f"{path}: cannot resume, the model config changed ({', '.join(model_changes)})"
        )
    if changed:
        values = ", ".join(
            f"{k}={_lookup(current, k)!r} (was {_lookup(saved, k)!r})" for k in changed
        )
        _say(ctx, f"values in force that differ from the checkpoint's config: {values}")
    load_model_state(unwrap(model), ckpt["model"], path)
    # the checkpoint's optimiser state (moments, step counts) with the hyperparameters in force:
    # load_state_dict would bring back the stored ones and silently undo a --set
    in_force = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: optimizer state does not match ({exc})") from None
    for group, hyper in zip(optimizer.param_groups, in_force):
        group.update(hyper)
    restore_rng(ckpt["rng"])
    return TrainState(
        epoch=int(ckpt["epoch"]),
        global_step=int(ckpt["global_step"]),
        best_val_accuracy=float(ckpt["best_val_accuracy"]),
        best_val_loss=float(ckpt.get("best_val_loss", float("inf"))),
        best_epoch=int(ckpt["best_epoch"]),
        wall_time_s=float(ckpt["wall_time_s"]),
    )


def _lookup(tree: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def resume_config(
    cfg: ExperimentConfig, overrides: Iterable[str] = ()
) -> tuple[ExperimentConfig, list[str]]:
    """The config a resumed run continues with, and lines saying which values are in force.

    A resumed run continues the config stored in ``<cfg.output_dir>/last.pt`` (the run's own,
    including the overrides it was started with), not the config file as it reads today;
    ``overrides`` (``--set`` given with ``--resume``) apply on top. ``cfg`` (the file with the
    same overrides) only says where the run is; where it differs from the checkpoint in a key
    not overridden, a line says that the checkpoint's value stays (the values that ``--set``
    changed are printed by :func:`train` when it resumes).
    """
    last = Path(cfg.output_dir) / "last.pt"
    if not last.is_file():
        raise CheckpointError(f"nothing to resume: {last} does not exist")
    ckpt = load_checkpoint(last)
    saved = checkpoint_config(ckpt, last)
    saved.output_dir, saved.name = cfg.output_dir, cfg.name  # the run stays where it was found
    overrides = list(overrides)
    try:
        resumed = config_from_dict(to_dict(saved), overrides)
    except ConfigError as exc:
        raise ConfigError(f"--set with --resume: {exc}") from None
    stored, file_values, in_force = to_dict(saved), to_dict(cfg), to_dict(resumed)
    lines = [f"resuming with the config stored in {last}"]
    overridden = diff_keys(stored, in_force)  # the trainer prints these when it resumes
    ignored = [k for k in diff_keys(stored, file_values) if k not in overridden]
    if ignored:
        values = ", ".join(
            f"{k}={_lookup(stored, k)!r} (file: {_lookup(file_values, k)!r})" for k in ignored
        )
        lines.append(
            f"the config file differs; the checkpoint's values stay: {values} "
            "(pass --set KEY=VALUE with --resume to change one)"
        )
    return resumed, lines


#: what a training run writes into its output_dir (removed by ``overwrite=True``)
RUN_FILES = (
    "last.pt",
    "best.pt",
    "summary.json",
    "metrics.jsonl",
    "metrics.csv",
    "curves.png",
)


def existing_run(out: Path) -> list[str]:
    """The run files already in ``out`` (empty when it holds no run)."""
    names = [n for n in RUN_FILES if (out / n).exists()]
    return names + (["tensorboard/"] if (out / "tensorboard").is_dir() else [])


def _clear_run(out: Path) -> None:
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    if (out / "tensorboard").is_dir():
        shutil.rmtree(out / "tensorboard")


# ---------------------------------------------------------------------------------------------
# entry points


def train(cfg: ExperimentConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Train as configured (one process, or one rank under torchrun); returns the summary.

    A run folder (``output_dir``) that already holds a run is refused (:class:`RunExistsError`)
    unless ``resume`` continues it or ``overwrite`` replaces it (its run files are deleted first).
    """
    if not resume and not overwrite:
        found = existing_run(Path(cfg.output_dir))
        if found:
            raise RunExistsError(
                f"{cfg.output_dir} already holds a run ({', '.join(found)}): pass --overwrite "
                "to replace it, --resume to continue it, or --set output_dir=DIR for a new one"
            )
    ctx = init_distributed(cfg)
    try:
        return _train(cfg, resume, overwrite, ctx)
    finally:
        shutdown(ctx)


def _train(cfg: ExperimentConfig, resume: bool, overwrite: bool, ctx: DistContext) -> dict:
    out = Path(cfg.output_dir)
    last_path, best_path = out / "last.pt", out / "best.pt"
    if resume and not last_path.is_file():
        raise CheckpointError(f"nothing to resume: {last_path} does not exist")
    if ctx.is_main:
        ensure_output_dir(out)  # an unwritable output_dir fails before the data are loaded
        if overwrite and not resume:
            _clear_run(out)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = False  # autotuning picks kernels non-deterministically
    seed_everything(cfg.seed)
    batch = per_rank_batch(cfg.data.batch_size, ctx)
    with _SlowNotice(ctx, DATA_NOTICE):
        datasets = load_datasets(cfg, ctx)
    model = make_model(cfg, datasets["train"]).to(ctx.device)
    num_params = sum(p.numel() for p in model.parameters())

    train_sampler = DistributedSampler(
        datasets["train"],
        num_replicas=ctx.world_size,
        rank=ctx.rank,
        shuffle=True,
        seed=cfg.seed,
        drop_last=False,
    )
    loader_gen = torch.Generator()
    train_loader = make_loader(datasets["train"], batch, train_sampler, cfg, ctx, loader_gen)
    eval_loaders = {
        split: make_loader(
            datasets[split], batch, ShardSampler(len(datasets[split]), ctx), cfg, ctx
        )
        for split in ("val", "test")
        if datasets.get(split) is not None and len(datasets[split]) > 0
    }
    optimizer = build_optimizer(model, cfg.optimizer)
    schedule = LRSchedule(cfg.scheduler, cfg.optimizer.lr, len(train_loader), cfg.loop.epochs)
    loss_fn = build_loss(cfg.loss)

    state = TrainState()
    if resume:
        state = _resume(last_path, model, optimizer, cfg, ctx)
        _say(ctx, f"resumed from {last_path} after epoch {state.epoch}")
    model = wrap_model(model, cfg, ctx)

    logger = None
    if ctx.is_main:
        for stale in out.glob(".*.tmp-*"):  # left by a run killed while writing a file
            stale.unlink(missing_ok=True)
        logger = MetricsLogger(
            out, resume_epoch=state.epoch if resume else None, tensorboard=cfg.loop.tensorboard
        )
        sizes = ", ".join(f"{k} {len(v)}" for k, v in datasets.items() if v is not None)
        _say(
            ctx,
            f"{cfg.name}: model {cfg.model.name} ({num_params:,} parameters), data "
            f"{cfg.data.name} ({sizes}), {ctx.world_size} process(es) on {ctx.device}, "
            f"output {out}",
        )

    segment_start = time.perf_counter()
    wall_before = state.wall_time_s
    first_epoch = state.epoch
    try:
        while state.epoch < cfg.loop.epochs:
            epoch = state.epoch
            train_sampler.set_epoch(epoch)
            loader_gen.manual_seed(cfg.seed + epoch)  # worker seeds depend on (seed, epoch) only
            record: dict[str, Any] = {"epoch": epoch + 1}
            notice = COMPILE_NOTICE if epoch == first_epoch else None
            record.update(
                train_one_epoch(
                    model, train_loader, optimizer, schedule, loss_fn, state, cfg, ctx, notice
                )
            )
            last_epoch = epoch + 1 == cfg.loop.epochs
            if "val" in eval_loaders and ((epoch + 1) % cfg.loop.eval_every == 0 or last_epoch):
                val = evaluate(model, eval_loaders["val"], ctx, "validate", cfg.loop.progress)
                record.update(
                    val_loss=val["loss"],
                    val_accuracy=val["accuracy"],
                    val_firing_rate=val["mean_firing_rate"],
                )
            state.epoch = epoch + 1
            state.wall_time_s = wall_before + time.perf_counter() - segment_start
            if "val" in eval_loaders:
                # best = highest validation accuracy, ties broken by lower validation loss
                score = record.get("val_accuracy")  # None in epochs without validation
                improved = score is not None and (
                    (score, -record["val_loss"]) > (state.best_val_accuracy, -state.best_val_loss)
                )
            else:
                score, improved = None, True  # no validation split: the latest epoch is the best
            if improved:
                state.best_epoch = state.epoch
                if score is not None:
                    state.best_val_accuracy, state.best_val_loss = score, record["val_loss"]
            if ctx.is_main:
                # metrics before the checkpoint: a resume drops records newer than last.pt
                logger.log(record)
                payload = _payload(model, optimizer, state, cfg, model_io(datasets["train"]))
                # best before last: whenever last.pt says "epoch e", best.pt covers epochs <= e
                if improved:
                    save_checkpoint(best_path, payload)
                save_checkpoint(last_path, payload)
                _say(ctx, _epoch_line(record, cfg))
            barrier(ctx)
    finally:
        if logger is not None:
            logger.close()

    return _finish(cfg, ctx, model, eval_loaders, state, best_path, num_params)


def _epoch_line(r: dict, cfg: ExperimentConfig) -> str:
    line = (
        f"epoch {r['epoch']}/{cfg.loop.epochs}  train loss {r['train_loss']:.4f} "
        f"acc {r['train_accuracy']:.2%}"
    )
    if "val_accuracy" in r:
        line += f"  val loss {r['val_loss']:.4f} acc {r['val_accuracy']:.2%}"
    return (
        line + f"  lr {r['lr']:.2e}  {r['epoch_time_s']:.1f} s ({r['samples_per_s']:.0f} samples/s)"
    )


#: test samples the end-of-training energy summary counts on (cheap next to the test pass)
ENERGY_SUMMARY_SAMPLES = 64


def _energy_summary(model: nn.Module, loader: DataLoader, ctx: DistContext) -> dict[str, Any]:
    """Energy per sample on ``cmos45nm`` over the first test samples.

    A failing estimate must never cost a finished training run, nor pass unnoticed: it prints a
    warning naming the cause and returns ``{"error": cause}``, which summary.json keeps.
    """
    from neuroflow.energy import estimate_energy

    try:
        report = estimate_energy(
            unwrap(model), loader, "cmos45nm", max_samples=ENERGY_SUMMARY_SAMPLES, device=ctx.device
        )
    except Exception as exc:  # any failure: report it and keep the run's results
        cause = " ".join(f"{type(exc).__name__}: {exc}".split())
        warnings.warn(f"energy estimate failed: {cause}", RuntimeWarning, stacklevel=2)
        return {"error": cause}
    _say(ctx, report.summary())
    keys = (
        "hardware",
        "precision",
        "samples",
        "total_energy_pj",
        "ann_energy_pj",
        "snn_to_ann_ratio",
    )
    return {k: v for k, v in report.to_dict().items() if k in keys}


def _training_curves(cfg: ExperimentConfig, summary: dict) -> str | dict:
    """Draw loss and accuracy per epoch (and the test result at the best epoch) into
    ``curves.png`` beside metrics.csv; returns its path, or ``{"error": cause}`` with a warning
    (a plot must not cost a finished run)."""
    from neuroflow.viz import plot_training_curves, read_metrics

    out = Path(cfg.output_dir)
    try:
        rows = read_metrics(out, with_test=False)
        test = {k: summary[k] for k in ("test_loss", "test_accuracy") if summary[k] is not None}
        if test:
            rows.append({"epoch": summary["best_epoch"], **test})
        return str(plot_training_curves({cfg.name: rows}, out / "curves.png"))
    except Exception as exc:  # any failure: report it and keep the run's results
        cause = " ".join(f"{type(exc).__name__}: {exc}".split())
        warnings.warn(f"training curves not drawn: {cause}", RuntimeWarning, stacklevel=2)
        return {"error": cause}


def _finish(cfg, ctx, model, eval_loaders, state: TrainState, best_path: Path, num_params: int):
    """Evaluate the best checkpoint on the test split and write ``summary.json``."""
    barrier(ctx)  # best.pt is complete on every rank's view
    load_model_state(unwrap(model), load_checkpoint(best_path)["model"], best_path)
    summary: dict[str, Any] = {
        "name": cfg.name,
        "test_accuracy": None,
        "test_mean_class_accuracy": None,
        "test_loss": None,
        "test_samples": 0,
        "mean_firing_rate": None,
        "firing_rates": {},
        "checkpoint": str(best_path),
        "last_checkpoint": str(best_path.with_name("last.pt")),
        "epochs": state.epoch,
        "best_epoch": state.best_epoch,
        "best_val_accuracy": state.best_val_accuracy if "val" in eval_loaders else None,
        "wall_time_s": state.wall_time_s,
        "num_parameters": num_params,
        "world_size": ctx.world_size,
        "seed": cfg.seed,
        "energy": None,
    }
    if "test" in eval_loaders:
        test = evaluate(model, eval_loaders["test"], ctx, "test", cfg.loop.progress)
        summary.update(
            test_accuracy=test["accuracy"],
            test_mean_class_accuracy=test["mean_class_accuracy"],
            test_loss=test["loss"],
            test_samples=test["num_samples"],
            mean_firing_rate=test["mean_firing_rate"],
            firing_rates=test["firing_rates"],
        )
        if ctx.is_main:
            summary["energy"] = _energy_summary(model, eval_loaders["test"], ctx)
    if ctx.is_main:
        summary["curves"] = _training_curves(cfg, summary)
        path = Path(cfg.output_dir) / "summary.json"
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"))
        if summary["test_accuracy"] is not None:
            mean_class = summary["test_mean_class_accuracy"]
            _say(
                ctx,
                f"test accuracy: {summary['test_accuracy']:.2%}"
                + (f", mean class accuracy {mean_class:.2%}" if mean_class is not None else "")
                + f" ({summary['test_samples']} samples, best epoch {state.best_epoch})",
            )
            rates = ", ".join(f"{k} {v:.4f}" for k, v in summary["firing_rates"].items())
            _say(ctx, f"firing rates: {rates} (mean {summary['mean_firing_rate']:.4f})")
        else:
            _say(ctx, "no test split: test accuracy not measured")
        _say(ctx, f"checkpoint: {best_path}")
        _say(ctx, f"summary: {path}")
        if isinstance(summary["curves"], str):
            _say(ctx, f"curves: {summary['curves']}")
    barrier(ctx)  # ranks leave together: none tears its process group down while rank 0 reports
    return summary


def load_for_evaluation(cfg: ExperimentConfig, checkpoint: str | Path, split: str = "test"):
    """``(context, checkpoint dict, model with its weights, loader of split)`` to run
    ``checkpoint`` on one split of the config's data in this process."""
    ctx = DistContext(device=select_device(cfg, 0))
    ckpt = load_checkpoint(checkpoint)
    datasets = build_datasets(cfg, require=("train", split))
    model = load_trained_model(cfg, ckpt, ctx.device, dataset=datasets["train"])
    loader = make_loader(
        datasets[split], cfg.data.batch_size, ShardSampler(len(datasets[split]), ctx), cfg, ctx
    )
    return ctx, ckpt, model, loader


def evaluate_checkpoint(
    cfg: ExperimentConfig, checkpoint: str | Path, split: str = "test", progress: bool = False
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on one split of the config's data, in this process."""
    ctx, ckpt, model, loader = load_for_evaluation(cfg, checkpoint, split)
    result = evaluate(model, loader, ctx, split, progress)
    return {
        "split": split,
        "checkpoint": str(checkpoint),
        "epoch": int(ckpt.get("epoch", 0)),
        **result,
    }


__all__ = [
    "TrainState",
    "evaluate",
    "evaluate_checkpoint",
    "load_for_evaluation",
    "train",
    "train_one_epoch",
]
