"""notebooks/emulator.ipynb runs end to end from its own folder, as Jupyter runs it: it trains the
Speck-ready CNN briefly, shows Speck's per-core resources and quantisation, the chip's accuracy
against the float model, the energy per sample counted both ways, a chip-vs-float raster, and
Loihi's refusal of the Speck net next to the leaky quickstart net running there; it writes nothing
into the notebook folder."""

from __future__ import annotations

import re

import pytest
from notebook_runner import (
    NOTEBOOKS,
    execute_notebook,
    folder_listing,
    image_outputs,
    text_outputs,
)

pytest.importorskip("nbclient")
pytest.importorskip("matplotlib")


def test_emulator_notebook_runs():
    before = folder_listing(NOTEBOOKS)
    nb = execute_notebook("emulator.ipynb")
    text = text_outputs(nb)
    assert "kernel memory" in text and "neuron memory" in text
    assert "test accuracy: float" in text and "same prediction on" in text
    assert "energy per sample on speck (native)" in text
    # the chip's energy and neuroflow.energy's count of the float model pooling as the chip
    # does: equal but for the few spikes quantisation moves (exact: test_emulator_energy.py)
    chip, counted = map(
        float,
        re.search(
            r"chip ([\d.]+) uJ; float model counted as the chip runs it ([\d.]+) uJ", text
        ).groups(),
    )
    assert counted == pytest.approx(chip, rel=0.02)
    assert "loihi cannot run node 'if1'" in text
    assert "speck cannot run node 'lif1' (LIF)" in text
    assert "ticks (8 + one per layer" in text
    assert image_outputs(nb) == 1  # the chip-vs-float raster
    assert folder_listing(NOTEBOOKS) == before
