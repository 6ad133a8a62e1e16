"""notebooks/point_clouds.ipynb runs from top to bottom (voxelise, train briefly, plot)."""

from __future__ import annotations

import pytest

pytest.importorskip("nbclient")
pytest.importorskip("matplotlib")

from notebook_runner import execute_notebook  # noqa: E402


def test_point_clouds_notebook(tmp_path):
    nb = execute_notebook("point_clouds.ipynb", tmp_path)
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "occupied voxels" in text and "test accuracy after 3 epochs" in text
    for figure in ("spike_voxels.png", "accuracy.png"):
        assert (tmp_path / figure).stat().st_size > 1000
    assert (tmp_path / "run" / "summary.json").is_file()
