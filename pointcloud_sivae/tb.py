"""TensorBoard writer, or a null writer with the same methods when logging is off."""

from __future__ import annotations


class NullWriter:
    """Accepts every SummaryWriter call and does nothing (no ``if writer`` checks needed)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def make_writer(log_dir, enabled: bool = True, purge_step: int | None = None):
    """A ``torch.utils.tensorboard.SummaryWriter`` on ``log_dir`` (events after
    ``purge_step`` are dropped, for a resumed run), or a :class:`NullWriter`."""
    if not enabled:
        return NullWriter()
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
