"""The NIR tutorial notebook runs end to end: it trains the quickstart net briefly, exports it and
checks that SpikingJelly's and Norse's imports give its spikes (its cells assert what they show)."""

from __future__ import annotations

import pytest
from notebook_runner import execute_notebook

pytest.importorskip("nbclient")
pytest.importorskip("spikingjelly")
pytest.importorskip("norse")


def test_nir_notebook_executes(tmp_path):
    nb = execute_notebook("nir.ipynb", tmp_path)
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "identical spikes: neuroflow, SpikingJelly, Norse" in outputs
    assert (tmp_path / "scnn_lif2.nir").is_file()
