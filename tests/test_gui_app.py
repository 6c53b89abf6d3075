"""The entry point as a user runs it: `python gui_app.py ...` in a subprocess. At this layer because what is
checked — exit codes, messages on stderr, what is imported before the first frame — only exists there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gui_support import needs_display

ROOT = Path(__file__).resolve().parents[1]


def run_app(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    return subprocess.run([sys.executable, str(ROOT / "gui_app.py"), *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_without_a_display_it_says_what_to_do_instead_of_aborting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run([sys.executable, str(ROOT / "gui_app.py"), "--config", str(tmp_path / "c.toml")], env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1
    assert "no display: run under xvfb-run or set DISPLAY" in proc.stderr


def test_an_invalid_config_is_refused_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("[engine]\nmax_workers = 0\n", "utf-8")
    proc = run_app("--config", str(cfg))
    assert proc.returncode == 2
    assert "engine.max_workers" in proc.stderr


@pytest.mark.gui
@needs_display
def test_demo_reaches_its_first_frame_without_loading_the_sdk(tmp_path: Path) -> None:
    proc = run_app("--demo", "--config", str(tmp_path / "config.toml"),
                   env={"CONDUCTOR_EXIT_AFTER_FIRST_FRAME": "1"})
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("FIRST_FRAME"))
    assert line.endswith("sdk_loaded=0")
    assert not (tmp_path / "config.toml").exists(), "an unchanged layout writes nothing"


@pytest.mark.gui
@needs_display
def test_gemini_provider_with_a_key_still_starts_without_the_sdk(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    proc = run_app("--provider", "gemini", "--workspace", str(ws), "--config", str(tmp_path / "config.toml"),
                   env={"CONDUCTOR_EXIT_AFTER_FIRST_FRAME": "1", "GEMINI_API_KEY": "test-key-not-real",
                        "CONDUCTOR_GEMINI_BASE_URL": "http://127.0.0.1:9"})
    assert proc.returncode == 0, proc.stderr
    assert "sdk_loaded=0" in proc.stdout
