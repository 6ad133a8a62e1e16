"""The Meta-SpikeFormer tutorial notebook runs end to end from its own folder, as Jupyter runs it
(its cells assert what they show: spikes in the attention maps, the LIF neuron's firing rule, the
spike-driven check), shows its figures and writes nothing into the checkout."""

from __future__ import annotations

import pytest
from notebook_runner import (
    NOTEBOOKS,
    REPO,
    execute_notebook,
    folder_listing,
    image_outputs,
    text_outputs,
)

pytest.importorskip("nbclient")
pytest.importorskip("matplotlib")


def check(nb) -> None:
    text = text_outputs(nb)
    assert "spike-driven: yes" in text
    assert "blocks3.0" in text  # the per-block firing-rate table
    # trained (a checkpoint under runs/) or the calibrated untrained stand-in: never silent
    assert "trained checkpoint" in text or "untrained (no runs/nmnist_spikeformer/best.pt" in text
    assert "Q, K, V rates [0.0, 0.0, 0.0]" not in text
    # event frames, raster, membrane trace, firing rates, attention maps, energy per layer
    assert image_outputs(nb) == 6


def test_spikeformer_notebook_from_its_folder():
    before = folder_listing(NOTEBOOKS)
    nb = execute_notebook("spikeformer.ipynb")  # cwd = notebooks/, Jupyter's default
    check(nb)
    assert folder_listing(NOTEBOOKS) == before


@pytest.mark.slow
def test_spikeformer_notebook_from_the_repository_root():
    check(execute_notebook("spikeformer.ipynb", REPO))
