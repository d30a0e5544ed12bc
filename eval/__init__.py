"""Evaluation metrics for point-cloud generation (METHOD.md section 3)."""
