"""Deterministic, stratified splits of a dataset's samples (train / val / carved test)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

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


def _carved(n: int, val_fraction: float, test_fraction: float) -> int:
    """Test samples :func:`stratified_split` carves from a class of ``n`` (val taken first)."""
    n_val = min(int(np.floor(val_fraction * n + 0.5)), n)
    return min(int(np.floor(test_fraction * n + 0.5)), n - n_val)


def empty_test_split_message(
    name: str, root: object, labels: np.ndarray, val_fraction: float, test_fraction: float
) -> str:
    """Why a test split carved from the training files came out empty, and how to fill it.

    Each class gives ``round_half_up(test_fraction * n)`` of its ``n`` files (after
    ``round_half_up(val_fraction * n)`` went to validation), so small classes give none.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    counts = counts[counts > 0]
    smallest, largest = int(counts.min()), int(counts.max())
    per_class = next(
        (m for m in range(1, 100_000) if _carved(m, val_fraction, test_fraction) >= 1), None
    )
    fixes = ["add test files to the dataset"]
    if per_class is not None:
        fixes.append(f"give each class at least {per_class} training files")
    # round half up: a class of n gives one test file from test_fraction >= 0.5 / n
    needed = 0.5 / smallest
    if needed + val_fraction < 1 and _carved(smallest, val_fraction, needed) >= 1:
        fixes.append(
            f"set data.test_fraction to at least {np.ceil(needed * 1000) / 1000:g} "
            f"(one test file from a class of {smallest})"
        )
    elif val_fraction > 0:
        fixes.append("lower data.val_fraction and raise data.test_fraction")
    return (
        f"{name}: the test split is empty: {root} has no test files, so data.test_fraction="
        f"{test_fraction:g} of each class's training files is held out for testing, which "
        f"rounds to 0 for every class (classes hold {smallest} to {largest} files, "
        f"data.val_fraction={val_fraction:g} taken first). To measure test accuracy: "
        + "; or ".join(fixes)
        + "."
    )


def split_train_val_test(
    train_labels: Sequence[int],
    test_labels: Sequence[int] | None,
    options: Any,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, val, test)`` index arrays of a dataset's samples (deterministic given ``seed``).

    ``train`` and ``val`` index the training files (``options.val_fraction`` of each class held
    out for ``val``). ``test`` indexes the test files (``test_labels``, class-interleaved), or,
    when the dataset has none (``test_labels`` None), ``options.test_fraction`` of each class of
    the training files, never overlapping ``val``. A carved test split that comes out empty
    warns with the reason and the fix (:func:`empty_test_split_message`).
    """
    labels = np.asarray(train_labels, dtype=np.int64)
    rng = np.random.default_rng([seed, 2024])
    if test_labels is None:
        val_idx, test_idx, train_idx = stratified_split(
            labels, [options.val_fraction, options.test_fraction], rng
        )
        if len(test_idx) == 0 and options.test_fraction > 0:
            warnings.warn(
                empty_test_split_message(
                    options.name, options.root, labels, options.val_fraction, options.test_fraction
                ),
                stacklevel=3,
            )
        return train_idx, val_idx, test_idx
    val_idx, train_idx = stratified_split(labels, [options.val_fraction], rng)
    test_labels = np.asarray(test_labels, dtype=np.int64)
    return train_idx, val_idx, interleave(np.arange(len(test_labels)), test_labels, rng)


def split_samples(
    train_refs: Sequence, test_refs: Sequence | None, options: Any, seed: int
) -> dict:
    """``{"train", "val", "test"}`` -> lists of sample references (each with a ``label``), split
    by :func:`split_train_val_test`; without test files, ``test`` is carved from ``train_refs``."""
    train_idx, val_idx, test_idx = split_train_val_test(
        [r.label for r in train_refs],
        None if test_refs is None else [r.label for r in test_refs],
        options,
        seed,
    )
    return {
        "train": [train_refs[i] for i in train_idx],
        "val": [train_refs[i] for i in val_idx],
        "test": [(train_refs if test_refs is None else test_refs)[i] for i in test_idx],
    }
