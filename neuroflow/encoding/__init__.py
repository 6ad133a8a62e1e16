"""Input encoders (``[B, ...]`` -> ``[T, B, ...]``). Event-camera binning lives in :mod:`neuroflow.data`."""

from neuroflow.encoding.static import direct_encode, latency_encode, rate_encode

__all__ = ["direct_encode", "rate_encode", "latency_encode"]
