"""Every shell command of README.md runs as written, in order, in a fresh copy of the repository
whose environment was made by `make setup` alone (issue: "a newcomer's first hour").

The commands are read from the README's ```bash blocks, so the front page cannot promise a command
that the default set-up cannot run. `make test` is left out: it is the suite that runs this test.
The copy holds the tracked files of this checkout as they are on disk (a fresh clone of the
current work), without `.venv`, `datasets/` contents or `runs/`.

Slow (it builds a virtual environment and trains the quickstart network): `make test-slow`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def readme_commands(text: str) -> list[str]:
    """The commands of the README's ```bash blocks, in order; continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip() and not command.lstrip().startswith("#"):
                commands.append(command.strip())
    return commands


def test_readme_commands_are_found():
    commands = readme_commands(README.read_text())
    assert {"make demo", "make test"} <= {c.split("#")[0].strip() for c in commands}
    assert any(c.startswith("source .venv/bin/activate") for c in commands)


def test_readme_commands_parser():
    text = "x\n```bash\nmake demo   # a comment\n# only a comment\nneuroflow a \\\n  --b c\n```\n"
    assert readme_commands(text) == ["make demo   # a comment", "neuroflow a    --b c"]


def fresh_copy(destination: Path) -> Path:
    """The tracked files of this checkout, as they are on disk, copied to ``destination``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_readme_command_runs_in_a_fresh_setup(tmp_path):
    repo = fresh_copy(tmp_path / "neuroflow")
    commands = [
        c for c in readme_commands(README.read_text()) if c.split("#")[0].strip() != "make test"
    ]
    script = "set -euo pipefail\n" + "".join(
        f"echo '>>> {c.replace(chr(39), '')}'\n{c}\n" for c in commands
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    done = subprocess.run(
        ["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=3500
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"a README command failed:\n{output[-6000:]}"
    assert (repo / "runs" / "quickstart" / "curves.png").is_file(), output[-3000:]
