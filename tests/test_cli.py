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
    for argv in ([], ["fly"], ["eval"]):  # no command, unknown one, missing config
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    assert main(["eval", "x.yaml"]) == 2  # neither --checkpoint nor --nir
    assert "needs --checkpoint" in capsys.readouterr().err


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


# ---------------------------------------------------------------------------------------------
# issue 19.5: every command, fed an unwritable output path and a garbage checkpoint, answers
# with one line naming the path and what is wrong (no traceback, no torch advice)


def _bad_inputs(tmp_path, tiny_config):
    raw, cfg = tiny_config(name="victim")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x04this is not a checkpoint" * 20)
    run = tmp_path / "finished-run"
    run.mkdir()
    rows = [{"epoch": 1, "train_loss": 2.0, "train_accuracy": 0.2, "val_accuracy": 0.3}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lsm = tmp_path / "lsm.yaml"
    lsm.write_text(yaml.safe_dump({**raw, "model": {"name": "lsm", "neurons": 16, "crop": 16}}))
    return str(cfg), blocker / "sub", str(garbage), str(run), str(lsm)


#: command -> list of (argv, the path the one-line error must name); a command without an
#: output path or checkpoint argument says so with an empty list
def tmp_nir(unwritable):
    return unwritable.parent.parent / "model.nir"  # a writable place


def _cases(cfg, unwritable, garbage, run, lsm):
    return {
        "train": [(["train", cfg, "--set", f"output_dir={unwritable}/run"], unwritable)],
        "eval": [(["eval", cfg, "--checkpoint", garbage], garbage)],
        "energy": [
            (["energy", cfg, "--checkpoint", garbage], garbage),
            (
                ["energy", cfg, "--checkpoint", garbage, "--json", f"{unwritable}/e.json"],
                unwritable,
            ),
            (["energy", cfg, "--checkpoint", garbage, "--png", f"{unwritable}/e.png"], unwritable),
        ],
        "data": [
            (["data", "prepare", "synthetic-nmnist", "--root", f"{unwritable}/d"], unwritable)
        ],
        "export": [
            (["export", cfg, "--checkpoint", garbage, "-o", str(tmp_nir(unwritable))], garbage),
            (["export", cfg, "--checkpoint", garbage, "-o", f"{unwritable}/m.nir"], unwritable),
        ],
        "config": [],  # prints to stdout; reads only the config
        "lsm": [(["lsm", "sweep", lsm, "--out", f"{unwritable}/sweep"], unwritable)],
        # its --json FILE is written after the emulation has run (one line too, but only then:
        # too slow for this test)
        "emulate": [(["emulate", cfg, "--checkpoint", garbage, "--hardware", "loihi"], garbage)],
        "plot": [(["plot", run, "-o", f"{unwritable}/curves.png"], unwritable)],
    }


def _commands() -> set[str]:
    import argparse

    from neuroflow.cli import build_parser

    actions = build_parser()._subparsers._group_actions
    return {
        name for a in actions if isinstance(a, argparse._SubParsersAction) for name in a.choices
    }


def test_every_command_has_a_bad_input_case(tmp_path, tiny_config):
    cases = _cases(*_bad_inputs(tmp_path, tiny_config))
    assert set(cases) == _commands(), "add the new command's bad-input cases here"


def test_every_command_reports_bad_paths_in_one_line(tmp_path, tiny_config, capsys):
    cases = _cases(*_bad_inputs(tmp_path, tiny_config))
    for runs in cases.values():
        for argv, path in runs:
            capsys.readouterr()
            status = main(argv)
            err = capsys.readouterr().err
            assert status == 2, (argv, err)
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
            assert str(path) in lines[0], (argv, err)
            assert "Traceback" not in err and "Please file" not in err, (argv, err)


def test_png_into_a_missing_folder_is_created(tmp_path, tiny_config, capsys):
    """--png/--json into a folder that does not exist yet: the folder is made (as output_dir
    is), checked before the estimate runs."""
    from neuroflow.cli import _check_output_files

    target = tmp_path / "new" / "deeper" / "energy.png"
    _check_output_files(str(target), None)
    assert target.parent.is_dir()


def test_passive_openmp_waiting_is_the_default_and_overridable():
    """Issue 19.10: spinning OpenMP threads slowed training 2-3x when other processes shared the
    cores. The CLI sets OMP_WAIT_POLICY=PASSIVE before torch loads, unless the user set it."""
    from neuroflow.cli import thread_defaults

    env = {}
    thread_defaults(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    thread_defaults(env)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}
    # effective only if torch is not loaded yet when main() runs: importing the CLI must not
    # load it, and the entry point must leave the variable to the child's OpenMP
    probe = (
        "import os, sys; import neuroflow.cli as c; loaded = 'torch' in sys.modules; "
        "c.thread_defaults(); import torch; print(loaded, os.environ['OMP_WAIT_POLICY'])"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["False", "PASSIVE"], out.stderr
