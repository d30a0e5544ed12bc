"""Prepared data sets: ShapeNet categories (``categories``), the one normalisation of clouds and their
evaluation frame (``normalization``), and loading a prepared split with its point subsets (``prepared``)."""
