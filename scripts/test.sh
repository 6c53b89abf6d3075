#!/usr/bin/env bash
# Set everything up, then run the whole test suite; GUI tests run in real windows under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
apt_install xvfb xauth libgl1-mesa-dri xdotool fonts-dejavu-core redis-server x11-xserver-utils  # redis: the distributed tests' broker; xrdb: the HiDPI test
set +e
xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python -m pytest -q "$@"
rc=$?
set -e
exit $rc
