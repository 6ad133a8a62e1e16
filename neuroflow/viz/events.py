"""Event-camera frames and point clouds.

Each function takes plain tensors or arrays, draws into a new figure (or the given axes),
optionally saves to ``path`` (atomically), and returns ``(figure, axes)``.
"""

from __future__ import annotations

import os

import numpy as np

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.viz.backend import pyplot, save_figure, to_numpy


def event_frames(
    frames,
    *,
    sample: int = 0,
    max_frames: int = 8,
    title: str | None = None,
    path: str | os.PathLike | None = None,
):
    """One panel per time step of polarity frames: ON events red, OFF events blue.

    Args:
        frames: ``[T, 2, H, W]`` or ``[T, B, 2, H, W]`` (then sample ``sample``) event counts per
            pixel and time bin, channel 0 = OFF, 1 = ON (N-MNIST's polarity order).
        max_frames: draw at most this many steps, evenly spaced over ``T``.

    Returns:
        ``(figure, axes)``, ``axes`` an array of one Axes per drawn step.
    """
    f = to_numpy(frames, "frames")
    if f.ndim == 5:
        if not 0 <= sample < f.shape[1]:
            raise InvalidArgumentError(f"sample={sample}: frames has {f.shape[1]} samples (dim 1)")
        f = f[:, sample]
    if f.ndim != 4 or f.shape[1] != 2:
        raise InputShapeError(
            f"frames: expected [T, 2, H, W] or [T, B, 2, H, W] polarity frames, got shape "
            f"{list(to_numpy(frames, 'frames').shape)}"
        )
    T = f.shape[0]
    if max_frames < 1:
        raise InvalidArgumentError(f"max_frames={max_frames}: expected at least 1")
    steps = np.unique(np.linspace(0, T - 1, min(T, max_frames)).round().astype(int))
    balance = f[:, 1] - f[:, 0]  # ON minus OFF events per pixel
    limit = max(float(np.abs(balance).max()), 1.0)
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(steps), figsize=(1.9 * len(steps) + 1.2, 2.4), squeeze=False, layout="constrained"
    )
    axes = axes[0]
    for ax, t in zip(axes, steps, strict=True):
        image = ax.imshow(balance[t], cmap="bwr", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(f"t = {t}", fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="ON − OFF events per pixel")
    fig.suptitle(title or f"event frames ({int(f.sum())} events, {T} steps)", fontsize="medium")
    if path is not None:
        save_figure(fig, path)
    return fig, axes


def point_cloud(
    xyz,
    colours=None,
    ax=None,
    *,
    size: float = 4.0,
    cmap: str = "viridis",
    colour_label: str | None = None,
    title: str | None = None,
    path: str | os.PathLike | None = None,
):
    """A 3-D scatter of points with equal scales on the three axes.

    Args:
        xyz: ``[N, 3]`` coordinates (or ``[N, C>=3]``, e.g. xyz + normals: the first three
            columns are drawn). Integer voxel coordinates work too.
        colours: optional ``[N]`` values mapped through ``cmap`` with a colour bar labelled
            ``colour_label``, or ``[N, 3]`` RGB in [0, 1].
        ax: a 3-D Axes (``projection="3d"``) to draw into.
    """
    p = to_numpy(xyz, "xyz")
    if p.ndim != 2 or p.shape[1] < 3:
        raise InputShapeError(f"xyz: expected [N, 3] points, got shape {list(p.shape)}")
    p = p[:, :3]
    c = None if colours is None else to_numpy(colours, "colours")
    if c is not None and not (c.shape == (len(p),) or c.shape == (len(p), 3)):
        raise InputShapeError(
            f"colours: expected [{len(p)}] values or [{len(p)}, 3] RGB, got shape {list(c.shape)}"
        )
    if ax is None:
        fig = pyplot().figure(figsize=(5, 4.5))
        ax = fig.add_subplot(projection="3d")
    else:
        fig = ax.figure
        if not hasattr(ax, "get_zlim"):
            raise InvalidArgumentError("ax: point_cloud needs a 3-D Axes (projection='3d')")
    if c is None:
        ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=size, color="C0", depthshade=True)
    elif c.ndim == 1:
        points = ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=size, c=c, cmap=cmap)
        # below the plot: beside it, a 3-D axes' square box leaves a wide gap
        fig.colorbar(
            points,
            ax=ax,
            orientation="horizontal",
            shrink=0.6,
            pad=0.08,
            label=colour_label or "value",
        )
    else:
        ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=size, c=np.clip(c, 0, 1))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z")
    if len(p):
        ax.set_box_aspect(np.maximum(np.ptp(p, axis=0), 1e-6))
    ax.set_title(title or f"{len(p):,} points")
    if path is not None:
        save_figure(fig, path)
    return fig, ax
