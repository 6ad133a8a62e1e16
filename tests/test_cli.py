"""The ``neuroflow`` command line: help, exit codes, one-line errors, eval --json, config show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from neuroflow.cli import main


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neuroflow", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    "argv", [[], ["train"], ["eval"], ["data"], ["data", "prepare"], ["config"], ["config", "show"]]
)
def test_help_for_every_command(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: neuroflow")
    if argv == ["train"]:
        assert "--set" in text and "--resume" in text and "torchrun" in text
    if argv == ["eval"]:
        assert "--checkpoint" in text and "--json" in text and "--split" in text


def test_usage_errors_exit_2(capsys):
    for argv in ([], ["fly"], ["eval", "x.yaml"]):  # no command, unknown one, missing --checkpoint
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2


def test_neuroflow_errors_are_one_line_with_exit_2(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("optimizer:\n  lrr: 0.1\n")
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {cfg}: unknown key 'optimizer.lrr'; did you mean 'optimizer.lr'?\n"
    assert main(["config", "show", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err.startswith("error: config file not found")


def test_neuroflow_warnings_are_one_line(tmp_path, capsys):
    import warnings

    import neuroflow
    from neuroflow.cli import _format_warning

    inside = str(Path(neuroflow.__file__).parent / "data" / "point_cloud_dataset.py")
    assert _format_warning("cannot write the point cache", UserWarning, inside, 196) == (
        "warning: cannot write the point cache\n"
    )
    outside = _format_warning("deprecated", DeprecationWarning, "/elsewhere/torch/nn.py", 7)
    assert outside.startswith("/elsewhere/torch/nn.py:7: DeprecationWarning: deprecated")
    before = warnings.formatwarning
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("seed: 1\n")
    assert main(["config", "show", str(cfg)]) == 0 and warnings.formatwarning is before  # restored


def test_module_entry_point_reports_without_traceback(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("seed: 1\n")
    proc = run_cli("train", str(cfg), "--set", "loop.epochs=zero")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --set loop.epochs=zero:")
    assert "'loop.epochs'" in lines[0] and "expected int" in lines[0]


def test_config_show_prints_resolved_yaml(tmp_path, capsys):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("model:\n  channels: [4, 8]\n")
    assert main(["config", "show", str(cfg), "--set", "optimizer.lr=0.02", "loop.epochs=3"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["optimizer"]["lr"] == 0.02 and shown["loop"]["epochs"] == 3
    assert shown["model"]["channels"] == [4, 8] and shown["model"]["tau"] == 2.0
    assert shown["output_dir"] == "runs/exp"


def test_train_then_eval_json(tiny_config):
    raw, path = tiny_config()
    assert main(["train", str(path)]) == 0
    ckpt = f"{raw['output_dir']}/best.pt"
    proc = run_cli("eval", str(path), "--checkpoint", ckpt, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert isinstance(result, dict)
    assert 0.0 <= result["accuracy"] <= 1.0 and result["split"] == "test"
    assert set(result["firing_rates"]) == {"lif1", "lif2"}
    summary = json.loads((Path(raw["output_dir"]) / "summary.json").read_text())
    assert result["accuracy"] == pytest.approx(summary["test_accuracy"])
    # a missing checkpoint is a one-line error too
    proc = run_cli("eval", str(path), "--checkpoint", "nowhere.pt", "--json")
    assert proc.returncode == 2 and proc.stderr.startswith("error: checkpoint not found")
