"""NIR interchange: export neuroflow models to the Neuromorphic Intermediate Representation and
run graphs written by anyone (SpikingJelly, snnTorch, Norse, Sinabs, Rockpool...).

Public names: :func:`to_nir`, :func:`from_nir`, :func:`save`, :func:`load`,
:class:`NIRGraphModule`, the spec neurons :class:`NIRNeuron` / :class:`SinabsNeuron`, and the
errors :class:`NIRFormatError`, :class:`NIRExportError`, :class:`NIRShapeError`,
:class:`NIRSemanticsWarning`. Semantics and the peer importers' readings: ``docs/nir.md``.

This package shares its last name with the ``nir`` distribution it builds on; its modules import
that one with absolute imports (``import nir``), which resolve to the installed package because
neuroflow's own folder is never on ``sys.path``.
"""

from neuroflow.nir.errors import NIRExportError, NIRFormatError, NIRSemanticsWarning, NIRShapeError
from neuroflow.nir.exporter import save, to_nir
from neuroflow.nir.graph_module import NIRGraphModule
from neuroflow.nir.importer import from_nir, load, read_graph
from neuroflow.nir.neurons import NIRNeuron, SinabsNeuron

__all__ = [
    "NIRExportError",
    "NIRFormatError",
    "NIRGraphModule",
    "NIRNeuron",
    "NIRSemanticsWarning",
    "NIRShapeError",
    "SinabsNeuron",
    "from_nir",
    "load",
    "read_graph",
    "save",
    "to_nir",
]
