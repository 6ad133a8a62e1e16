"""The emulator notebook runs end to end from its own folder: Speck resources and quantisation,
chip against float spikes (a raster), the leaky quickstart net refused on Speck and run on
Loihi."""

from __future__ import annotations

import pytest
from notebook_runner import execute_notebook, image_outputs, text_outputs

pytest.importorskip("nbclient")
pytest.importorskip("matplotlib")


def test_emulator_notebook_runs():
    nb = execute_notebook("emulator.ipynb")
    text = text_outputs(nb)
    assert "kernel_memory" in text and "same prediction on" in text
    assert "speck cannot run node 'lif1' (LIF)" in text
    assert "ticks (8 + one per layer" in text
    assert image_outputs(nb) == 1
