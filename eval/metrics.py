"""The generation metrics (MMD, COV, 1-NNA) and AUROC; they live in :mod:`pointcloud_sivae.metrics`,
the layer that training validation shares with evaluation."""

from pointcloud_sivae.metrics import auroc, coverage, mmd, one_nn_accuracy

__all__ = ["auroc", "coverage", "mmd", "one_nn_accuracy"]
