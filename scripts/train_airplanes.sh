#!/usr/bin/env bash
# The main job: set up, prepare the real ShapeNetPart airplanes, train the Soft-IntroVAE.
# Extra arguments go to the trainer, e.g. `--epochs 200` or `--device cuda`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SHAPENET_DATA=${SHAPENET_DATA:-../shared/data}
if [ ! -f data/shapenet/airplane/manifest.json ]; then
    .venv/bin/python -m shapenet_prep --format shapenetpart \
        --source "$SHAPENET_DATA/shapenetpart" --category airplane --out data/shapenet
fi
exec .venv/bin/python -m pointcloud_sivae.train --category airplane "$@"
