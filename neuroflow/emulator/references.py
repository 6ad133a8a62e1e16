"""Drivers for the independent peer simulators the emulator is checked and timed against.

Each imports its peer lazily (dev-only packages): ``xylosim`` (SynSense's C++ XyloSim).
"""

from __future__ import annotations

import numpy as np

from neuroflow.emulator.xylo import XyloNetwork


class XyloSimReference:
    """A ``xylosim.v2.XyloLayer`` holding the same integers as ``net``; synapses are listed in
    the emulator's table order (per presynaptic neuron, ascending target and synapse)."""

    def __init__(self, net: XyloNetwork):
        from xylosim import v2

        def table(w3):
            rows = []
            for pre in range(w3.shape[0]):
                post, syn = np.nonzero(w3[pre])
                rows.append(
                    [v2.XyloSynapse(int(p), int(s), int(w3[pre, p, s])) for p, s in zip(post, syn)]
                )
            return rows

        # XyloLayer keeps raw pointers to these objects: they must live as long as the layer
        self._tables = [table(net.w_in), table(net.w_rec), table(net.w_out[:, :, None])]
        self.layer = v2.XyloLayer(
            *self._tables,
            [[] for _ in range(net.n_hidden)],
            net.threshold.tolist(),
            net.threshold_out.tolist(),
            True,
            net.bias.tolist(),
            net.bias_out.tolist(),
            net.shift_in,
            net.shift_rec,
            net.shift_out,
            net.dash_mem.tolist(),
            net.dash_mem_out.tolist(),
            net.dash_syn.tolist(),
            [[int(d)] for d in net.dash_syn_out],
            "reference",
        )

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hidden ``[T, H]``, output ``[T, O]`` spikes and hidden ``v_mem [T, H]`` for one stream
        ``x [T, n_in]``, from a reset state."""
        self.layer.reset_all()
        out = np.array(self.layer.evolve(np.asarray(x).astype(int).tolist()), np.uint8)
        hidden = np.array(self.layer.rec_recurrent_spikes, np.uint8)
        return hidden, out, np.array(self.layer.rec_v_mem).T
