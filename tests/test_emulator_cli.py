"""``neuroflow emulate`` and the evaluation it prints: the JSON keys, the float model scored on
the same batches, and one-line errors for missing arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroflow.cli import main
from neuroflow.emulator import compile
from neuroflow.emulator.evaluate import evaluate
from neuroflow.models.scnn import SCNN


def test_evaluate_reports_chip_and_float_on_the_same_batches():
    torch.manual_seed(0)
    model = SCNN(3, (2, 12, 12), channels=[4, 4], backend="torch").eval()
    net = compile(model, hardware="loihi", input_shape=(2, 12, 12))
    rng = np.random.default_rng(0)
    loader = [
        (
            torch.tensor(rng.integers(0, 3, (5, 4, 2, 12, 12)), dtype=torch.float32),
            torch.tensor(rng.integers(0, 3, 4)),
        )
        for _ in range(2)
    ]
    summary = evaluate(net, model, loader)
    for key in (
        "accuracy",
        "float_accuracy",
        "agreement",
        "energy_per_sample_pj",
        "latency_per_sample_s",
        "layers",
    ):
        assert key in summary
    assert summary["num_samples"] == 8
    with torch.no_grad():  # the float accuracy is the model's own on these batches
        expected = np.mean(
            [(model(x).mean(0).argmax(-1) == y).float().mean().item() for x, y in loader]
        )
    assert summary["float_accuracy"] == pytest.approx(expected)
    assert [row["name"] for row in summary["layers"]] == ["conv1_0", "conv2_0", "fc_1"]
    assert summary["layers"][0]["synaptic_events_per_sample"] > 0
    assert summary["latency_per_sample_s"] == pytest.approx(
        (5 + 3) * 1e-3
    )  # T + one tick per layer


def test_fractional_frames_are_refused():
    model = SCNN(3, (2, 12, 12), channels=[2, 2], backend="torch").eval()
    net = compile(model, hardware="loihi", input_shape=(2, 12, 12))
    loader = [(torch.full((2, 1, 2, 12, 12), 0.5), torch.tensor([0]))]
    from neuroflow.emulator import InputRangeError

    with pytest.raises(InputRangeError, match="not integer event counts"):
        evaluate(net, model, loader)


def test_cli_errors_are_one_line(capsys, tmp_path):
    assert main(["emulate", "configs/quickstart.yaml", "--hardware", "loihi"]) == 2
    assert "needs --checkpoint" in capsys.readouterr().err
    assert main(["emulate", str(tmp_path / "model.nir"), "--hardware", "speck"]) == 2
    assert "needs --data CONFIG" in capsys.readouterr().err


def test_unwritable_json_fails_before_the_emulation(capsys, tmp_path):
    """``--json FILE`` is checked first: the checkpoint here does not even exist, so reaching
    the emulation would fail with another message."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    base = ["emulate", "configs/nmnist_speck.yaml", "--checkpoint", str(tmp_path / "no.pt")]
    for bad, reason in ((blocker / "out.json", "it is a file"), (tmp_path, "it is a folder")):
        assert main([*base, "--hardware", "speck", "--json", str(bad)]) == 2
        err = capsys.readouterr().err
        assert reason in err and "no.pt" not in err
        assert len(err.strip().splitlines()) == 1


def test_leaky_quickstart_net_is_refused_on_speck():
    model = SCNN(3, (2, 12, 12), channels=[2, 2], backend="torch").eval()
    from neuroflow.emulator import UnsupportedNodeError

    with pytest.raises(UnsupportedNodeError, match="speck cannot run node 'lif1' \\(LIF\\)"):
        compile(model, hardware="speck", input_shape=(2, 12, 12))
