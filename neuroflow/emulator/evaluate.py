"""Emulating a trained network on a dataset split: accuracy on the chip against the float
model, agreement, spike-count correlation per layer, energy, latency and resources."""

from __future__ import annotations

import numpy as np
import torch

from neuroflow.emulator.errors import InputRangeError
from neuroflow.emulator.shard import ShardedRunner


def _integer_events(x: torch.Tensor) -> np.ndarray:
    arr = x.detach().cpu().numpy()
    rounded = np.rint(arr)
    if not np.array_equal(arr, rounded):
        raise InputRangeError(
            "the data's frames are not integer event counts; the emulator takes events"
        )
    return rounded.astype(np.int64)


def _neuron_modules(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """NIR node name (module path with '.' -> '_', as neuroflow's exporter writes) -> module."""
    return {name.replace(".", "_"): module for name, module in model.named_modules() if name}


def evaluate(
    net, model: torch.nn.Module, loader, max_samples: int | None = None, processes: int = 1
) -> dict:
    """Run ``net`` (a compiled chip network) and the float ``model`` on ``loader``'s batches
    (``[T, B, ...]`` integer event frames, labels); returns the JSON-ready summary.
    ``processes > 1``: each batch's streams are sharded over that many worker processes
    (one pool for the whole split; the same figures as one process)."""
    runner = ShardedRunner(net, processes)
    layers = getattr(net, "layers", [])
    neuron_of = {
        ly.name: ly.quantisation.get("neuron") for ly in layers if hasattr(ly, "quantisation")
    }
    modules = _neuron_modules(model)
    recorded: dict[str, list] = {}
    hooks = []
    for layer_name, neuron in neuron_of.items():
        if neuron and neuron in modules:
            recorded[layer_name] = []

            def hook(_module, _inputs, output, key=layer_name):
                recorded[key].append(
                    output.detach().sum(0).reshape(output.shape[1], -1).cpu().numpy()
                )

            hooks.append(modules[neuron].register_forward_hook(hook))
    chip_counts: dict[str, list] = {k: [] for k in recorded}
    correct = correct_float = agree = seen = 0
    energy = latency = 0.0
    stats: dict[str, dict] = {}
    model.eval()
    try:
        with torch.no_grad(), runner:
            for x, y in loader:
                if max_samples is not None and seen >= max_samples:
                    break
                if max_samples is not None:
                    x, y = x[:, : max_samples - seen], y[: max_samples - seen]
                pred_float = model(x).mean(0).argmax(-1).cpu().numpy()
                result = runner.run(_integer_events(x))
                pred_chip = result.output_counts.reshape(x.shape[1], -1).argmax(-1)
                labels = y.cpu().numpy()
                correct += int((pred_chip == labels).sum())
                correct_float += int((pred_float == labels).sum())
                agree += int((pred_chip == pred_float).sum())
                batch = x.shape[1]
                energy += result.energy_per_sample_pj * batch
                latency += result.latency_per_sample_s * batch
                seen += batch
                for key in chip_counts:
                    spikes = result.layer_spikes[key]
                    chip_counts[key].append(spikes.sum(0).reshape(batch, -1))
                for s in result.layers:
                    row = stats.setdefault(
                        s.name, {"synaptic_events": 0, "neuron_updates": 0, "spikes": 0}
                    )
                    row["synaptic_events"] += s.synaptic_events
                    row["neuron_updates"] += s.neuron_updates
                    row["spikes"] += s.spikes
                    row["cores"] = list(s.cores)
                    row["memory"] = {
                        k: {"used": int(u), "limit": int(c)} for k, (u, c) in s.memory.items()
                    }
    finally:
        for h in hooks:
            h.remove()
    seen = max(seen, 1)
    table = []
    for ly in layers:
        row = {"name": ly.name, **stats.get(ly.name, {})}
        for key in ("synaptic_events", "neuron_updates", "spikes"):
            if key in row:
                row[f"{key}_per_sample"] = row.pop(key) / seen
        q = dict(ly.quantisation)
        row["quantisation"] = {k: v for k, v in q.items() if k != "nodes"}
        row["nodes"] = list(q.get("nodes", []))
        if ly.name in chip_counts and chip_counts[ly.name]:
            a = np.concatenate(chip_counts[ly.name]).ravel().astype(np.float64)
            b = np.concatenate(recorded[ly.name]).ravel().astype(np.float64)
            ok = a.std() > 0 and b.std() > 0 and a.size == b.size
            row["spike_count_correlation"] = float(np.corrcoef(a, b)[0, 1]) if ok else None
        table.append(row)
    return {
        "hardware": net.hardware,
        "num_samples": seen,
        "accuracy": correct / seen,
        "float_accuracy": correct_float / seen,
        "agreement": agree / seen,
        "energy_per_sample_pj": energy / seen,
        "latency_per_sample_s": latency / seen,
        "approximations": list(getattr(net, "approximations", [])),
        "layers": table,
    }
