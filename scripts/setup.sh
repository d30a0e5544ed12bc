#!/usr/bin/env bash
# Create .venv (if missing) and install the package with its extras.
# torch is pinned by constraints.txt in every pip call, so no CUDA wheels are pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q -c constraints.txt torch==2.13.0
.venv/bin/python -m pip install -q -c constraints.txt -e ".[keops,dev]"
