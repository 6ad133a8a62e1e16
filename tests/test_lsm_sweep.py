"""``neuroflow lsm sweep`` and ``neuroflow lsm energy`` on a tiny synthetic run."""

from __future__ import annotations

import json

import pytest

from neuroflow.cli import main
from neuroflow.lsm.sweep import format_table, parse_axis

MODEL = {"name": "lsm", "channels": [0], "neurons": 20, "threshold": 2.0, "time_bins": 2}


def test_parse_axis_reads_yaml_scalars():
    assert parse_axis("adc_bits=null,4") == ("adc_bits", [None, 4])
    assert parse_axis("read_noise=0,0.1") == ("read_noise", [0, 0.1])


def test_sweep_writes_table_json_and_plot(tiny_config, tmp_path, capsys):
    raw, path = tiny_config(name="lsm_sweep", model=MODEL, data={"time_steps": 10})
    out = tmp_path / "sweep"
    argv = [
        "lsm",
        "sweep",
        str(path),
        "--axis",
        "read_noise=0,0.2",
        "--readout",
        "ridge",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    rows = json.loads((out / "sweep.json").read_text())
    assert [(r["axis"], r["value"]) for r in rows] == [
        ("weights", "software"),
        ("weights", "rram"),
        ("read_noise", 0),
        ("read_noise", 0.2),
    ]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert (out / "sweep.png").stat().st_size > 0
    assert format_table(rows).splitlines()[2].startswith("weights") and "read_noise" in printed


def test_sweep_refuses_an_unknown_axis(tiny_config, capsys):
    _, path = tiny_config(name="lsm_bad", model=MODEL, data={"time_steps": 10})
    assert main(["lsm", "sweep", str(path), "--axis", "noise=0.1"]) == 2
    assert "not an lsm model parameter" in capsys.readouterr().err


def test_energy_command_json(tiny_config, capsys):
    _, path = tiny_config(name="lsm_energy", model=MODEL, data={"time_steps": 10})
    assert main(["lsm", "energy", str(path), "--samples", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    names = [r["hardware"] for r in result["energy_pj"]]
    assert names == ["rram_macro", "cmos45nm", "loihi"]
    assert result["counts"]["input_events"] > 0
    for r in result["energy_pj"]:
        parts = sum(r[k] for k in ("input_projection", "recurrent", "neurons", "readout"))
        assert r["total"] == pytest.approx(parts)
