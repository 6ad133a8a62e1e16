"""Event datasets: the N-MNIST reader, event transforms, the frame cache, the synthetic N-MNIST
generator, and the dataset registry used by the trainer.

Public names:

- building (``datasets``): :data:`DATASETS`, :func:`build_datasets`, :func:`prepare_dataset`,
  :func:`collate_time_first`, :class:`FrameDataset`, :class:`DataOptions`;
- reading (``nmnist``): :func:`read_events`, :func:`decode_events`, :func:`encode_events`,
  :func:`list_split`, :class:`SampleRef`, :data:`EVENT_DTYPE`, :data:`SENSOR_SIZE`;
- transforms (``event_transforms``): :func:`to_frames`, :func:`denoise`, :func:`crop_events`,
  :func:`random_crop_events`, :func:`translate_frames`, :class:`RandomTranslate`,
  :class:`EventsToFrames`;
- cache (``frame_cache``): :func:`build_frame_cache`, :func:`cache_key`, :class:`CachedFrames`;
- synthetic data (``synthetic_nmnist``): :func:`prepare_synthetic_nmnist`, :class:`CameraModel`;
- point clouds: :func:`read_off`, :func:`write_off` (``off``), :func:`read_modelnet_txt`,
  :func:`read_ply_h5` (``modelnet``), :func:`sample_surface` (``mesh_sampling``),
  :func:`prepare_synthetic_shapes` (``synthetic_shapes``), :class:`PointCloudDataset`,
  :class:`PointCloudOptions`, :class:`SparseCollate` (``point_cloud_dataset``).
"""

from neuroflow.data.datasets import (
    DATASETS,
    DataOptions,
    FrameDataset,
    build_datasets,
    collate_time_first,
    prepare_dataset,
)
from neuroflow.data.event_transforms import (
    EventsToFrames,
    RandomTranslate,
    crop_events,
    denoise,
    random_crop_events,
    to_frames,
    translate_frames,
)
from neuroflow.data.frame_cache import CachedFrames, build_frame_cache, cache_key
from neuroflow.data.mesh_sampling import sample_surface
from neuroflow.data.modelnet import read_modelnet_txt, read_ply_h5
from neuroflow.data.nmnist import (
    EVENT_DTYPE,
    SENSOR_SIZE,
    SampleRef,
    decode_events,
    encode_events,
    list_split,
    read_events,
)
from neuroflow.data.off import read_off, write_off
from neuroflow.data.point_cloud_dataset import PointCloudDataset, PointCloudOptions, SparseCollate
from neuroflow.data.synthetic_shapes import prepare_synthetic_shapes


def __getattr__(name: str):
    # the generator pulls in numba and scipy (~1 s): import it only when it is used
    if name in ("CameraModel", "prepare_synthetic_nmnist"):
        from neuroflow.data import synthetic_nmnist

        return getattr(synthetic_nmnist, name)
    raise AttributeError(f"module 'neuroflow.data' has no attribute {name!r}")

__all__ = [
    "CachedFrames",
    "CameraModel",
    "DATASETS",
    "DataOptions",
    "EVENT_DTYPE",
    "EventsToFrames",
    "FrameDataset",
    "PointCloudDataset",
    "PointCloudOptions",
    "RandomTranslate",
    "SENSOR_SIZE",
    "SampleRef",
    "SparseCollate",
    "build_datasets",
    "build_frame_cache",
    "cache_key",
    "collate_time_first",
    "crop_events",
    "decode_events",
    "denoise",
    "encode_events",
    "list_split",
    "prepare_dataset",
    "prepare_synthetic_nmnist",
    "prepare_synthetic_shapes",
    "random_crop_events",
    "read_events",
    "read_modelnet_txt",
    "read_off",
    "read_ply_h5",
    "sample_surface",
    "to_frames",
    "translate_frames",
    "write_off",
]
