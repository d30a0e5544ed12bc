"""Training: the trainer's loop (``trainer``), one step per method (``steps``),
validation, checkpoints, multi-process training (``distributed``), health diagnostics and logs."""
