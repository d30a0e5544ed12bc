#!/usr/bin/env bash
# One model of two categories, as the official code trains airplanes and cars together, on the data
# at hand: the 121 ShapeNetPart airplanes and the 20 Occupancy-Networks benches of ../shared/data
# (both ShapeNet shapes, y up, each normalised to the unit sphere). Trains the Soft-IntroVAE on their
# union, scores each category's test split with samples of a mixture fitted to that category's
# training posteriors, draws benches, and interpolates from an airplane to a bench (the authors'
# airplane-to-car demo with the category we have). A few minutes on 2 CPU cores; docs/usage.md
# gives the full ShapeNet commands of the official airplane + car configuration.
# The categories are drawn balanced (--category-sampling balanced): with 85 airplanes and 14 benches
# for training, proportional draws would give the benches one step in seven. On top of the preset
# mn40-256 (tuned on 438 ModelNet airplanes): batches of 16 (99 training shapes give 7 steps per
# epoch, not 4) and b_neg 100, which the health monitor asked for on this data (at the preset's 384
# the exp terms saturated and KL(fake) fell below KL(real): docs/results.md).
# Extra arguments go to the trainer, e.g. `--epochs 50`.
# Environment: SHAPENET_DATA (default ../shared/data), RUN_NAME, EPOCHS (default 400), GMM_COMPONENTS
# (per category, default 10: the benches have 14 training shapes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SHAPENET_DATA=${SHAPENET_DATA:-../shared/data}
EPOCHS=${EPOCHS:-400}
GMM_COMPONENTS=${GMM_COMPONENTS:-10}
DATA=data/airplane_bench_2048
PY=.venv/bin/python
START=$(date +%s)
if [ ! -f "$DATA/airplane/manifest.json" ]; then
    $PY -m shapenet_prep --format shapenetpart --source "$SHAPENET_DATA/shapenetpart" --category airplane \
        --num-points 2048 --normalization unit_sphere --out "$DATA" --progress false
fi
if [ ! -f "$DATA/bench/manifest.json" ]; then
    $PY -m shapenet_prep --format onet --source "$SHAPENET_DATA/onet" --category bench \
        --num-points 2048 --normalization unit_sphere --out "$DATA" --progress false
fi
RUN_NAME=${RUN_NAME:-airplane+bench-$(date +%Y%m%d-%H%M%S)}
RUN=runs/$RUN_NAME
$PY -m pointcloud_sivae.train --preset mn40-256 --data-root "$DATA" --category airplane bench \
    --category-sampling balanced --batch-size 16 --beta-neg 100 --epochs "$EPOCHS" --run-name "$RUN_NAME" \
    --progress false "$@"
SAMPLING=(--sampler gmm-aggregate --gmm-components "$GMM_COMPONENTS")
for CATEGORY in airplane bench; do
    $PY -m eval generation --checkpoint "$RUN" --split test --category "$CATEGORY" --protocol none --emd approx \
        "${SAMPLING[@]}" --out "$RUN/eval/test_generation_$CATEGORY.json" --progress false
done
$PY -m eval generation --checkpoint "$RUN" --split test --protocol none --emd approx --sampler prior \
    --out "$RUN/eval/test_generation_prior.json" --progress false
$PY -m pointcloud_sivae.sample --checkpoint "$RUN" --category bench -n 8 "${SAMPLING[@]}" --out "$RUN/samples_bench"
$PY -m pointcloud_sivae.sample --checkpoint "$RUN" --category airplane -n 8 "${SAMPLING[@]}" \
    --out "$RUN/samples_airplane"
read -r A B < <($PY -c "import json,sys; print(*(json.load(open(f))['splits']['test'][0] for f in sys.argv[1:]))" \
                 "$DATA/airplane/manifest.json" "$DATA/bench/manifest.json")
$PY -m pointcloud_sivae.interpolate --checkpoint "$RUN" --from "airplane:$A" --to "bench:$B" --steps 10 \
    --out "$RUN/interpolation"
END=$(date +%s)
cat <<MSG

Done in $((END - START)) s after setup. Results in $RUN:
  per-category tables  $RUN/eval/test_generation_{airplane,bench}.json; the prior's, by nearest category,
                       in test_generation_prior.json
  samples              $RUN/samples_bench/samples.png, $RUN/samples_airplane/samples.png
  interpolation        $RUN/interpolation/grid.png, interpolation.gif (airplane:$A -> bench:$B)
                       view it: python -m pointcloud_sivae.view $RUN/interpolation
MSG
