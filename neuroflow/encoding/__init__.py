"""Input encoders (``[B, ...]`` -> ``[T, B, ...]``) and spike voxel coding for point clouds.
Event-camera binning lives in :mod:`neuroflow.data`."""

from neuroflow.encoding.static import direct_encode, latency_encode, rate_encode
from neuroflow.encoding.voxel import (
    encode_spikes,
    farthest_point_sample,
    grid_extent,
    grid_sample,
    normalize_unit_sphere,
    random_sample,
    spike_voxel_code,
)

__all__ = [
    "direct_encode",
    "encode_spikes",
    "farthest_point_sample",
    "grid_extent",
    "grid_sample",
    "latency_encode",
    "normalize_unit_sphere",
    "random_sample",
    "rate_encode",
    "spike_voxel_code",
]
