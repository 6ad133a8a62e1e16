"""numba kernels of the sparse convolution (CPU), grouped by job.

* :mod:`.maps`: kernel-map building (neighbour search, strided output cells, pair lists);
* :mod:`.layout`: the batched path's pair layouts and scatter-add;
* :mod:`.events`: the event kernels (row test, forward, weight gradient, their vector intrinsic);
* :mod:`.jit`: plain-Python compile helpers the others share.

Each compiled function lives in the file of the kernels that call it: numba's disk cache does not
see edits to a callee in another file.
"""
