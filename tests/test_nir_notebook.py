"""notebooks/nir.ipynb runs from top to bottom from its own folder, as Jupyter runs it: it trains
the quickstart net briefly, exports it, checks that SpikingJelly's and Norse's imports give its
spikes (its cells assert what they show), draws the rasters and writes nothing into that folder."""

from __future__ import annotations

import pytest

pytest.importorskip("nbclient")
pytest.importorskip("matplotlib")
pytest.importorskip("spikingjelly")
pytest.importorskip("norse")

from notebook_runner import NOTEBOOKS, execute_notebook, folder_listing, image_outputs, text_outputs  # noqa: E402


def test_nir_notebook():
    before = folder_listing(NOTEBOOKS)
    nb = execute_notebook("nir.ipynb")
    assert "identical spikes: neuroflow, SpikingJelly, Norse" in text_outputs(nb)
    assert image_outputs(nb) == 1  # the two rasters
    assert folder_listing(NOTEBOOKS) == before
