"""Worker for tests/test_distributed.py: Soft-IntroVAE steps on fixed global batches of 15 shapes
(shards of 8 and 7), in float64; rank 0 saves the logged terms, gradients and weights.

    DIST_TEST_STEPS=1 torchrun --standalone --nproc_per_node=K tests/dist_grads.py DATA_ROOT OUT.pt

One step runs with learning rate 0 (gradients compared); more steps run with Adam's default rate.
"""

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointcloud_sivae.training.distributed import exit_worker, init_from_env, leave  # noqa: E402
from pointcloud_sivae.training.trainer import Trainer  # noqa: E402
from tests.conftest import tiny_config  # noqa: E402


def main(data_root: str, out: str) -> None:
    ctx = init_from_env("cpu")
    # float64: summation order differs with the shards; in float32 that rounding can move a max-pool
    # argmax between two near-equal points, in float64 it stays far below the test's tolerance
    torch.set_default_dtype(torch.float64)
    cfg = tiny_config(Path(data_root), Path(out).parent / f"runs{ctx.world_size}", "grads")
    cfg.train.sync_batchnorm = True  # the global batch's statistics: the single-process update exactly
    steps = int(os.environ.get("DIST_TEST_STEPS", "1"))
    if steps == 1:
        cfg.optim.lr_e = cfg.optim.lr_d = 0.0  # the step leaves the weights as they are: only gradients differ
    trainer = Trainer(cfg, Path(out).parent / "unused", dist_ctx=ctx)
    for i in range(steps):
        terms = trainer.train_step(trainer.train_points[15 * i: 15 * (i + 1)].double(), "soft-intro", diagnose=True)
        trainer.global_step += 1
    if ctx.is_main:
        grads = {f"encoder.{k}": p.grad for k, p in trainer.model.encoder.named_parameters()}
        grads.update({f"decoder.{k}": p.grad for k, p in trainer.model.decoder.named_parameters()})
        bn = {k: v for k, v in trainer.model.encoder.state_dict().items() if "running" in k}
        torch.save({"terms": terms, "grads": grads, "bn": bn, "model": trainer.model.state_dict()}, out)
    leave()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    exit_worker(0)
