"""Sharding a run's independent streams over worker processes: ``run(x, processes=2)`` (and
``evaluate(..., processes=2)``) must equal the one-process run bit for bit, the reference being
the same network's ``run(x)`` in this process; bad ``processes`` values are named errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroflow.cli import main
from neuroflow.emulator import RunResult, compile
from neuroflow.emulator.evaluate import evaluate
from neuroflow.emulator.shard import ShardedRunner, run_sharded, shard_bounds
from neuroflow.emulator.xylo import XyloNetwork
from neuroflow.errors import InvalidArgumentError
from neuroflow.models.scnn import SCNN
from neuroflow.models.speck_cnn import SpeckCNN


def small_xylo(rng) -> XyloNetwork:
    hidden, outputs = 60, 4
    w_rec = rng.integers(-40, 40, (hidden, hidden, 2)).astype(np.int8)
    w_rec[rng.random(w_rec.shape) < 0.8] = 0
    return XyloNetwork(
        rng.integers(-60, 128, (16, hidden, 2)).astype(np.int8),
        w_rec,
        rng.integers(-127, 128, (hidden, outputs)).astype(np.int8),
        threshold=rng.integers(200, 2000, hidden),
        bias=rng.integers(-5, 5, hidden),
        dash_mem=3,
        dash_syn=2,
        threshold_out=500,
        bias_out=0,
        dash_mem_out=3,
        dash_syn_out=2,
    )


def assert_same_run(a: RunResult, b: RunResult) -> None:
    """Every array and statistic equal (floats compared exactly, ``==``)."""
    assert a.output_spikes.dtype == b.output_spikes.dtype
    np.testing.assert_array_equal(a.output_spikes, b.output_spikes)
    assert a.layer_spikes.keys() == b.layer_spikes.keys()
    for name in a.layer_spikes:
        assert a.layer_spikes[name].dtype == b.layer_spikes[name].dtype
        np.testing.assert_array_equal(a.layer_spikes[name], b.layer_spikes[name])
    assert a.layers == b.layers  # dataclass equality: name, cores, every count, memory
    assert (a.ticks, a.batch) == (b.ticks, b.batch)
    assert a.energy_per_sample_pj == b.energy_per_sample_pj
    assert a.energy_breakdown_pj == b.energy_breakdown_pj
    assert a.latency_per_sample_s == b.latency_per_sample_s


def test_shard_bounds_are_contiguous_and_cover_the_batch():
    assert shard_bounds(5, 2) == [(0, 2), (2, 5)] or shard_bounds(5, 2) == [(0, 3), (3, 5)]
    for batch in (1, 2, 7, 16):
        for shards in (1, 2, 3, 20):
            bounds = shard_bounds(batch, shards)
            assert bounds[0][0] == 0 and bounds[-1][1] == batch
            assert all(lo < hi for lo, hi in bounds)
            assert all(b[1] == c[0] for b, c in zip(bounds, bounds[1:]))
            assert len(bounds) == min(batch, shards)


def test_two_processes_equal_one_on_xylo_and_speck():
    rng = np.random.default_rng(0)
    xylo = small_xylo(rng)
    x = ((rng.random((40, 5, 16)) < 0.3) * rng.integers(1, 16, (40, 5, 16))).astype(np.uint8)
    one, two = xylo.run(x), xylo.run(x, processes=2)
    assert one.synaptic_events > 0 and one.layer_spikes["hidden"].any()
    assert_same_run(one, two)
    assert two.layer_spikes["output"] is two.output_spikes  # as in one run

    torch.manual_seed(0)
    model = SpeckCNN(4, (2, 16, 16), channels=[4, 8], spiking_readout=True, backend="torch")
    speck = compile(model.eval(), hardware="speck", input_shape=(2, 16, 16))
    ev = rng.poisson(0.3, (12, 3, 2, 16, 16))
    one, two = speck.run(ev), speck.run(ev, processes=2)
    assert one.synaptic_events > 0
    assert_same_run(one, two)


def test_evaluate_with_two_processes_equals_one_on_loihi():
    torch.manual_seed(0)
    model = SCNN(3, (2, 12, 12), channels=[4, 4], backend="torch").eval()
    net = compile(model, hardware="loihi", input_shape=(2, 12, 12))
    rng = np.random.default_rng(1)
    loader = [
        (
            torch.tensor(rng.integers(0, 3, (5, 4, 2, 12, 12)), dtype=torch.float32),
            torch.tensor(rng.integers(0, 3, 4)),
        )
        for _ in range(2)
    ]
    assert evaluate(net, model, loader, processes=2) == evaluate(net, model, loader)
    x = loader[0][0].numpy().astype(np.int64)
    assert_same_run(net.run(x, drain=False), net.run(x, drain=False, processes=3))


@pytest.mark.slow  # each spawned worker imports torch first: several seconds
def test_spawned_workers_equal_one_process():
    rng = np.random.default_rng(3)
    net = small_xylo(rng)
    x = ((rng.random((30, 4, 16)) < 0.3) * rng.integers(1, 16, (30, 4, 16))).astype(np.uint8)
    assert_same_run(net.run(x), run_sharded(net, x, 2, start_method="spawn"))


def test_unknown_start_method_is_a_named_error():
    with pytest.raises(InvalidArgumentError, match="start_method must be one of"):
        ShardedRunner(small_xylo(np.random.default_rng(0)), 2, start_method="thread")


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2"])
def test_bad_process_counts_are_named_errors(bad):
    net = small_xylo(np.random.default_rng(0))
    x = np.zeros((3, 2, 16), np.uint8)
    with pytest.raises(InvalidArgumentError, match="processes must be a positive integer"):
        net.run(x, processes=bad)
    with pytest.raises(InvalidArgumentError, match="processes must be a positive integer"):
        evaluate(net, torch.nn.Identity(), [], processes=bad)


def test_cli_refuses_zero_processes_in_one_line(capsys):
    argv = ["emulate", "configs/quickstart.yaml", "--hardware", "loihi", "--processes", "0"]
    assert main(argv + ["--checkpoint", "missing.pt"]) == 2
    err = capsys.readouterr().err
    assert "processes must be a positive integer" in err and "got 0" in err
