"""Deterministic, stratified splits of a dataset's samples (train / val / carved test)."""

from __future__ import annotations

import numpy as np


def stratified_split(
    labels: np.ndarray, fractions: list[float], rng: np.random.Generator
) -> list[np.ndarray]:
    """Split sample indices class by class.

    Part ``k`` gets ``fractions[k] * n_c`` samples (rounded half up) of each class ``c``; the last
    part returned gets the rest. Every part is in class-interleaved order (see :func:`interleave`).

    Returns:
        ``len(fractions) + 1`` disjoint index arrays: one per fraction, then the remainder.
    """
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        for k, frac in enumerate(fractions):
            n = int(np.floor(frac * len(idx) + 0.5))  # round half up (Python rounds 0.5 to 0)
            n = min(n, len(idx) - start)
            parts[k].append(idx[start : start + n])
            start += n
        parts[-1].append(idx[start:])
    return [interleave(np.concatenate(p), labels, rng) for p in parts]


def interleave(indices: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Order ``indices`` so that classes alternate in proportion: every prefix is (nearly)
    stratified, so truncating to ``max_samples`` keeps the class balance. Within a class the
    given order is kept."""
    if len(indices) == 0:
        return indices.astype(np.int64)
    lab = labels[indices]
    position = np.empty(len(indices))
    for c in np.unique(lab):
        members = np.flatnonzero(lab == c)
        # i-th member of a class of n sits at (i + offset) / n; a random per-class offset breaks
        # ties between classes without favouring low labels
        position[members] = (np.arange(len(members)) + rng.uniform(0.01, 0.99)) / len(members)
    return indices[np.argsort(position, kind="stable")].astype(np.int64)
