"""Where computed data (event frames, sampled point clouds) is cached: one folder of its own.

Caches never go inside a dataset's folder (it may be read-only, shared, or someone else's):
they live under ``$NEUROFLOW_CACHE`` when set, else ``datasets/.cache`` relative to the working
directory. Inside it, each dataset root gets ``<kind>/<root's name>-<hash of its absolute
path>/``, and each cache file there is named by a hash of the parameters and the samples'
identities (see :func:`neuroflow.data.events.frame_cache.cache_key`), so two roots, or two
settings of one root, never share a file, and deleting the cache folder only costs recomputation.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

#: environment variable naming the cache folder
CACHE_ENV = "NEUROFLOW_CACHE"
#: the cache folder when the variable is unset (relative to the working directory)
DEFAULT_CACHE = Path("datasets") / ".cache"


def cache_root() -> Path:
    """The cache folder: ``$NEUROFLOW_CACHE`` or ``datasets/.cache``, as an absolute path."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser().absolute() if configured else DEFAULT_CACHE.absolute()


def cache_dir(kind: str, data_root: str | os.PathLike) -> Path:
    """The folder holding the ``kind`` caches (``"frames"``, ``"points"``) of ``data_root``:
    ``<cache_root>/<kind>/<name>-<12 hex digits of the absolute path's SHA-256>``."""
    absolute = Path(data_root).expanduser().resolve()
    digest = hashlib.sha256(str(absolute).encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", absolute.name) or "root"
    return cache_root() / kind / f"{name}-{digest}"


def is_writable(folder: Path) -> bool:
    """Whether ``folder`` (or, before it exists, its nearest existing parent) may be written.

    Checks the mode bits as well as ``os.access``: a process running as root may write anywhere,
    but a folder marked read-only should not grow a cache behind its owner's back."""
    target = folder
    while not target.exists() and target != target.parent:
        target = target.parent
    try:
        return bool(target.stat().st_mode & 0o222) and os.access(target, os.W_OK)
    except OSError:
        return False
