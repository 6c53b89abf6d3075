"""Start-up stays fast: the app's entry points never import the Gemini SDK until a Gemini call is made."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_entry_points_do_not_import_the_sdk() -> None:
    code = ("import sys; import gui_app, conductor.cli, conductor.session, conductor.app, conductor.providers.factory;"
            "bad = sorted(m for m in sys.modules if m.startswith('google.genai'));"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"imported at start-up: {r.stdout} {r.stderr[-2000:]}"
