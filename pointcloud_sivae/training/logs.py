"""What training writes for people to read: TensorBoard scalars (or a null writer with the same methods
when logging is off) and the run's one-line summary."""

from __future__ import annotations


class NullWriter:
    """Accepts every SummaryWriter call and does nothing (no ``if writer`` checks needed)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def make_writer(log_dir, enabled: bool = True, purge_step: int | None = None):
    """A ``torch.utils.tensorboard.SummaryWriter`` on ``log_dir`` (events after
    ``purge_step`` are dropped, for a resumed run), or a :class:`NullWriter`.

    A file-system error of the writer's background thread (a full disk) is not printed there
    with a traceback: the writer raises it in the training thread at its next call, where the
    trainer reports it in one line (:func:`quiet_writer_threads`)."""
    if not enabled:
        return NullWriter()
    from torch.utils.tensorboard import SummaryWriter

    quiet_writer_threads()
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def quiet_writer_threads() -> None:
    """Install (once) a ``threading.excepthook`` that keeps the OSError of a TensorBoard writer thread
    quiet; every other thread exception goes to the hook that was there before."""
    import threading

    if getattr(threading.excepthook, "quiets_writer_threads", False):
        return
    previous = threading.excepthook

    def hook(args) -> None:
        if isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread":
            return  # re-raised by the writer in the training thread, reported there
        previous(args)

    hook.quiets_writer_threads = True
    threading.excepthook = hook


def log_step(writer, step: int, terms: dict[str, float], opt_e, opt_d, seconds: float, shapes: int) -> None:
    """One step's scalars: ``loss/<term>`` (the gradient diagnostics go under ``health/`` once per epoch),
    the learning rates, the step time and the throughput."""
    for k, v in terms.items():
        if not k.startswith("grad_"):
            writer.add_scalar(f"loss/{k}", v, step)
    writer.add_scalar("lr/encoder", opt_e.param_groups[0]["lr"], step)
    writer.add_scalar("lr/decoder", opt_d.param_groups[0]["lr"], step)
    writer.add_scalar("perf/step_time_s", seconds, step)
    writer.add_scalar("perf/shapes_per_s", shapes / seconds, step)


def summary_line(best: dict, last_val: dict[str, float]) -> str:
    """The finished run in one line: its best epoch, and what its last validation counted outside the
    JSD grid (reported here once; recorded per validation in ``metrics.jsonl``)."""
    if best["epoch"] is None:
        return "no validation ran: the val split is empty"
    text = f"best epoch {best['epoch']}, val JSD {best['val_jsd']:.4g}, val Chamfer {best['val_chamfer']:.4g}"
    outside = last_val.get("val_jsd_outside", 0.0)
    if outside > 0:
        text += (f"; at the last validation {outside:.2%} of the generated points lay outside the JSD grid's ball "
                 "and counted at their nearest cell")
    return text
