"""Execute a notebook from ``notebooks/`` as a test: every cell must run without error."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def execute_notebook(name: str, workdir: Path, timeout_s: int = 600) -> "nbformat.NotebookNode":  # noqa: F821
    """Run ``notebooks/<name>`` with its working directory set to ``workdir`` (so anything it
    writes lands in a temporary folder) and return the executed notebook.

    The kernel sees this checkout first on ``PYTHONPATH``, so the notebook tests the code under
    test rather than some other installed copy.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = str(REPO) + (os.pathsep + env_path if env_path else "")
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["NEUROFLOW_REPO"] = str(REPO)
    try:
        NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                       resources={"metadata": {"path": str(workdir)}}).execute()
    finally:
        if env_path:
            os.environ["PYTHONPATH"] = env_path
        else:
            os.environ.pop("PYTHONPATH", None)
    return nb
