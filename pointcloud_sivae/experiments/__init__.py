"""Experiments that train several runs and score them: method comparisons (``compare``) and sweeps on the
val split (``sweep``)."""
