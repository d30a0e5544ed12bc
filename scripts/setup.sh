#!/usr/bin/env bash
# Create .venv (if missing) and install the package with its extras.
# torch is pinned by constraints.txt in every pip call, so no CUDA wheels are pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# System libraries for the open3d viewer (libusb for import; Mesa EGL/GL for headless rendering).
APT_PACKAGES="libusb-1.0-0 libegl1 libgl1 libgl1-mesa-dri"
missing=$(dpkg-query -W -f='${Package} ${Status}\n' $APT_PACKAGES 2>&1 | grep -v " ok installed$" || true)
if [ -z "$missing" ]; then
    :  # all present
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $APT_PACKAGES >/dev/null
else
    echo "note: install $APT_PACKAGES (e.g. sudo apt-get install $APT_PACKAGES) for the open3d viewer" >&2
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q -c constraints.txt torch==2.13.0
.venv/bin/python -m pip install -q -c constraints.txt -e ".[keops,viewer,graph,dev]"
