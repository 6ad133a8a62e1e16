"""Execute a notebook from ``notebooks/`` as a test: every cell must run without error."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


def execute_notebook(name: str, workdir: Path | None = None, timeout_s: int = 900):
    """Run ``notebooks/<name>`` and return the executed notebook (an ``nbformat`` node).

        ``workdir`` is the kernel's working directory. ``None`` runs it where Jupyter does: in the
        notebook's own folder, ``notebooks/``; the repository's root is the other place users start
        from; a temporary folder keeps what a notebook writes out of the checkout.

        The kernel sees this checkout first on ``PYTHONPATH``, so the notebook tests the code under
        test rather than some other installed copy. ``NEUROFLOW_REPO`` names the checkout for
        notebooks that read its ``configs/``. Figures are recorded by Jupyter's inline backend (no
    display needed), as when a user runs the notebook.
    """
    import nbformat
    from nbclient import NotebookClient

    workdir = NOTEBOOKS if workdir is None else Path(workdir)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "MPLBACKEND", "NEUROFLOW_REPO")}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), saved["PYTHONPATH"]]))
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend, which records the figures
    os.environ["NEUROFLOW_REPO"] = str(REPO)
    try:
        client = NotebookClient(
            nb,
            timeout=timeout_s,
            kernel_name="python3",
            resources={"metadata": {"path": str(workdir)}},
        )
        client.execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return nb


def text_outputs(nb) -> str:
    """All text the code cells printed (streams and plain-text results)."""
    parts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def image_outputs(nb) -> int:
    """How many PNG figures the code cells displayed."""
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


def folder_listing(folder: Path) -> set[str]:
    """Every path under ``folder`` (relative), to check that a notebook wrote nothing there."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}
