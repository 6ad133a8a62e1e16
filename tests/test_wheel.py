"""A wheel built from the repository carries the hardware profiles: installed into a fresh venv
and run outside the checkout, ``neuroflow energy --hardware loihi`` finds them.

Offline: the wheel is built with the running environment's setuptools (no build isolation, no
index), and the fresh venv reaches the heavy dependencies (torch, numpy, ...) through a ``.pth``
line naming this environment's site-packages, so nothing is downloaded. The package itself
comes only from the wheel: neither the checkout nor its editable install is on the venv's path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory) -> Path:
    for needed in ("pip", "setuptools"):  # found, not imported (setuptools patches distutils)
        if importlib.util.find_spec(needed) is None:
            pytest.skip(f"building the wheel needs {needed}")
    work = tmp_path_factory.mktemp("wheel")
    # build from a copy: an in-place build would write build/ and *.egg-info into the checkout
    src = work / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("neuroflow", "hardware"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    dist = work / "dist"
    pip = [sys.executable, "-m", "pip"]
    _run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, src],
        cwd=work,
    )
    wheel = next(dist.glob("neuroflow-*.whl"))

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=work)
    python = venv / "bin" / "python"
    _run([*pip, "--python", python, "install", "-q", "--no-deps", "--no-index", wheel], cwd=work)
    venv_site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    # dependencies from this environment; its .pth files (the editable neuroflow) are not run
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()}
    (venv_site / "zz_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    return venv


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def test_wheel_installs_profiles_and_finds_them_outside_the_checkout(installed_venv, tmp_path):
    python = installed_venv / "bin" / "python"
    probe = _run(
        [
            python,
            "-c",
            "import neuroflow, neuroflow.energy.hardware as h; print(neuroflow.__file__); "
            "print(*h.hardware_dirs(), sep=';'); print(*h.hardware_names(), sep=',')",
        ],
        cwd=tmp_path,
        env=_clean_env(),
    ).stdout.splitlines()
    package, dirs, names = probe[0], probe[1].split(";"), probe[2].split(",")
    assert Path(package).resolve().is_relative_to(installed_venv.resolve())  # not the checkout
    assert dirs == [str((installed_venv / "share" / "neuroflow" / "hardware").resolve())]
    expected = sorted(p.stem for p in (REPO / "hardware").glob("*.yaml"))
    assert sorted(names) == expected


def test_installed_energy_command_on_loihi(installed_venv, tiny_config, tmp_path):
    from neuroflow.config import load_config, to_dict
    from neuroflow.energy import estimate_checkpoint
    from neuroflow.experiment import build_model, save_checkpoint

    raw, config_path = tiny_config()
    cfg = load_config(config_path)
    model = build_model(cfg, num_classes=10, input_shape=(2, 34, 34))
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(
        ckpt,
        {
            "epoch": 1,
            "model": model.state_dict(),
            "config": to_dict(cfg),
            "model_io": {"num_classes": 10, "input_shape": [2, 34, 34]},
        },
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    neuroflow = installed_venv / "bin" / "neuroflow"
    proc = _run(
        [
            neuroflow,
            "energy",
            config_path,
            "--checkpoint",
            ckpt,
            "--hardware",
            "loihi",
            "--max-samples",
            "4",
            "--json",
            "energy.json",
        ],
        cwd=outside,
        env=_clean_env(),
    )
    assert "energy per sample on loihi (native)" in proc.stdout
    installed = json.loads((outside / "energy.json").read_text())
    # reference: the same estimate in this process, on the checkout's hardware/loihi.yaml
    here = estimate_checkpoint(cfg, ckpt, "loihi", max_samples=4)
    assert installed["samples"] == here.samples == 4
    assert installed["total_energy_pj"] == pytest.approx(here.total_energy_pj, rel=1e-9)
    assert installed["total_energy_pj"] > 0
