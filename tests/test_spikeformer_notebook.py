"""The Meta-SpikeFormer tutorial notebook runs end to end (its cells assert what they show)."""

from __future__ import annotations

import pytest

from notebook_runner import execute_notebook

pytest.importorskip("nbclient")


def test_spikeformer_notebook_executes(tmp_path):
    nb = execute_notebook("spikeformer.ipynb", tmp_path)
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "spike-driven: yes" in outputs
    assert "blocks3.0" in outputs  # the per-block firing-rate table
