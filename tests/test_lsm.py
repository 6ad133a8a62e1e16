"""The lsm reservoir: compiled kernel vs the plain torch loop, the model's parts, and a training
run through the ordinary CLI."""

from __future__ import annotations

import json

import pytest
import torch

from neuroflow.cli import main
from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.models import build
from neuroflow.rram import reservoir_step, run_reservoir, run_reservoir_torch


def _quarter_weights(n: int, density: float, seed: int) -> torch.Tensor:
    """Recurrent weights that are multiples of 1/4: every partial sum is exact in float64, so any
    summation order gives the same bits."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(-8, 9, (n, n), generator=g).double() * 0.25
    return w * (torch.rand(n, n, generator=g) < density)


def test_one_step_by_hand():
    # two neurons; neuron 0 spiked last step and excites neuron 1 by 2.0
    w = torch.tensor([[0.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    v = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    s_prev = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    u = torch.tensor([[0.5, 0.25]], dtype=torch.float64)
    s, v_new = reservoir_step(v, s_prev, u, w, decay=0.5, threshold=4.0)
    # neuron 0: 0.5 * 1 + 0.5 = 1.0 (no spike); neuron 1: 0.5 * 3 + 0.25 + 2 = 3.75 (no spike)
    assert s.tolist() == [[0.0, 0.0]] and v_new.tolist() == [[1.0, 3.75]]
    s, v_new = reservoir_step(v, s_prev, u, w, decay=0.5, threshold=3.75)
    assert s.tolist() == [[0.0, 1.0]] and v_new.tolist() == [[1.0, 0.0]]  # H(0) = 1, reset to 0


@pytest.mark.parametrize("with_noise", [False, True])
@pytest.mark.parametrize("with_adc", [False, True])
def test_compiled_kernel_equals_torch_loop(with_noise, with_adc):
    g = torch.Generator().manual_seed(1)
    steps, batch, n = 40, 5, 30
    u = torch.randint(0, 12, (steps, batch, n), generator=g).double() * 0.25
    w = _quarter_weights(n, 0.3, 2)
    w_var = w.abs() * 0.25 if with_noise else None
    eps = torch.randn(steps, batch, n, generator=g, dtype=torch.float64) if with_noise else None
    lsb = torch.full((n,), 0.5, dtype=torch.float64) if with_adc else None
    ref = run_reservoir_torch(u, w, 0.9, 5.0, w_var, eps, lsb, qmax=7)
    out = run_reservoir(u, w, 0.9, 5.0, w_var, eps, lsb, qmax=7)
    assert ref.sum() > 0 and ref.mean() < 0.9  # neither silent nor saturated
    assert torch.equal(ref, out)


def test_kernel_float32_agrees_with_float64_loop_on_exact_values():
    g = torch.Generator().manual_seed(3)
    u = torch.randint(0, 12, (30, 4, 20), generator=g).double() * 0.25
    w = _quarter_weights(20, 0.3, 4)
    # decay 0.5 keeps every membrane value a short binary fraction: exact in float32 too
    ref = run_reservoir_torch(u, w, 0.5, 3.0)
    assert torch.equal(run_reservoir(u.float(), w.float(), 0.5, 3.0).double(), ref)


def test_reservoir_rejects_bad_shapes():
    with pytest.raises(InputShapeError, match=r"\[N, N\]"):
        run_reservoir(torch.zeros(3, 2, 5), torch.zeros(4, 4), 0.9, 1.0)
    with pytest.raises(InvalidArgumentError, match="w_var and eps"):
        run_reservoir(torch.zeros(3, 2, 5), torch.zeros(5, 5), 0.9, 1.0, w_var=torch.zeros(5, 5))


# ---------------------------------------------------------------------------------- model
def _frames(steps=20, batch=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(steps, batch, 2, 34, 34, generator=g) < 0.08).float()


def test_model_shapes_and_frozen_reservoir():
    m = build("lsm", num_classes=10, input_shape=(2, 34, 34), neurons=50, threshold=2.0)
    y = m(_frames())
    assert y.shape == (1, 6, 10)
    trainable = {name for name, p in m.named_parameters() if p.requires_grad}
    assert trainable == {"readout.weight", "readout.bias"}
    assert m.w_in.shape == (256, 50) and m.w_rec.shape == (50, 50)
    assert torch.all(torch.diagonal(m.w_rec) == 0)
    # rows of inhibitory neurons (the last 20%) are <= 0, the others >= 0 (Dale's law)
    assert torch.all(m.w_rec[40:] <= 0) and torch.all(m.w_rec[:40] >= 0)


def test_paper_crop_keeps_the_centre():
    m = build("lsm", num_classes=10, input_shape=(2, 34, 34), neurons=8, features="input")
    x = torch.zeros(1, 1, 2, 34, 34)
    x[0, 0, 0, 9, 9] = 1.0  # first pixel of the 16x16 centre window (34 - 16) / 2 = 9
    x[0, 0, 0, 8, 8] = 1.0  # just outside
    x[0, 0, 1, 9, 9] = 1.0  # the other polarity (channels=[0] keeps only channel 0)
    flat = m.prepare_input(x)
    assert flat.shape == (1, 1, 256) and flat.sum() == 1 and flat[0, 0, 0] == 1


def test_software_twin_shares_the_chip_and_rram_differs_only_by_non_idealities():
    kw = dict(num_classes=10, input_shape=(2, 34, 34), neurons=40, threshold=2.0)
    soft = build("lsm", weights="software", **kw)
    rram = build("lsm", weights="rram", **kw)
    assert torch.equal(soft.w_in, rram.w_in) and torch.equal(soft.w_rec, rram.w_rec)
    x = _frames()
    s_soft, s_rram = soft.reservoir_spikes(x), rram.reservoir_spikes(x)
    assert torch.equal(s_soft, soft.reservoir_spikes(x))  # software: deterministic
    assert not torch.equal(s_soft, s_rram)  # 2% read noise changes some spikes...
    assert (s_soft != s_rram).double().mean() < 0.2  # ...not most of them
    dense = dict(kw, recurrent_density=1.0)
    faulty = build("lsm", weights="rram", stuck_off_rate=0.5, **dense)
    fault_free = build("lsm", weights="rram", **dense)
    # half the cells stuck off: ~50% zero weights against only the diagonal (1 / 40)
    assert (faulty.w_rec == 0).double().mean() > (fault_free.w_rec == 0).double().mean() + 0.4


def test_torch_backend_equals_compiled_backend_in_the_model():
    kw = dict(
        num_classes=10, input_shape=(2, 34, 34), neurons=40, threshold=2.0, weights="software"
    )
    x = _frames()
    a = build("lsm", backend="torch", **kw).reservoir_spikes(x)
    b = build("lsm", backend="numba", **kw).reservoir_spikes(x)
    # float32 sums in another order may flip a spike at exact threshold ties: allow a handful
    assert (a != b).double().mean() < 0.01


def test_time_bins_and_feature_kinds():
    kw = dict(num_classes=10, input_shape=(2, 34, 34), neurons=30, threshold=2.0)
    x = _frames()
    assert build("lsm", time_bins=5, **kw).features(x).shape == (6, 150)
    assert build("lsm", features="input", **kw).features(x).shape == (6, 256)
    assert build("lsm", features="input", time_bins=2, **kw).features(x).shape == (6, 512)
    assert build("lsm", features="both", readout="mlp", **kw)(x).shape == (1, 6, 10)


def test_model_bad_input_names_the_problem():
    m = build("lsm", num_classes=10, input_shape=(2, 34, 34), neurons=8)
    with pytest.raises(InputShapeError, match="lsm expects"):
        m(torch.zeros(5, 2, 2, 16, 16))
    with pytest.raises(InvalidArgumentError, match="crop"):
        build("lsm", num_classes=10, input_shape=(2, 8, 8), crop=16)
    with pytest.raises(InvalidArgumentError, match="stuck_on_rate"):
        build("lsm", num_classes=10, input_shape=(2, 34, 34), stuck_on_rate=1.5)
    with pytest.raises(InvalidArgumentError, match="recurrent_density"):
        build("lsm", num_classes=10, input_shape=(2, 34, 34), recurrent_density=-0.1)


def test_train_and_eval_through_the_cli(tiny_config, capsys):
    model = {"name": "lsm", "channels": [0], "neurons": 40, "threshold": 2.0, "readout": "linear"}
    raw, path = tiny_config(
        name="lsm",
        model=model,
        data={"time_steps": 10},
        loop={"epochs": 1, "progress": False, "tensorboard": False},
    )
    assert main(["train", str(path)]) == 0
    capsys.readouterr()
    assert main(["eval", str(path), "--checkpoint", f"{raw['output_dir']}/best.pt", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.0 <= result["accuracy"] <= 1.0
