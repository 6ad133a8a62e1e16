"""Write a generated dataset folder atomically: fill a temporary sibling, then rename it.

The synthetic generators (N-MNIST, shapes) write their files into ``.<root>.tmp-*`` next to
``root``, write a meta file last, and rename the folder to ``root``: an interrupted run never
leaves a dataset that looks complete, and the meta file's presence marks a finished one. If
another process finishes the same folder first, its copy is kept.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from neuroflow.errors import InvalidArgumentError


def is_prepared(root: str | os.PathLike, meta_file: str) -> bool:
    """True when ``root`` holds a completely written dataset (its meta file exists)."""
    return (Path(root) / meta_file).is_file()


def read_meta(root: str | os.PathLike, meta_file: str) -> dict:
    """The generation parameters stored in a prepared ``root``."""
    return json.loads((Path(root) / meta_file).read_text())


def prepare_folder(
    root: str | os.PathLike, what: str, meta_file: str, fill: Callable[[Path], dict]
) -> Path:
    """Make ``root`` with ``fill(tmp) -> meta`` (``tmp``: the empty staging folder; ``meta``:
    written as JSON to ``meta_file`` after it). An already prepared ``root`` is returned as it is.

    Raises InvalidArgumentError when ``root`` exists and is neither prepared nor an empty folder.
    """
    root = Path(root)
    if is_prepared(root, meta_file):
        return root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InvalidArgumentError(
            f"cannot prepare {what} in {root}: it exists and is not an empty folder "
            "(remove it or choose another root)"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the dataset should not be
    try:
        meta = fill(tmp)
        (tmp / meta_file).write_text(json.dumps(meta, indent=2) + "\n")
        try:
            os.replace(tmp, root)  # atomic; fails if another process filled root meanwhile
        except OSError:
            if not is_prepared(root, meta_file):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def check_meta(
    root: str | os.PathLike,
    what: str,
    meta_file: str,
    generator_version: int,
    wanted: dict[str, int | None],
) -> dict:
    """Compare a prepared ``root`` with the current generator and the requested sizes.

    Warns when another generator version made it; raises InvalidArgumentError when a requested
    ``wanted[key]`` (``train_per_class``... as ``data.synthetic_<key>``; None: anything goes)
    differs from the stored one. Returns the stored meta."""
    import warnings

    meta = read_meta(root, meta_file)
    if meta.get("generator_version") != generator_version:
        warnings.warn(
            f"{root} was made by another version of the {what} generator "
            f"({meta.get('generator_version')}, current {generator_version}); delete it to "
            "regenerate the current data",
            stacklevel=3,
        )
    for key, value in wanted.items():
        if value is not None and meta.get(key) != value:
            raise InvalidArgumentError(
                f"data.synthetic_{key} is {value} but {root} was prepared with "
                f"{key}={meta.get(key)}; delete {root} to regenerate it, or point data.root "
                "to another folder"
            )
    return meta
