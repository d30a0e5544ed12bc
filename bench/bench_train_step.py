"""Benchmark: one full Soft-IntroVAE training step, ours against the reference's way, on this machine.

Prints a table of medians (and min/max) over repeated runs, all measured in one run:

* **naive**: the same step as the public reference computes it
  (:mod:`bench.naive_step`: dense ``bmm`` Chamfer, Conv1d-layout encoder, every
  pass recomputed), on the same model, batch and data;
* **ours**: :meth:`pointcloud_sivae.training.trainer.Trainer.train_step` per available
  Chamfer backend, and with ``--amp bf16`` / ``--compile`` where asked;
* the speed-up of each against the naive step (shapes/s ratio);
* where the time goes: one encoder forward+backward, one Chamfer forward+backward,
  one decoder forward+backward, and the step's floor: its matrix-multiply FLOPs
  (counted from the layer widths) at the measured ``mm`` peak.

Uses the real ShapeNetPart airplanes (prepared into a temporary folder).

    python bench/bench_train_step.py [--device cpu|cuda] [--repeats 5] [--amp] [--compile]
    python bench/bench_train_step.py --preset mn40-256 --num-points 2048 --amp --compile --repeats 30

``--preset`` times a shipped preset's step (its model, objective and point count; the batch is
drawn as the trainer draws it: a random subset of the preset's points of each prepared cloud).
The naive row needs the reference's encoder (PointNet, max-pool); for a preset with another one
it is left out and the ratios are against the first "ours" row. The "ours" variants are timed
in rounds, one step of each in turn, so that a shared machine's drift reaches all alike.
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pointcloud_sivae.ops.chamfer import BACKENDS, chamfer_distance, resolve_backend  # noqa: E402
from pointcloud_sivae.runs.config import RunConfig, resolve_config  # noqa: E402
from bench.common import matmul_peak, timed  # noqa: E402
from bench.naive_step import NaiveStep  # noqa: E402
from pointcloud_sivae.utils.runtime import select_device  # noqa: E402
from pointcloud_sivae.training.trainer import Trainer  # noqa: E402
from shapenet_prep import PrepareOptions, prepare_category  # noqa: E402


def usable_backends(device) -> list[str]:
    out = []
    for b in BACKENDS:
        try:
            chamfer_distance(torch.rand(1, 8, 3, device=device), torch.rand(1, 8, 3, device=device), backend=b)
        except ImportError:
            continue
        out.append(b)
    return out


def encoder_step_flops(cfg, batch: int, points: int) -> float:
    """Matrix-multiply FLOPs of one Soft-IntroVAE step's encoder work (the bulk of it).

    Per-point layers cost ``2 * B * N * c_in * c_out`` forward; the encoder step runs
    3 passes with weight and input gradients (x 3), the decoder step 2 passes with
    input gradients only (x 2)."""
    widths = (3,) + tuple(cfg.model.encoder_channels)
    fwd = sum(2 * batch * points * a * b for a, b in zip(widths[:-1], widths[1:]))
    return 3 * 3 * fwd + 2 * 2 * fwd


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--naive-repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-points", type=int, default=2048)
    p.add_argument("--amp", action="store_true", help="also time bf16 autocast")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (compile time not counted)")
    p.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "shapenetpart")
    p.add_argument("--preset", default=None, help="time this shipped preset's step (default: the reference model)")
    args = p.parse_args()
    device = select_device(args.device)
    if not (args.source / "02691156").is_dir():
        print(f"bench needs the ShapeNetPart airplanes at {args.source} (pass --source)", file=sys.stderr)
        return 2
    backends = usable_backends(device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        prepare_category(PrepareOptions(source=args.source, category="airplane", out=Path(tmp) / "data",
                                        num_points=args.num_points, progress=False, log=io.StringIO()))

        def trainer(name, backend, amp="off", compile_=False):
            cfg = resolve_config(None, {}, preset=args.preset) if args.preset else RunConfig()
            cfg.data.data_root = str(Path(tmp) / "data")
            cfg.loss.chamfer_backend = backend
            cfg.train.device = str(device)
            cfg.train.out_dir = tmp
            cfg.train.run_name = name
            cfg.train.amp, cfg.train.compile = amp, compile_
            return Trainer.new_run(cfg)

        base = trainer("bench-naive", backends[0])
        x = base.batch(torch.arange(min(args.batch_size, len(base.train_points)), device=device))
        step_name = f"step {x.shape[0]}x{x.shape[1]}"
        enc = base.cfg.model
        if enc.encoder == "pointnet" and enc.encoder_pool == "max":
            naive = NaiveStep(base)
            t = timed(lambda: naive.step(x), args.naive_repeats, device)
            rows.append((f"naive {step_name}", "bmm", t, len(x)))
        else:
            print(f"naive row left out: the preset's encoder ({enc.encoder}, {enc.encoder_pool} pool) is not the "
                  "reference's (pointnet, max pool)")
        variants = [(b, "off", False) for b in backends]
        best = resolve_backend("auto", device)
        if args.amp:
            variants.append((best, "bf16", False))
        if args.compile:
            variants.append((best, "off", True))
        if args.amp and args.compile:
            variants.append((best, "bf16", True))
        ours = []
        for backend, amp, comp in variants:
            tr = trainer(f"bench-{backend}-{amp}-{comp}", backend, amp, comp)
            label = backend + (" +bf16" if amp == "bf16" else "") + (" +compile" if comp else "")
            ours.append((label, lambda tr=tr: tr.train_step(x, "soft-intro"), 3 if comp else 1))
        times = {label: [] for label, _, _ in ours}
        for label, fn, warmup in ours:
            timed(fn, 0, device, warmup=warmup)
        for _ in range(args.repeats):  # rounds: one step of each variant in turn
            for label, fn, _ in ours:
                times[label] += timed(fn, 1, device, warmup=0)
        rows += [(f"ours {step_name}", label, times[label], len(x)) for label, _, _ in ours]

        # where the time goes
        m = base.model
        enc_in = x.clone()

        def enc_fb():
            mu, lv = m.encode(enc_in)
            (mu.sum() + lv.sum()).backward()

        def dec_fb():
            m.decode(torch.randn(len(x), m.z_dim, device=device)).sum().backward()

        rows.append(("  encoder fwd+bwd (1 of 5 passes)", "", timed(enc_fb, args.repeats, device), len(x)))
        rows.append(("  decoder fwd+bwd", "", timed(dec_fb, args.repeats, device), len(x)))
        for backend in backends:
            def cd_fwd_bwd(backend=backend):
                xa = x.clone().requires_grad_()
                chamfer_distance(xa, x.flip(0), point_reduction="sum", backend=backend).sum().backward()
            rows.append(("  Chamfer fwd+bwd (1 of 6)", backend, timed(cd_fwd_bwd, args.repeats, device), len(x)))
        peak = matmul_peak(device)
        flops = encoder_step_flops(base.cfg, len(x), x.shape[1])

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'cpu'}"
    print(f"\ndevice: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"float32 mm peak {peak:.1f} GFLOP/s; encoder matmuls of one step {flops / 1e9:.0f} GFLOP "
          f"-> floor {flops / peak / 1e9:.2f} s at that peak")
    naive_med = statistics.median(rows[0][2])  # the naive row, or the first "ours" one without it
    print(f"config: {'preset ' + args.preset if args.preset else 'the reference model (dataclass defaults)'}")
    print(f"{'what':<36} {'backend':<20} {'median s':>9} {'min s':>8} {'max s':>8} {'shapes/s':>9} "
          f"{'vs naive' if rows[0][0].startswith('naive') else 'vs row 1':>9} {'runs':>5}")
    for what, backend, t, n in rows:
        med = statistics.median(t)
        ratio = f"{naive_med / med:>8.2f}x" if what.startswith(("naive", "ours")) else ""
        print(f"{what:<36} {backend:<20} {med:>9.3f} {min(t):>8.3f} {max(t):>8.3f} {n / med:>9.1f} "
              f"{ratio:>9} {len(t):>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
