"""Every ```python block of README.md runs as pasted (each in a fresh namespace, in a scratch
folder), so the front page cannot drift from the API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_python_snippets():
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("number", range(len(SNIPPETS)))
def test_readme_snippet_runs(number, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(
        compile(SNIPPETS[number], f"README.md python block {number + 1}", "exec"),
        {"__name__": "__readme__"},
    )
