"""numba kernels of the sparse convolution (CPU), grouped by job."""
