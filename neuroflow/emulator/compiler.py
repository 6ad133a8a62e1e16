"""``compile(source, hardware=...)``: one entry point for every chip."""

from __future__ import annotations

from neuroflow.emulator.errors import EmulatorError
from neuroflow.emulator.graph import as_graph

CHIPS = ("xylo", "loihi", "speck")


def compile(source, hardware: str, input_shape=None, dt: float | None = None, **options):  # noqa: A001
    """Compile ``source`` (a ``nir.NIRGraph``, a ``.nir`` path or a neuroflow ``nn.Module``) for
    ``hardware`` (``"xylo"``, ``"loihi"`` or ``"speck"``).

    ``input_shape``: one input frame, needed for a torch model. ``dt``: seconds per tick
    (default: the graph's ``neuroflow_dt`` metadata, else 1 ms). ``options`` go to the chip's
    compiler. Returns the chip's network object; ``net.run(x)`` emulates it.
    """
    if hardware not in CHIPS:
        raise EmulatorError(
            f"unknown chip {hardware!r} for the emulator (available: {', '.join(CHIPS)})"
        )
    graph, graph_dt = as_graph(source, input_shape, dt)
    dt = float(dt if dt is not None else graph_dt if graph_dt is not None else 1e-3)
    if hardware == "xylo":
        from neuroflow.emulator.xylo import compile_xylo

        return compile_xylo(graph, dt, **options)
    if hardware == "loihi":
        from neuroflow.emulator.loihi import compile_loihi

        return compile_loihi(graph, dt, **options)
    from neuroflow.emulator.speck import compile_speck

    return compile_speck(graph, dt, **options)
