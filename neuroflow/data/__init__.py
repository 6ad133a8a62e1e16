"""Data: the dataset registry and splits, event-camera data (:mod:`neuroflow.data.events`) and
point clouds (:mod:`neuroflow.data.pointcloud`).

Public names:

- building (``registry``, ``options``): :data:`DATASETS`, :func:`build_datasets`,
  :func:`prepare_dataset`, :func:`resolve_options`, :class:`DataOptions` (the settings every
  dataset shares; each registered dataset's own: :class:`EventOptions`,
  :class:`SyntheticNMNISTOptions`, :class:`PointCloudOptions`, :class:`SyntheticShapesOptions`,
  :class:`TonicOptions`, :class:`NTidigitsOptions`);
- event datasets (``events.dataset``): :func:`collate_time_first`, :class:`FrameDataset`;
- reading (``events.nmnist``): :func:`read_events`, :func:`decode_events`, :func:`encode_events`,
  :func:`list_split`, :class:`SampleRef`, :data:`EVENT_DTYPE`, :data:`SENSOR_SIZE`;
- transforms (``events.transforms``): :func:`to_frames`, :func:`denoise`, :func:`crop_events`,
  :func:`random_crop_events`, :func:`translate_frames`, :class:`RandomTranslate`,
  :class:`EventsToFrames`;
- Tonic interop (``events.tonic_interop``): :func:`to_tonic`, :func:`from_tonic`,
  :data:`TONIC_DTYPE`, :func:`events_to_frames` (fixed time windows, as Tonic's ``ToFrame``),
  :func:`collate_padded`, :class:`TonicOptions` (``data: {name: tonic, dataset: ...}``);
- cache (``events.frame_cache``): :func:`build_frame_cache`, :func:`cache_key`,
  :class:`CachedFrames`;
- synthetic data (``events.synthetic_nmnist``): :func:`prepare_synthetic_nmnist`,
  :class:`CameraModel`;
- point clouds (``pointcloud``): :func:`read_off`, :func:`write_off` (``off``),
  :func:`read_modelnet_txt`, :func:`read_ply_h5` (``modelnet``), :func:`sample_surface`
  (``mesh_sampling``), :func:`prepare_synthetic_shapes` (``synthetic_shapes``),
  :class:`PointCloudDataset`, :class:`PointCloudOptions`, :class:`SparseCollate` (``dataset``).
"""

from neuroflow.data.events.dataset import (
    EventOptions,
    FrameDataset,
    SyntheticNMNISTOptions,
    collate_time_first,
)
from neuroflow.data.events.frame_cache import CachedFrames, build_frame_cache, cache_key
from neuroflow.data.events.nmnist import (
    EVENT_DTYPE,
    SENSOR_SIZE,
    SampleRef,
    decode_events,
    encode_events,
    list_split,
    read_events,
)
from neuroflow.data.events.ntidigits_dataset import NTidigitsOptions
from neuroflow.data.events.tonic_interop import (
    TONIC_DTYPE,
    TonicOptions,
    collate_padded,
    events_to_frames,
    from_tonic,
    to_tonic,
)
from neuroflow.data.events.transforms import (
    EventsToFrames,
    RandomTranslate,
    crop_events,
    denoise,
    random_crop_events,
    to_frames,
    translate_frames,
)
from neuroflow.data.options import DataOptions
from neuroflow.data.pointcloud.dataset import (
    PointCloudDataset,
    PointCloudOptions,
    SparseCollate,
    SyntheticShapesOptions,
)
from neuroflow.data.pointcloud.mesh_sampling import sample_surface
from neuroflow.data.pointcloud.modelnet import read_modelnet_txt, read_ply_h5
from neuroflow.data.pointcloud.off import read_off, write_off
from neuroflow.data.pointcloud.synthetic_shapes import prepare_synthetic_shapes
from neuroflow.data.registry import DATASETS, build_datasets, prepare_dataset, resolve_options


def __getattr__(name: str):
    # the generator pulls in numba and scipy (~1 s): import it only when it is used
    if name in ("CameraModel", "prepare_synthetic_nmnist"):
        from neuroflow.data.events import synthetic_nmnist

        return getattr(synthetic_nmnist, name)
    raise AttributeError(f"module 'neuroflow.data' has no attribute {name!r}")


__all__ = [
    "CachedFrames",
    "CameraModel",
    "DATASETS",
    "DataOptions",
    "EVENT_DTYPE",
    "EventOptions",
    "EventsToFrames",
    "FrameDataset",
    "NTidigitsOptions",
    "PointCloudDataset",
    "PointCloudOptions",
    "RandomTranslate",
    "SENSOR_SIZE",
    "SampleRef",
    "SparseCollate",
    "SyntheticNMNISTOptions",
    "SyntheticShapesOptions",
    "TONIC_DTYPE",
    "TonicOptions",
    "build_datasets",
    "build_frame_cache",
    "cache_key",
    "collate_padded",
    "collate_time_first",
    "crop_events",
    "decode_events",
    "denoise",
    "encode_events",
    "events_to_frames",
    "from_tonic",
    "list_split",
    "prepare_dataset",
    "prepare_synthetic_nmnist",
    "prepare_synthetic_shapes",
    "random_crop_events",
    "read_events",
    "read_modelnet_txt",
    "read_off",
    "read_ply_h5",
    "resolve_options",
    "sample_surface",
    "to_frames",
    "to_tonic",
    "translate_frames",
    "write_off",
]
