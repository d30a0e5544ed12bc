#!/usr/bin/env bash
# Set up, then run the whole test suite; then the training and distributed tests once more on
# ATen's portable kernels (ATEN_CPU_CAPABILITY=default), the nearest this machine has to another
# CPU's float kernels. Extra arguments go to pytest and run one pass only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest -q "$@"
fi
.venv/bin/python -m pytest -q
echo "== training and distributed tests on ATen's portable kernels (ATEN_CPU_CAPABILITY=default) =="
ATEN_CPU_CAPABILITY=default .venv/bin/python -m pytest -q tests/test_train.py tests/test_distributed.py
