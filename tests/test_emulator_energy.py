"""The chip emulator's energy per sample against ``neuroflow.energy`` counting the same run.

A Speck-ready CNN (``speck_cnn``) gets dyadic weights (integers / 64, the largest 127 / 64) and
threshold 1, so that the chip's 8-bit quantisation is exact (scale 64, or 256 after the average
pool's 1/4 is folded into the next layer) and the float model's arithmetic is exact too: the
chip's spikes then equal the float model's, and the two counts must agree event for event.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from neuroflow.emulator import chip_energy_report, compile
from neuroflow.emulator.profile import chip_profile
from neuroflow.energy import OpCounter, energy_report
from neuroflow.models.speck_cnn import SpeckCNN


def dyadic_speck_cnn(seed: int = 0) -> SpeckCNN:
    model = SpeckCNN(4, (2, 16, 16), channels=[4, 8], spiking_readout=True, backend="torch")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            n = torch.randint(-48, 49, p.shape, generator=gen).float()
            n.view(-1)[0] = 127  # the layer's largest weight: the chip's scale is a power of 2
            p.copy_(n / 64)
    return model.eval()


def sum_pool_twin(model: SpeckCNN) -> SpeckCNN:
    """The same network as the chip runs it: sum pooling, the 1/4 moved into the next layer's
    weights. Its layer inputs are integer spike counts, so ``OpCounter`` counts accumulates
    (ACs) there, as the chip does; the average-pooled original feeds fractions (MACs)."""
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for pool in ("pool1", "pool2"):
            getattr(twin, pool)[0] = torch.nn.AvgPool2d(2, divisor_override=1)
        twin.conv2[0].weight /= 4
        twin.fc[1].weight /= 4
    return twin


@pytest.fixture(scope="module")
def runs():
    model = dyadic_speck_cnn()
    rng = np.random.default_rng(0)
    x = rng.binomial(1, 0.15, (6, 3, 2, 16, 16)).astype(np.int32)  # [T, B, C, H, W] events
    net = compile(model, hardware="speck", input_shape=(2, 16, 16))
    result = net.run(x)
    twin = sum_pool_twin(model)
    xt = torch.tensor(x, dtype=torch.float32)
    with torch.no_grad(), OpCounter(twin) as counter:
        float_out = twin(xt)
    with torch.no_grad():
        assert torch.equal(model(xt), float_out)  # the twin is the same function
    return model, net, result, counter, float_out


def test_compiled_integers_are_exact_so_chip_spikes_equal_float_spikes(runs):
    _, net, result, _, float_out = runs
    assert [layer.threshold for layer in net.layers] == [64, 256, 256]
    for layer in net.layers:
        assert layer.quantisation["scale"] in (64.0, 256.0)
    # the chip's last layer is the readout IF; its spike counts are the float model's
    assert np.array_equal(result.output_spikes.reshape(float_out.shape), float_out.numpy())
    assert result.output_spikes.sum() > 0


def test_chip_counts_equal_the_op_counter_per_layer(runs):
    _, net, result, counter, _ = runs
    counted = counter.per_sample()
    b = result.batch
    # chip layer -> (the float model's synaptic layer, its neuron layer)
    pairs = dict(
        zip(
            [s.name for s in result.layers],
            [("conv1.0", "if1"), ("conv2.0", "if2"), ("fc.1", "out")],
        )
    )
    for stats in result.layers:
        syn, neuron = pairs[stats.name]
        assert counted[syn][1].acs == pytest.approx(stats.synaptic_events / b), stats.name
        assert counted[syn][1].macs == 0
        assert counted[neuron][1].neuron_updates == pytest.approx(stats.neuron_updates / b)
        assert counted[neuron][1].spikes == pytest.approx(stats.spikes / b)
        assert stats.synaptic_events > 0 and stats.spikes > 0


def test_energy_per_sample_agrees_with_neuroflow_energy(runs):
    _, _, result, counter, _ = runs
    profile = chip_profile("speck")
    float_report = energy_report(counter, profile)
    chip_report = chip_energy_report(result, "speck")
    assert chip_report.total_energy_pj == pytest.approx(result.energy_per_sample_pj)
    # the float count has one kind of event more: the sum pooling's adds, which Speck does in
    # its router between cores, not as synaptic events (the profile prices none)
    pool = sum(e.energy_pj for e in float_report.layers if e.kind == "pool")
    assert pool > 0
    assert float_report.total_energy_pj - pool == pytest.approx(result.energy_per_sample_pj)
    # by hand from the profile's per-event energies (hardware/speck.yaml)
    by_hand = (
        sum(s.synaptic_events for s in result.layers) * profile.ac_pj
        + sum(s.neuron_updates for s in result.layers) * profile.neuron_update_pj
        + sum(s.spikes for s in result.layers) * profile.spike_pj
    ) / result.batch
    assert result.energy_per_sample_pj == pytest.approx(by_hand)
    assert sum(result.energy_breakdown_pj.values()) == pytest.approx(by_hand)
