"""Robustness sweep of an ``lsm`` experiment: accuracy against device non-idealities, one axis at
a time, with a readout refitted on the training split for every setting (the reservoir of every
setting is a different chip, or the same chip read differently, and its readout is retrained, as
on hardware).

``neuroflow lsm sweep CONFIG [--axis NAME=v1,v2,...] [--split test] [--out DIR]``

Default axes (every other model key stays at the config's value): ``read_noise`` 0-20%,
``stuck_off_rate`` and ``stuck_on_rate`` 0-10%, ``input_density`` (1 - the unformed share of the
input crossbar) and ``adc_bits``. The first row is the software twin (``weights: software``) of
the configured chip, the reference. Results: a text table, ``sweep.json`` and ``sweep.png``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from neuroflow.errors import ConfigError, InvalidArgumentError
from neuroflow.lsm.readout import fit_readout
from neuroflow.models import LSM, build_model, builder_parameters

DEFAULT_AXES: dict[str, list[Any]] = {
    "read_noise": [0.0, 0.02, 0.05, 0.1, 0.2],
    "stuck_off_rate": [0.0, 0.01, 0.02, 0.05, 0.1],
    "stuck_on_rate": [0.0, 0.01, 0.02, 0.05, 0.1],
    "input_density": [1.0, 0.8, 0.5, 0.3, 0.1],
    "adc_bits": [None, 8, 6, 4, 3, 2],
}


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """``"read_noise=0,0.1"`` -> ``("read_noise", [0.0, 0.1])``; values are YAML scalars
    (``null`` for None)."""
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise ConfigError(f"sweep axis must look like NAME=v1,v2,..., got {text!r}")
    return name.strip(), [yaml.safe_load(v) for v in values.split(",")]


@dataclass
class SplitInputs:
    """A split's crossbar inputs ``[T, B, D]`` (already cropped), labels ``[B]`` and ``digits
    [B]``: the digit an image of each sample's class shows, which ``neuroflow lsm zeroshot``
    pairs it with (the dataset's ``image_digits`` lookup, e.g. N-TIDIGITS' "oh" and "zero" ->
    0; the labels themselves for a dataset without one, such as N-MNIST)."""

    x: torch.Tensor
    y: torch.Tensor
    digits: torch.Tensor | None = None


def features_of(model: LSM, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """``model``'s readout features for prepared inputs ``x [T, B, D]``, in batches."""
    return torch.cat(
        [model.features_from_input(x[:, i : i + batch]) for i in range(0, x.shape[1], batch)]
    )


def accuracy_of(
    params: dict, inputs: dict, num_classes: int, input_shape, readout: str, split: str
) -> dict[str, float]:
    """Build the model with ``params``, fit ``readout`` on train features, score on ``split``."""
    model = build_model("lsm", params, num_classes, input_shape)
    f_train = features_of(model, inputs["train"].x)
    f_eval = features_of(model, inputs[split].x)
    fitted = fit_readout(readout, f_train, inputs["train"].y, num_classes)
    rate = None
    if model.features_kind != "input":
        rate = float(
            model.spike_features(model.reservoir_from_input(inputs[split].x[:, :128])).mean()
        )
    return {"accuracy": fitted.accuracy(f_eval, inputs[split].y), "firing_rate": rate}


def run_sweep(
    cfg, axes: dict[str, list[Any]] | None = None, readout: str = "logistic", split: str = "test"
) -> list[dict[str, Any]]:
    """Rows ``{axis, value, accuracy, firing_rate}``; the first row is the software twin."""
    if cfg.model.name != "lsm":
        raise ConfigError(f"lsm sweep needs a config with model.name: lsm, got {cfg.model.name!r}")
    if split not in ("train", "val", "test"):
        raise InvalidArgumentError(f"split must be train, val or test, got {split!r}")
    axes = DEFAULT_AXES if axes is None else axes
    params = dict(cfg.model.params)
    known = set(builder_parameters(LSM))
    for name in axes:
        if name not in known:
            raise ConfigError(
                f"sweep axis {name!r} is not an lsm model parameter (known: {sorted(known)})"
            )
    inputs, num_classes, base_shape = load_inputs(cfg, ("train", split))
    rows = []
    software = accuracy_of(
        {**params, "weights": "software"}, inputs, num_classes, base_shape, readout, split
    )
    rows.append({"axis": "weights", "value": "software", **software})
    rram = accuracy_of(
        {**params, "weights": "rram"}, inputs, num_classes, base_shape, readout, split
    )
    rows.append({"axis": "weights", "value": "rram", **rram})
    for name, values in axes.items():
        for value in values:
            result = accuracy_of(
                {**params, "weights": "rram", name: value},
                inputs,
                num_classes,
                base_shape,
                readout,
                split,
            )
            rows.append({"axis": name, "value": value, **result})
    return rows


def load_inputs(cfg, splits=("train", "test"), max_samples: int | None = None):
    """Prepared crossbar inputs of ``splits`` (crop, channels, binarisation of the configured
    lsm): ``({split: SplitInputs}, num_classes, input_shape)``; at most ``max_samples`` each."""
    from neuroflow.data import build_datasets

    if cfg.model.name != "lsm":
        raise ConfigError(f"lsm tools need a config with model.name: lsm, got {cfg.model.name!r}")
    datasets = build_datasets(cfg.data, cfg.seed)
    train = datasets["train"]
    input_shape = tuple(int(s) for s in train.input_shape[-3:])
    num_classes = int(train.num_classes)
    params = {**cfg.model.params, "neurons": 1, "weights": "software"}
    base = build_model("lsm", params, num_classes, input_shape)
    out = {}
    for name in dict.fromkeys(splits):
        ds = datasets[name]
        count = len(ds) if max_samples is None else min(len(ds), max_samples)
        xs, ys = [], []
        for start in range(0, count, 256):
            items = [ds[i] for i in range(start, min(count, start + 256))]
            frames = torch.stack([torch.as_tensor(f) for f, _ in items], 1)
            xs.append(base.prepare_input(frames))
            ys.extend(int(label) for _, label in items)
        labels = torch.tensor(ys, dtype=torch.long)
        image_digits = getattr(ds, "image_digits", None)
        digits = labels if image_digits is None else torch.tensor(image_digits)[labels]
        out[name] = SplitInputs(torch.cat(xs, 1), labels, digits)
    return out, num_classes, input_shape


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'axis':<16}{'value':>10}{'accuracy':>10}{'rate':>9}", "-" * 45]
    for r in rows:
        rate = "" if r["firing_rate"] is None else f"{r['firing_rate']:.4f}"
        lines.append(f"{r['axis']:<16}{str(r['value']):>10}{100 * r['accuracy']:>9.1f}%{rate:>9}")
    return "\n".join(lines)


def plot_sweep(rows: list[dict[str, Any]], path: str | Path) -> None:
    """One panel per axis: accuracy against the axis value, the software twin as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    software = next(
        r["accuracy"] for r in rows if r["axis"] == "weights" and r["value"] == "software"
    )
    axes_names = [a for a in dict.fromkeys(r["axis"] for r in rows) if a != "weights"]
    fig, panels = plt.subplots(
        1, max(1, len(axes_names)), figsize=(3.2 * max(1, len(axes_names)), 3), squeeze=False
    )
    for panel, name in zip(panels[0], axes_names):
        pts = [r for r in rows if r["axis"] == name]
        labels = [str(r["value"]) for r in pts]
        panel.plot(range(len(pts)), [100 * r["accuracy"] for r in pts], "o-", label="rram")
        panel.axhline(100 * software, color="grey", ls="--", label="software")
        panel.set_xticks(range(len(pts)), labels)
        panel.set_xlabel(name)
        panel.set_ylabel("accuracy (%)")
    panels[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(rows: list[dict[str, Any]], out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "sweep.json.tmp"
    tmp.write_text(
        json.dumps(rows, indent=2, default=lambda v: None if v is None else str(v)) + "\n"
    )
    tmp.replace(out / "sweep.json")
    try:
        plot_sweep(rows, out / "sweep.png")
    except ImportError:
        pass
    return out
