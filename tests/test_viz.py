"""neuroflow.viz: each plot is checked on its Figure (panels, axis labels and units, the plotted
values against the input) and on the PNG it writes; errors name the path or argument."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from neuroflow import viz  # noqa: E402
from neuroflow.errors import InputShapeError, InvalidArgumentError, NeuroflowError  # noqa: E402
from neuroflow.train.metrics_log import MetricsLogger  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def assert_png(path: Path) -> None:
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000
    # no temporary file left beside it (atomic write: temp file + rename)
    assert [p.name for p in Path(path).parent.iterdir() if ".tmp-" in p.name] == []


def rendered_ticks(axis) -> list[float]:
    """The tick values matplotlib draws, after a draw (so locators have run)."""
    axis.figure.canvas.draw()
    lo, hi = sorted(axis.get_view_interval())
    return [t for t in axis.get_majorticklocs() if lo <= t <= hi]


# ------------------------------------------------------------------------- training curves


def run_folder(tmp_path: Path, name: str, epochs: int, with_val: bool = True) -> Path:
    """A run folder written by the trainer's own MetricsLogger (the real metrics.jsonl/csv)."""
    out = tmp_path / name
    logger = MetricsLogger(out, tensorboard=False)
    for e in range(1, epochs + 1):
        record = {"epoch": e, "train_loss": 2.0 / e, "train_accuracy": 1 - 0.5 / e, "lr": 0.01}
        if with_val:
            record.update(val_loss=2.2 / e, val_accuracy=1 - 0.6 / e, val_firing_rate=0.05)
        logger.log(record)
    logger.close()
    return out


def test_training_curves_two_panels_one_line_per_run_and_split(tmp_path):
    a = viz.read_metrics(run_folder(tmp_path, "a", 5))
    b = viz.read_metrics(run_folder(tmp_path, "b", 3, with_val=False))
    fig = viz.training_curves_figure({"a": a, "b": b})
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_xlabel() == acc_ax.get_xlabel() == "epoch"
    assert "loss" in loss_ax.get_ylabel() and acc_ax.get_ylabel() == "accuracy (%)"
    # run a: train and val; run b: train only; val_firing_rate is not a split
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert labels == ["a train", "a val", "b train"]
    train_a = acc_ax.get_lines()[0]
    assert list(train_a.get_xdata()) == [1, 2, 3, 4, 5]
    # accuracies are drawn in percent: 1 - 0.5 / e
    np.testing.assert_allclose(train_a.get_ydata(), [100 * (1 - 0.5 / e) for e in range(1, 6)])
    assert acc_ax.get_ylim() == (0, 100)
    assert all(float(t).is_integer() for t in rendered_ticks(loss_ax.xaxis))
    path = viz.plot_training_curves({"a": a}, tmp_path / "curves.png")
    assert path == tmp_path / "curves.png"
    assert_png(path)


def test_metrics_csv_and_test_point_from_summary(tmp_path):
    run = run_folder(tmp_path, "run", 4)
    (run / "metrics.jsonl").unlink()  # only the csv left: values come back as strings
    (run / "summary.json").write_text(
        json.dumps({"best_epoch": 3, "test_accuracy": 0.9, "test_loss": 0.4})
    )
    rows = viz.read_metrics(run)
    assert rows[-1] == {"epoch": 3, "test_loss": 0.4, "test_accuracy": 0.9}
    fig = viz.training_curves_figure({"run": rows})
    acc = {line.get_label(): line for line in fig.axes[1].get_lines()}
    assert set(acc) == {"train", "val", "test (best checkpoint)"}
    np.testing.assert_allclose(acc["val"].get_ydata(), [100 * (1 - 0.6 / e) for e in range(1, 5)])
    assert list(acc["test (best checkpoint)"].get_xdata()) == [3.0]


def test_plot_runs_and_errors(tmp_path):
    a, b = run_folder(tmp_path, "a", 2), run_folder(tmp_path, "b", 2)
    assert viz.plot_runs([a]) == a / "curves.png"
    assert_png(a / "curves.png")
    assert_png(viz.plot_runs([a, b], tmp_path / "both.png"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(viz.MetricsNotFoundError, match="empty: no metrics.jsonl or metrics.csv"):
        viz.plot_runs([empty])
    with pytest.raises(viz.MetricsNotFoundError, match="no such run folder"):
        viz.read_metrics(tmp_path / "missing")
    with pytest.raises(viz.PlotError, match="nowhere.*does not exist"):
        viz.plot_runs([a], tmp_path / "nowhere" / "c.png")
    with pytest.raises(InvalidArgumentError, match="no '<split>_loss'"):
        viz.training_curves_figure({"x": [{"epoch": 1, "lr": 0.1}]})


def test_cli_plot(tmp_path):
    from neuroflow.cli import main

    run = run_folder(tmp_path, "run", 2)
    assert main(["plot", str(run), "-o", str(tmp_path / "c.png")]) == 0
    assert_png(tmp_path / "c.png")
    assert main(["plot", str(tmp_path)]) == 2  # no metrics: one error line, exit status 2


# --------------------------------------------------------------------------------- energy


def test_energy_unit_thresholds():
    # the same thresholds as the report's text (1e3 pJ = 1 nJ, 1e6 pJ = 1 µJ, 1e9 pJ = 1 mJ)
    assert viz.energy_unit(999.0) == ("pJ", 1.0)
    assert viz.energy_unit(1e3) == ("nJ", 1e3)
    assert viz.energy_unit(2.5e7) == ("µJ", 1e6)
    assert viz.energy_unit(3e9) == ("mJ", 1e9)
    assert viz.energy_unit(5.0, "uJ") == ("µJ", 1e6)
    with pytest.raises(InvalidArgumentError, match="unit='kJ'"):
        viz.energy_unit(1.0, "kJ")


def test_energy_37_layers_horizontal_in_the_titled_unit(tmp_path):
    # 37 layers of (i + 1) µJ SNN and 2 (i + 1) µJ ANN: totals 703 and 1406 µJ = 1.406 mJ,
    # so the chart is in mJ and layer i's bars are (i + 1) / 1000 and 2 (i + 1) / 1000 mJ long
    layers = [
        {"name": f"block{i}.conv", "energy_pj": (i + 1) * 1e6, "ann_energy_pj": 2 * (i + 1) * 1e6}
        for i in range(37)
    ]
    fig = viz.energy_breakdown_figure(layers)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "energy per sample (mJ)" and ax.get_ylabel() == "layer"
    assert "mJ" in ax.get_title() and "1.41 mJ" in ax.get_title()
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"block{i}.conv" for i in range(37)]
    bars = ax.patches
    assert len(bars) == 74
    heights = {round(b.get_height(), 6) for b in bars}
    assert heights == {0.4}  # horizontal bars: constant height, the value is the width
    np.testing.assert_allclose(
        [b.get_width() for b in bars[:37]], [(i + 1) / 1e3 for i in range(37)]
    )
    np.testing.assert_allclose(
        [b.get_width() for b in bars[37:]], [2 * (i + 1) / 1e3 for i in range(37)]
    )
    # first layer on top, and the tick labels are plain numbers in mJ (no offset, no 1eN)
    assert ax.get_ylim()[0] > ax.get_ylim()[1]
    ticks = rendered_ticks(ax.xaxis)
    assert 0 < max(ticks) <= 0.08 and ax.xaxis.get_offset_text().get_text() == ""
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["SNN (total 0.703 mJ)", "ANN equivalent (total 1.41 mJ)"]
    # legible: at least 0.2 inch per layer row
    assert fig.get_figheight() / 37 >= 0.2
    assert_png(viz.plot_energy_breakdown(layers, "37 layers", tmp_path / "energy.png"))


def test_energy_few_layers_vertical_and_report_layout(tmp_path):
    # the case: about 1e7 pJ per layer under a µJ title must read in µJ, not pJ x 1e7
    layers = {"conv1": (1.2e7, 3.0e7), "lif1": (0.0, 0.0), "fc": (4.0e6, 5.0e6)}
    fig = viz.energy_breakdown_figure(layers, "cmos45nm (fp32)")
    (ax,) = fig.axes
    assert ax.get_ylabel() == "energy per sample (µJ)" and ax.get_xlabel() == "layer"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["conv1", "lif1", "fc"]
    np.testing.assert_allclose([b.get_height() for b in ax.patches], [12, 0, 4, 30, 0, 5])
    ticks = rendered_ticks(ax.yaxis)
    assert max(ticks) >= 25 and ax.yaxis.get_offset_text().get_text() == ""
    # objects with attributes (EnergyReport.layers) and SNN-only dicts work too
    from types import SimpleNamespace

    only_snn = [SimpleNamespace(name="a", energy_pj=500.0, ann_energy_pj=None)]
    (ax,) = viz.energy_breakdown_figure(only_snn, unit="pJ").axes
    assert len(ax.patches) == 1 and ax.get_ylabel() == "energy per sample (pJ)"
    with pytest.raises(InvalidArgumentError, match=r"layers\[0\] \('x'\)"):
        viz.energy_breakdown_figure([{"name": "x", "energy_pj": "lots"}])
    with pytest.raises(viz.PlotError, match="missing"):
        viz.plot_energy_breakdown(layers, None, tmp_path / "missing" / "e.png")


def test_energy_of_a_real_report(tmp_path):
    """The rows of a real EnergyReport (as `neuroflow energy --json` writes them) plot as-is."""
    from neuroflow.energy import estimate_energy
    from neuroflow.models.scnn import SCNN

    torch.manual_seed(0)
    model = SCNN(num_classes=10, input_shape=(2, 16, 16), channels=[4, 8])
    report = estimate_energy(model, [torch.poisson(torch.full((4, 2, 2, 16, 16), 0.3))])
    rows = report.to_dict()["layers"]
    fig = viz.energy_breakdown_figure(rows)
    (ax,) = fig.axes
    unit, scale = viz.energy_unit(max(report.total_energy_pj, report.ann_energy_pj))
    assert ax.get_ylabel() == f"energy per sample ({unit})"
    snn_bars = ax.patches[: len(rows)]
    np.testing.assert_allclose(
        [b.get_height() for b in snn_bars], [r["energy_pj"] / scale for r in rows], rtol=1e-6
    )


# --------------------------------------------------------------------------------- spikes


def test_raster_marks_every_spike_of_the_chosen_sample(tmp_path):
    g = torch.Generator().manual_seed(0)
    spikes = (torch.rand(12, 3, 4, 5, generator=g) < 0.2).float()  # [T, B, C, N]
    fig, ax = viz.raster(spikes, sample=1, path=tmp_path / "raster.png")
    (points,) = ax.collections
    expected = torch.nonzero(spikes[:, 1].reshape(12, 20)).numpy()
    got = np.asarray(points.get_offsets())
    np.testing.assert_array_equal(got[np.lexsort(got.T[::-1])], expected)
    assert ax.get_xlabel() == "time step" and ax.get_ylabel() == "neuron index"
    assert_png(tmp_path / "raster.png")
    with pytest.raises(InputShapeError, match=r"\[T, N\]"):
        viz.raster(torch.zeros(5))
    with pytest.raises(InvalidArgumentError, match="sample=3"):
        viz.raster(spikes, sample=3)


def test_integer_spikes_get_a_count_colour_bar():
    spikes = torch.tensor([[0, 2], [1, 0], [3, 1]], dtype=torch.float32)
    fig, ax = viz.raster(spikes)
    assert len(fig.axes) == 2 and "integer spikes" in fig.axes[1].get_ylabel()
    np.testing.assert_array_equal(np.sort(ax.collections[0].get_array()), [1, 1, 2, 3])


def test_firing_rates_lines_and_heatmap(tmp_path):
    g = torch.Generator().manual_seed(1)
    layers = {
        f"lif{i}": (torch.rand(6, 4, 8, generator=g) < 0.1 * (i + 1)).float() for i in range(3)
    }
    fig, ax = viz.firing_rates(layers, path=tmp_path / "rates.png")
    assert [line.get_label() for line in ax.get_lines()] == ["lif0", "lif1", "lif2"]
    for line, s in zip(ax.get_lines(), layers.values(), strict=True):
        # rate at step t = spikes over the batch's neurons at t (hand computation)
        np.testing.assert_allclose(line.get_ydata(), s.mean((1, 2)).numpy())
    assert ax.get_xlabel() == "time step" and ax.get_ylabel() == viz.spikes.RATE_LABEL
    assert_png(tmp_path / "rates.png")
    many = {f"layer{i}": torch.ones(3, 2, 4) * (i % 2) for i in range(12)}
    fig, ax = viz.firing_rates(many)  # more than 10 layers: a heatmap, one row per layer
    (image,) = ax.get_images()
    np.testing.assert_array_equal(image.get_array(), [[i % 2] * 3 for i in range(12)])
    assert [t.get_text() for t in ax.get_yticklabels()] == list(many)
    assert fig.axes[1].get_ylabel() == viz.spikes.RATE_LABEL  # the colour bar
    with pytest.raises(InputShapeError, match="different numbers of steps"):
        viz.firing_rates({"a": torch.zeros(3, 1, 2), "b": torch.zeros(4, 1, 2)})


def test_membrane_trace_of_chosen_neurons(tmp_path):
    v = torch.arange(24, dtype=torch.float32).reshape(4, 2, 3) / 10  # [T, 2, 3]
    s = (v > 1.5).float()
    fig, ax = viz.membrane_trace(v, [(1, 2), 0], threshold=1.5, spikes=s, path=tmp_path / "v.png")
    traces = [line for line in ax.get_lines() if line.get_label().startswith("neuron")]
    assert [line.get_label() for line in traces] == ["neuron (1, 2)", "neuron 0"]
    np.testing.assert_allclose(traces[0].get_ydata(), v[:, 1, 2].numpy())
    np.testing.assert_allclose(traces[1].get_ydata(), v[:, 0, 0].numpy())
    # neuron (1, 2) holds 0.5, 1.1, 1.7, 2.3: fired (circled) at the last two steps
    circles = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert list(circles[0].get_xdata()) == [2, 3]
    assert any(line.get_label() == "threshold 1.5" for line in ax.get_lines())
    assert "membrane potential" in ax.get_ylabel() and ax.get_xlabel() == "time step"
    assert_png(tmp_path / "v.png")
    with pytest.raises(InvalidArgumentError, match="outside"):
        viz.membrane_trace(v, [6])


# ------------------------------------------------------------------ events and point clouds


def test_event_frames_one_panel_per_step(tmp_path):
    frames = torch.zeros(10, 2, 2, 6, 5)  # [T, B, polarity, H, W]
    frames[3, 1, 1, 2, 4] = 2  # two ON events
    frames[3, 1, 0, 0, 0] = 1  # one OFF event
    fig, axes = viz.event_frames(frames, sample=1, max_frames=4, path=tmp_path / "frames.png")
    assert len(axes) == 4 and len(fig.axes) == 5  # four panels and the colour bar
    assert [ax.get_title() for ax in axes] == ["t = 0", "t = 3", "t = 6", "t = 9"]
    image = axes[1].get_images()[0].get_array()
    assert image[2, 4] == 2 and image[0, 0] == -1 and np.abs(image).sum() == 3  # ON - OFF
    assert "ON" in fig.axes[-1].get_ylabel()
    assert_png(tmp_path / "frames.png")
    with pytest.raises(InputShapeError, match=r"\[T, 2, H, W\]"):
        viz.event_frames(torch.zeros(4, 3, 5, 5))


def test_point_cloud_3d_with_colours(tmp_path):
    g = torch.Generator().manual_seed(0)
    xyz = torch.randn(100, 6, generator=g)  # xyz + normals: the first three columns are drawn
    fig, ax = viz.point_cloud(xyz, xyz[:, 2], colour_label="z", path=tmp_path / "cloud.png")
    assert ax.name == "3d"
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == ("x", "y", "z")
    (points,) = ax.collections
    np.testing.assert_allclose(points._offsets3d[2], xyz[:, 2].numpy(), rtol=1e-6)
    assert fig.axes[-1].get_xlabel() == "z"  # the colour bar, below the plot
    assert_png(tmp_path / "cloud.png")
    with pytest.raises(InputShapeError, match="colours"):
        viz.point_cloud(xyz, torch.zeros(5))
    with pytest.raises(InputShapeError, match=r"\[N, 3\]"):
        viz.point_cloud(torch.zeros(4, 2))


# ------------------------------------------------------------------------- package rules


def test_viz_imports_only_errors_from_neuroflow():
    for path in sorted((REPO / "neuroflow" / "viz").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("neuroflow"):
                    assert name == "neuroflow.errors" or name.startswith("neuroflow.viz"), (
                        path,
                        name,
                    )


def test_errors_are_neuroflow_errors():
    assert issubclass(viz.PlotError, NeuroflowError) and issubclass(
        viz.MetricsNotFoundError, NeuroflowError
    )


def test_agg_backend_without_a_display(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")
    }
    env["PYTHONPATH"] = str(REPO)
    code = (
        "import matplotlib\n"
        "from neuroflow import viz\n"
        f"viz.raster([[1, 0], [0, 1], [1, 1]], path={str(tmp_path / 'r.png')!r})\n"
        "print(matplotlib.get_backend())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().lower() == "agg"
    assert_png(tmp_path / "r.png")
