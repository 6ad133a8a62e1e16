"""What ``neuroflow export`` and ``neuroflow eval --nir`` do (the CLI only parses arguments).

- :func:`export_checkpoint`: config + checkpoint -> the trained model (eval mode, BatchNorm folded
  on export) -> a ``.nir`` file.
- :func:`evaluate_nir`: a ``.nir`` file (anyone's) run on one split of a config's dataset;
  the predicted class is the arg-max of the output summed over time (spike counts, or potentials
  for an LI / CubaLI readout, or logits).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

from neuroflow.errors import InvalidArgumentError
from neuroflow.nir.exporter import save
from neuroflow.nir.importer import load


def export_checkpoint(
    cfg, checkpoint: str | os.PathLike, output: str | os.PathLike, dt: float = 1e-4
) -> dict:
    """Write the trained model of ``checkpoint`` (config ``cfg``, or the checkpoint's own when
    ``None``) as a NIR graph to ``output``; returns a summary (path, nodes, edges, dt, shape)."""
    from neuroflow.experiment import (
        build_datasets,
        load_checkpoint,
        load_trained_model,
        sample_shape,
    )

    ckpt = load_checkpoint(checkpoint)
    model = load_trained_model(cfg, ckpt)
    io = ckpt.get("model_io") or {}
    shape = io.get("input_shape") or getattr(model, "input_shape", None)
    if shape is None:
        shape = sample_shape(build_datasets(cfg)["train"])
    shape = tuple(int(s) for s in shape)
    graph = save(model, output, input_shape=shape, dt=dt)
    return {
        "nir": str(output),
        "checkpoint": str(checkpoint),
        "input_shape": list(shape),
        "dt": dt,
        "nodes": len(graph.nodes),
        "edges": len(graph.edges),
        "node_types": sorted({type(n).__name__ for n in graph.nodes.values()}),
    }


def evaluate_nir(
    path: str | os.PathLike,
    cfg,
    split: str = "test",
    dt: float | None = None,
    neuron_mode: str = "spec",
    type_check: bool = True,
    max_samples: int | None = None,
) -> dict:
    """Accuracy of the NIR graph at ``path`` on ``split`` of ``cfg``'s dataset.

    Returns ``{"accuracy", "num_samples", "split", "nir", "dt", "neuron_mode", "seconds"}``.
    """
    from neuroflow.experiment import build_loaders

    if max_samples is not None and max_samples < 1:
        raise InvalidArgumentError(f"max_samples must be >= 1, got {max_samples}")
    module = load(path, dt=dt, neuron_mode=neuron_mode, type_check=type_check).eval()
    loader = build_loaders(cfg, (split,))[split]
    correct = total = 0
    start = time.perf_counter()
    with torch.no_grad():
        for x, y in loader:
            if max_samples is not None and total >= max_samples:
                break
            if max_samples is not None:
                x, y = x[:, : max_samples - total], y[: max_samples - total]
            out = module(x.float())
            if isinstance(out, dict):
                out = next(iter(out.values()))
            scores = out.reshape(out.shape[0], out.shape[1], -1).sum(0)
            correct += int((scores.argmax(-1) == y).sum())
            total += int(y.numel())
    return {
        "accuracy": correct / total if total else math.nan,
        "num_samples": total,
        "split": split,
        "nir": str(Path(path)),
        "dt": module.dt,
        "neuron_mode": neuron_mode,
        "seconds": time.perf_counter() - start,
    }
