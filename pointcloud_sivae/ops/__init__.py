"""Distance kernels, one op a file: the Chamfer distance and nearest neighbours with their backends
(``chamfer``), the EMD (``emd``); numba kernels in ``_nn_kernels`` and ``_emd_kernels``."""
