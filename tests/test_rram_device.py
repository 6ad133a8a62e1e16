"""The RRAM cell model and crossbar against hand computation and simple statistics."""

from __future__ import annotations

import math

import pytest
import torch

from neuroflow.errors import InputShapeError, InvalidArgumentError, NeuroflowError
from neuroflow.rram import (
    Crossbar,
    DeviceConfig,
    adc_quantise,
    drift,
    make_generator,
    program,
    program_crossbar,
    quantise,
    read,
)


def test_forming_distribution_matches_its_parameters():
    # 200,000 draws: the sample mean / std of N(14.25, 2.46) are within ~0.01 / 0.008 (3 sigma)
    g = program((400, 500), DeviceConfig(), make_generator(0))
    assert abs(float(g.mean()) - 14.25) < 0.03
    assert abs(float(g.std()) - 2.46) < 0.03
    assert float(g.min()) >= 0.0


@pytest.mark.parametrize("distribution", ["lognormal", "uniform"])
def test_other_distributions_keep_mean_and_std(distribution):
    g = program((400, 500), DeviceConfig(distribution=distribution), make_generator(1))
    assert abs(float(g.mean()) - 14.25) < 0.05
    assert abs(float(g.std()) - 2.46) < 0.05
    assert float(g.min()) >= 0.0


def test_same_seed_same_chip_and_unformed_share():
    cfg = DeviceConfig(unformed_fraction=0.3, unformed_us=0.0)
    a = program((300, 300), cfg, make_generator(7))
    b = program((300, 300), cfg, make_generator(7))
    assert torch.equal(a, b)
    share = float((a == 0).double().mean())
    # binomial share of 90,000 cells: std 0.0015
    assert abs(share - 0.3) < 0.006


def test_faults_set_stuck_cells():
    cfg = DeviceConfig(stuck_on_rate=0.05, stuck_off_rate=0.1, g_max_us=30.0)
    g = program((300, 300), cfg, make_generator(3))
    assert abs(float((g == 30.0).double().mean()) - 0.05) < 0.005
    assert abs(float((g == 0.0).double().mean()) - 0.1) < 0.006


def test_quantise_by_hand():
    # 5 levels in [0, 20] uS: 0, 5, 10, 15, 20
    g = torch.tensor([0.0, 2.4, 2.6, 12.4, 17.6, 25.0], dtype=torch.float64)
    assert quantise(g, 5, 20.0).tolist() == [0.0, 0.0, 5.0, 10.0, 20.0, 20.0]


def test_quantised_chip_takes_only_levels():
    cfg = DeviceConfig(levels=8, g_max_us=28.0)
    g = program((50, 50), cfg, make_generator(0))
    assert set(torch.unique(g).tolist()) <= {4.0 * k for k in range(8)}


def test_drift_power_law_by_hand():
    cfg = DeviceConfig(drift_nu=0.1, drift_t0_s=1.0)
    g = torch.tensor([10.0], dtype=torch.float64)
    assert float(drift(g, 1000.0, cfg)) == pytest.approx(10.0 * 1000.0**-0.1)
    assert float(drift(g, 0.5, cfg)) == 10.0  # before t0: unchanged


def test_read_noise_is_multiplicative_and_redrawn():
    g = torch.full((1000, 100), 10.0, dtype=torch.float64)
    gen = make_generator(0)
    r1, r2 = read(g, 0.02, gen), read(g, 0.02, gen)
    assert not torch.equal(r1, r2)
    # relative std 2% -> std 0.2 uS on 10 uS cells
    assert float((r1 / g - 1).std()) == pytest.approx(0.02, rel=0.03)
    assert torch.equal(read(g, 0.0, gen), g)


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"mean_us": -1.0}, "mean_us"),
        ({"mean_us": 1.0, "std_us": 2.0}, "negative conductance"),
        ({"distribution": "uniform", "mean_us": 1.0, "std_us": 1.0}, "uniform"),
        ({"std_us": -0.1}, "std_us"),
        ({"stuck_on_rate": 1.5}, "stuck_on_rate"),
        ({"stuck_off_rate": -0.1}, "stuck_off_rate"),
        ({"unformed_fraction": 2.0}, "unformed_fraction"),
        ({"read_noise": -0.01}, "read_noise"),
        ({"levels": 1}, "levels"),
        ({"distribution": "cauchy"}, "distribution"),
    ],
)
def test_bad_device_parameters_name_the_parameter(bad, name):
    with pytest.raises(NeuroflowError, match=name):
        DeviceConfig(**bad)


# ------------------------------------------------------------------------------ crossbar
def _small_crossbar(**options) -> Crossbar:
    g_pos = torch.tensor([[3.0, 1.0], [2.0, 4.0], [0.0, 5.0]], dtype=torch.float64)
    g_neg = torch.tensor([[1.0, 1.0], [5.0, 0.0], [2.0, 1.0]], dtype=torch.float64)
    return Crossbar(g_pos, g_neg, read_noise=0.0, **options)


def test_ideal_bit_serial_mvm_equals_hand_product():
    cb = _small_crossbar(input_bits=2)
    # W = G+ - G- = [[2, 0], [-3, 4], [-2, 4]]; x = [3, 1, 2]:
    # y0 = 3*2 + 1*(-3) + 2*(-2) = -1;  y1 = 0 + 4 + 8 = 12
    y = cb.mvm(torch.tensor([[3.0, 1.0, 2.0]], dtype=torch.float64))
    assert y.tolist() == [[-1.0, 12.0]]
    assert cb.reads == 2  # one read per input bit


def test_adc_bit_serial_by_hand():
    # 3-bit ADC, full scale 8: lsb = 8 / 4 = 2, codes in [-4, 3] (values -8 .. 6)
    cb = _small_crossbar(input_bits=2, adc_bits=3, adc_full_scale=8.0)
    # x = [3, 1, 2]: bit 0 = [1, 1, 0] -> I = [2 - 3, 0 + 4] = [-1, 4] -> ADC [0, 4]
    #   (round(-1 / 2) = round(-0.5) = -0: ties to even)
    #                bit 1 = [1, 0, 1] -> I = [2 - 2, 0 + 4] = [0, 4]   -> ADC [0, 4]
    # y = 1 * [0, 4] + 2 * [0, 4] = [0, 12]
    y = cb.mvm(torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64))
    assert y.tolist() == [0.0, 12.0]
    assert adc_quantise(torch.tensor([100.0, -100.0]), 3, 8.0).tolist() == [6.0, -8.0]


def test_offset_scheme_by_hand():
    g = torch.tensor([[10.0, 14.0], [18.0, 14.0]], dtype=torch.float64)
    cb = Crossbar(g, scheme="offset", offset_us=14.0, read_noise=0.0, input_bits=1)
    # W = G - 14 = [[-4, 0], [4, 0]]; x = [1, 1] -> [0, 0]; x = [0, 1] -> [4, 0]
    assert cb.mvm(torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)).tolist() == [
        [0.0, 0.0],
        [4.0, 0.0],
    ]


def test_column_noise_has_the_cell_noise_distribution():
    # The column form draws sum_i x_i G_ij (1 + s eps_ij) as mean + s sqrt(sum x^2 G^2) eps_j:
    # compare both forms' sample mean and std over many reads of one input.
    gen = make_generator(0)
    cb_col = program_crossbar(16, 3, DeviceConfig(read_noise=0.05), gen, input_bits=1)
    cb_cell = Crossbar(cb_col.g_pos, cb_col.g_neg, read_noise=0.05, input_bits=1, noise="cell")
    x = torch.ones(2000, 16, dtype=torch.float64)
    col, cell = cb_col.mvm(x, gen), cb_cell.mvm(x, gen)
    expected_std = 0.05 * torch.sqrt((cb_col.g_pos**2 + cb_col.g_neg**2).sum(0))
    ideal = cb_col.weights().sum(0)
    for y in (col, cell):
        assert torch.allclose(
            y.mean(0), ideal, atol=float(4 * expected_std.max() / math.sqrt(2000))
        )
        assert torch.allclose(y.std(0), expected_std, rtol=0.08)


def test_crossbar_bad_input_names_the_problem():
    cb = _small_crossbar(input_bits=2)
    with pytest.raises(InputShapeError, match="wider than the crossbar"):
        cb.mvm(torch.zeros(1, 5, dtype=torch.float64))
    with pytest.raises(InvalidArgumentError, match="input_bits=2"):
        cb.mvm(torch.tensor([[4.0, 0.0, 0.0]], dtype=torch.float64))
    with pytest.raises(InvalidArgumentError, match="input_bits=2"):
        cb.mvm(torch.tensor([[-1.0, 0.0, 0.0]], dtype=torch.float64))
    with pytest.raises(InvalidArgumentError, match="g_neg"):
        Crossbar(torch.ones(2, 2), None, scheme="differential")
    with pytest.raises(InvalidArgumentError, match=">= 0"):
        Crossbar(-torch.ones(2, 2), torch.ones(2, 2))
