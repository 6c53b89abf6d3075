#!/usr/bin/env bash
# Set everything up, then open the app. Without GEMINI_API_KEY/GOOGLE_API_KEY it opens the offline demo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
extra=()
if [ -z "${GEMINI_API_KEY:-}${GOOGLE_API_KEY:-}" ]; then
    echo "No GEMINI_API_KEY set: opening the OFFLINE DEMO (scripted models; its own small git project, kept across starts)."
    extra+=(--demo)
fi
if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    echo "No display found: running under a virtual X server (xvfb-run); you will not see the window." >&2
    apt_install xvfb xauth
    exec xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python gui_app.py "${extra[@]}" "$@"
fi
exec .venv/bin/python gui_app.py "${extra[@]}" "$@"
