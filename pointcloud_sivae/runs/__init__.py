"""A run's config (``config``: the sections, presets, stored-config upgrades) and the reading of its
checkpoints (``checkpoint``): what the trainer, sampling, evaluation and the viewer share. The
trainer writes checkpoints (:mod:`pointcloud_sivae.training`); everyone reads them from here."""
