"""Helpers shared by the point-cloud tests: where the real ModelNet40 sample lives, if anywhere."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_modelnet40() -> Path | None:
    """``shared/data/modelnet40`` next to the repository root or a folder above it (CI puts it at
    ``../shared/data/modelnet40``); None when absent."""
    for parent in REPO.parents:
        candidate = parent / "shared" / "data" / "modelnet40"
        if candidate.is_dir():
            return candidate
    return None
