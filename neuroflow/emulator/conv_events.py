"""Event-driven delivery of one tick's spikes through a shared convolution kernel.

Both convolutional chips (Loihi's conv layers, Speck's cores) deliver a spike at input
``(c, y, x)`` to the outputs its kernel reaches, ``n`` times for a multi-spike of ``n``. Silent
inputs cost nothing: the loop visits only non-zero entries of the frame. The kernel is kept as a
shared ``[c_in, kh, kw, c_out]`` array, never expanded to a dense matrix, and each tap adds one
contiguous row of ``c_out`` weights (a vector add).

The callers inline this function into their own numba kernels; numba's on-disk cache keys a
kernel on its own file, so after editing this file clear the ``__pycache__`` of ``loihi.py`` and
``speck.py`` (a fresh checkout has none).
"""

from __future__ import annotations

import numba


@numba.njit(cache=True, inline="always")
def tap_range(i, pad, stride, k, n_out):
    """The kernel taps ``[first, last]`` (step ``stride``) through which input index ``i``
    reaches an output ``o = (i + pad - tap) / stride`` in ``0..n_out-1``; empty when
    ``first > last``. Bounds once per spike, rather than a division per tap."""
    r = i + pad
    lo = r - stride * (n_out - 1)
    if lo < 0:
        lo = 0
    first = lo + (r - lo) % stride
    last = r if r < k - 1 else k - 1
    return first, last


@numba.njit(cache=True, inline="always")
def deliver_spike(kernel, target, Wo, sh, sw, ph, pw, c, y, x, n, touched, order, n_touched):
    """Add ``n`` times the kernel taps of one spike at input ``(c, y, x)`` to ``target``.

    Args:
        kernel: integer weights ``[c_in, kh, kw, c_out]``.
        target: integer accumulator ``[Ho * Wo, c_out]`` (output position ``oy * Wo + ox``),
            updated in place.
        Wo: the output map's width.
        sh, sw, ph, pw: stride and padding.
        touched: ``[Ho * Wo]`` booleans, or empty to skip the bookkeeping: each output position
            reached is set and appended to ``order [Ho * Wo]`` after its ``n_touched`` entries.

    Returns:
        ``(events, n_touched)``: the synaptic events (``n * c_out`` per reachable tap) and the
        new length of ``order``.
    """
    _, kh, kw, c_out = kernel.shape
    Ho = target.shape[0] // Wo
    ky0, ky1 = tap_range(y, ph, sh, kh, Ho)
    kx0, kx1 = tap_range(x, pw, sw, kw, Wo)
    track = touched.shape[0] > 0
    events = 0
    row = (y + ph - ky0) // sh * Wo + (x + pw - kx0) // sw
    for ky in range(ky0, ky1 + 1, sh):
        p = row
        for kx in range(kx0, kx1 + 1, sw):
            acc = target[p]
            weights = kernel[c, ky, kx]
            for o in range(c_out):
                acc[o] += weights[o] * n
            events += n * c_out
            if track and not touched[p]:
                touched[p] = True
                order[n_touched] = p
                n_touched += 1
            p -= 1
        row -= Wo
    return events, n_touched


@numba.njit(cache=True, inline="always")
def deliver_conv_events(frame, kernel, target, Wo, sh, sw, ph, pw, touched, order):
    """Deliver every spike of one tick's frame ``[c_in, H, W]`` (integer counts) through
    :func:`deliver_spike`; returns ``(events, n)``, ``n`` the positions now listed in ``order``."""
    c_in, H, W = frame.shape
    events = 0
    n_touched = 0
    for c in range(c_in):
        for y in range(H):
            for x in range(W):
                n = frame[c, y, x]
                if n != 0:
                    e, n_touched = deliver_spike(
                        kernel, target, Wo, sh, sw, ph, pw, c, y, x, n, touched, order, n_touched
                    )
                    events += e
    return events, n_touched
