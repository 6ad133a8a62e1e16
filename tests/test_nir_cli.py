"""``neuroflow export`` and ``neuroflow eval --nir``: a trained checkpoint, exported and run from
its NIR file, scores what the checkpoint scores (the spikes are the same)."""

from __future__ import annotations

import json

import pytest

from neuroflow.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::neuroflow.nir.NIRSemanticsWarning")


def test_export_then_eval_nir_matches_the_checkpoint(tiny_config, tmp_path, capsys):
    raw, config = tiny_config()
    assert main(["train", str(config)]) == 0
    ckpt = f"{raw['output_dir']}/best.pt"
    capsys.readouterr()
    out = tmp_path / "exported" / "model.nir"
    assert main(["export", str(config), "--checkpoint", ckpt, "-o", str(out), "--dt", "1e-3"]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and "LIF" in printed and "[2, 34, 34]" in printed

    assert main(["eval", str(config), "--checkpoint", ckpt, "--json"]) == 0
    reference = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["eval", str(config), "--nir", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["dt"] == 1e-3  # read from the file's metadata
    assert result["num_samples"] == reference["num_samples"] > 0
    assert result["accuracy"] == pytest.approx(reference["accuracy"])


def test_eval_nir_errors_are_one_line(tiny_config, tmp_path, capsys):
    _, config = tiny_config()
    bad = tmp_path / "bad.nir"
    bad.write_text("not hdf5")
    assert main(["eval", str(config), "--nir", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.nir" in err and err.count("\n") == 1
    assert main(["eval", str(config)]) == 2
    assert "--checkpoint" in capsys.readouterr().err
