"""Event-driven delivery of one tick's spikes through a shared convolution kernel.

Both convolutional chips (Loihi's conv layers, Speck's cores) deliver a spike at input
``(c, y, x)`` to the outputs its kernel reaches, ``n`` times for a multi-spike of ``n``. Silent
inputs cost nothing: the loop visits only non-zero entries of the frame. The kernel is kept as a
shared ``[c_in, kh, kw, c_out]`` array, never expanded to a dense matrix.

The callers inline this function into their own numba kernels; numba's on-disk cache keys a
kernel on its own file, so after editing this file clear the ``__pycache__`` of ``loihi.py`` and
``speck.py`` (a fresh checkout has none).
"""

from __future__ import annotations

import numba


@numba.njit(cache=True, inline="always")
def deliver_conv_events(frame, kernel, target, sh, sw, ph, pw):
    """Add ``kernel`` contributions of the spikes in ``frame`` to ``target``; return the events.

    Args:
        frame: integer spike counts of one tick and stream, ``[c_in, H, W]``.
        kernel: integer weights ``[c_in, kh, kw, c_out]``.
        target: integer accumulator ``[Ho, Wo, c_out]``, updated in place.
        sh, sw, ph, pw: stride and padding.

    Returns:
        The synaptic events delivered: ``sum(n) * c_out`` over each spike's reachable outputs.
    """
    c_in, H, W = frame.shape
    _, kh, kw, c_out = kernel.shape
    Ho, Wo = target.shape[0], target.shape[1]
    events = 0
    for c in range(c_in):
        for y in range(H):
            for x in range(W):
                n = frame[c, y, x]
                if n == 0:
                    continue
                for ky in range(kh):
                    oyn = y + ph - ky
                    if oyn < 0 or oyn % sh != 0:
                        continue
                    oy = oyn // sh
                    if oy >= Ho:
                        continue
                    for kx in range(kw):
                        oxn = x + pw - kx
                        if oxn < 0 or oxn % sw != 0:
                            continue
                        ox = oxn // sw
                        if ox >= Wo:
                            continue
                        for o in range(c_out):
                            target[oy, ox, o] += kernel[c, ky, kx, o] * n
                        events += n * c_out
    return events
