"""notebooks/point_clouds.ipynb runs from top to bottom (voxelise, train briefly, plot) from its
own folder, as Jupyter runs it, shows its figures and writes nothing into that folder (its shapes,
run and dataset cache go to a temporary folder)."""

from __future__ import annotations

import pytest

pytest.importorskip("nbclient")
pytest.importorskip("matplotlib")

from notebook_runner import (  # noqa: E402
    NOTEBOOKS,
    execute_notebook,
    folder_listing,
    image_outputs,
    text_outputs,
)


def test_point_clouds_notebook():
    before = folder_listing(NOTEBOOKS)
    nb = execute_notebook("point_clouds.ipynb")
    text = text_outputs(nb)
    assert "occupied voxels" in text and "test accuracy after 3 epochs" in text
    assert image_outputs(nb) == 2  # the point cloud and spike voxels; the training curves
    assert folder_listing(NOTEBOOKS) == before
