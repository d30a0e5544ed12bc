"""The generation and reconstruction evaluators; they live in :mod:`pointcloud_sivae.evaluation`,
the layer that the experiment runners (compare, sweep) share with the ``eval`` commands."""

from pointcloud_sivae.evaluation import (
    DISPLAY,
    EMD_NAMES,
    GenerationEvaluator,
    format_table,
    reconstruction_metrics,
    summarize,
)

__all__ = ["DISPLAY", "EMD_NAMES", "GenerationEvaluator", "format_table", "reconstruction_metrics", "summarize"]
