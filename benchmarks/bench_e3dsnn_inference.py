"""E-3DSNN-T inference on real-sized point clouds: event-driven sparse convolutions against the
non-skipping ones, in the same run.

Both models share one set of weights; ``event_driven=True`` (the default) makes every convolution
that follows a spiking layer skip the voxels whose spikes are all zero. The script first checks that
both give the same logits (in float64, where no spike flips on a rounding difference), then times
whole forward passes (no autograd) interleaved round by round, and reports the fraction of voxels
that spiked at the input of the event-driven convolutions (the work they skip is the rest) and,
within those voxels, the fraction of non-zero channel entries.

Data: ``--root`` a ``modelnet40_normal_resampled`` folder, else the embedded synthetic shapes
(written to a temporary folder). Clouds are sampled to ``--points`` points and voxelised at
``--voxel-size`` (the paper's recipe: 8,192 points, 0.01). Spike densities, and with them the
speed-up, depend on the weights: with ``--checkpoint`` a trained E-3DSNN-T; otherwise the random
initialisation with its BatchNorm statistics estimated on the batch itself (as BN recalibration
does), so that each layer's input is normalised and a realistic share of the voxels spikes (the
raw initialisation spikes at well under 1% of the voxels).

    python benchmarks/bench_e3dsnn_inference.py [--root DIR] [--checkpoint CKPT] [--batch 8]
        [--repeat 8] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from neuroflow.allocator import retain_freed_memory
from neuroflow.data import build_datasets, prepare_synthetic_shapes
from neuroflow.layers import SparseConv3d, SubMConv3d
from neuroflow.layers.sparse.kernels.events import nonzero_rows
from neuroflow.models import build_model


def load_batch(args, workdir: Path):
    options = {
        "num_points": args.points,
        "voxel_size": args.voxel_size,
        "time_steps": 1,
        "cache": False,
        "val_fraction": 0.0,
        "test_fraction": 0.0,
    }
    if args.root:
        options.update(name="modelnet40", root=args.root)
    else:
        root = prepare_synthetic_shapes(workdir / "synthetic-shapes", 1, 1, seed=0, progress=False)
        options.update(
            name="synthetic-shapes",
            root=str(root),
            surface_points=2 * args.points,
            synthetic_train_per_class=1,
            synthetic_test_per_class=1,
        )
    ds = build_datasets(options, seed=0)["train"]
    return ds, ds.collate_fn([ds[i] for i in range(min(args.batch, len(ds)))])


def spike_densities(model, x) -> list[tuple[float, float]]:
    """Per event-driven convolution: (fraction of voxels with a non-zero input row, fraction of
    the entries of those rows that are non-zero: the work a per-spike kernel would have left)."""
    seen = []

    def record(module, inputs):
        features = inputs[0].features
        rows = nonzero_rows(features)
        active = features[rows]
        seen.append(
            (
                float(rows.float().mean()),
                float(active.ne(0).float().mean()) if active.numel() else 0.0,
            )
        )

    hooks = [
        m.register_forward_pre_hook(record)
        for m in model.modules()
        if isinstance(m, (SubMConv3d, SparseConv3d)) and m.event_driven
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def calibrate_batch_norm(model, x) -> None:
    """Set every BatchNorm's running statistics to those of ``x``'s forward pass (cumulative average
    over one pass in training mode, no gradients), then return to evaluation mode."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--root", help="a modelnet40_normal_resampled folder (default: synthetic shapes)"
    )
    parser.add_argument("--checkpoint", help="trained E-3DSNN-T weights (a neuroflow checkpoint)")
    parser.add_argument("--points", type=int, default=8192)
    parser.add_argument("--voxel-size", type=float, default=0.01)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    retain_freed_memory()

    with tempfile.TemporaryDirectory() as tmp:
        ds, (x, _) = load_batch(args, Path(tmp))
    torch.manual_seed(0)
    event = build_model(
        "e3dsnn_t", {}, num_classes=ds.num_classes, input_shape=ds.input_shape
    ).eval()
    if args.checkpoint:
        event.load_state_dict(torch.load(args.checkpoint, weights_only=True)["model"])
    else:
        calibrate_batch_norm(event, x)
    plain = build_model(
        "e3dsnn_t", {"event_driven": False}, num_classes=ds.num_classes, input_shape=ds.input_shape
    ).eval()
    plain.load_state_dict(event.state_dict())
    with torch.no_grad():
        difference = float((event(x) - plain(x)).abs().max())
        # the check is made in float64: in float32 the two paths sum in different orders, and a
        # rounding difference at a rounding boundary of an integer-spike neuron flips a spike now
        # and then, which moves the logits by ~1e-2 without either path being wrong
        x64 = x.replace_features(x.features.double())
        difference64 = float((event.double()(x64) - plain.double()(x64)).abs().max())
        event.float(), plain.float()
    if difference64 > 1e-9:
        raise SystemExit(
            f"event-driven and plain logits differ by {difference64:.2e} in float64: "
            "not timing them"
        )
    densities = spike_densities(event, x)

    times = {"event_driven": [], "plain": []}
    with torch.no_grad():
        for _ in range(args.repeat):
            for name, model in (("event_driven", event), ("plain", plain)):
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    result = {
        "setting": {
            "clouds": x.batch_size,
            "voxels": x.features.shape[0],
            "points": args.points,
            "voxel_size": args.voxel_size,
            "threads": torch.get_num_threads(),
            "data": args.root or "synthetic-shapes",
            "weights": args.checkpoint or "random, BN calibrated on the batch",
        },
        "max_abs_logit_difference": difference,
        "max_abs_logit_difference_float64": difference64,
        "mean_spiking_voxel_fraction": statistics.mean(d[0] for d in densities)
        if densities
        else None,
        "mean_nonzero_entry_fraction_in_spiking_voxels": statistics.mean(d[1] for d in densities)
        if densities
        else None,
        "times": {
            k: {"median_ms": statistics.median(v) * 1e3, "min_ms": min(v) * 1e3}
            for k, v in times.items()
        },
    }
    result["speedup"] = (
        result["times"]["plain"]["median_ms"] / result["times"]["event_driven"]["median_ms"]
    )
    print(
        f"E-3DSNN-T inference, {x.batch_size} clouds, {x.features.shape[0]} voxels, "
        f"{torch.get_num_threads()} threads; logits differ by {difference64:.1e} in float64, "
        f"{difference:.1e} in float32"
    )
    print(
        "spiking voxels at the event-driven convolutions: "
        f"mean {result['mean_spiking_voxel_fraction']:.1%} "
        f"over {len(densities)} layers; non-zero entries in their rows: "
        f"mean {result['mean_nonzero_entry_fraction_in_spiking_voxels']:.1%}"
    )
    for name, t in result["times"].items():
        print(f"{name:<14}{t['median_ms']:>10.1f} ms median {t['min_ms']:>10.1f} ms min")
    print(f"event-driven speed-up: {result['speedup']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
