"""The RRAM liquid state machine notebook runs end to end (its cells assert what they show)."""

from __future__ import annotations

import pytest
from notebook_runner import execute_notebook, image_outputs, text_outputs

pytest.importorskip("nbclient")
pytest.importorskip("matplotlib")


@pytest.mark.slow  # about a minute on 2 busy cores (five readouts refitted on 800 digits)
def test_rram_lsm_notebook_runs(tmp_path):
    nb = execute_notebook("rram_lsm.ipynb", workdir=tmp_path)
    text = text_outputs(nb)
    assert "unformed share" in text and "firing rate" in text and "rram_macro" in text
    # histogram, raster, accuracy vs noise, energy bars
    assert image_outputs(nb) == 4
