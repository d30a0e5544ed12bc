"""Evaluation metrics for point-cloud generation (docs/metrics.md)."""
