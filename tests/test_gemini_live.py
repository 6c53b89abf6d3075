"""Opt-in live smoke test against the real Gemini API: Tier 1 plans a tiny epic with a real model.

Skipped unless GEMINI_API_KEY or GOOGLE_API_KEY is set AND CONDUCTOR_LIVE=1:

    CONDUCTOR_LIVE=1 GEMINI_API_KEY=... .venv/bin/pytest -q tests/test_gemini_live.py

It runs in a fresh interpreter, because the test suite's guards (no network, real model requests off,
API keys removed from the environment) are what every other test relies on; the child process switches
real requests on explicitly. It spends a few thousand tokens of the key's quota.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Read at import, before the suite's fixtures clear the keys from the environment.
_KEY_PRESENT = bool(os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY"))
_LIVE = os.environ.get("CONDUCTOR_LIVE") == "1"
_ENV = {k: v for k, v in os.environ.items()}

pytestmark = [pytest.mark.live,
              pytest.mark.skipif(not (_KEY_PRESENT and _LIVE),
                                 reason="live Gemini test: set CONDUCTOR_LIVE=1 and GEMINI_API_KEY (or GOOGLE_API_KEY)")]

CHILD = r"""
import sys, threading
from pathlib import Path
from conductor.config import Config
from conductor.events import EventQueue, Provenance
from conductor.providers.base import real_model_requests
from conductor.providers.gemini import GeminiProvider
from conductor.tiers.call import CallDeps
from conductor.tiers.planning import propose_tracks
from conductor.usage import PriceTable, UsageLedger

cfg = Config()
cfg = cfg.updated({"models": {"tier1": sys.argv[2]}})
cfg = cfg.updated({"thinking": {"tier1": "low"}})
provider = GeminiProvider.from_env(cfg)
print("models offered:", len(provider.list_models()))
deps = CallDeps(provider=provider, events=EventQueue(), ledger=UsageLedger(PriceTable(cfg.prices)), cfg=cfg)
with real_model_requests(True):
    proposal = propose_tracks("Add a --version flag to a tiny Python CLI that prints 1.0", Path(sys.argv[1]), deps,
                              prov=Provenance(trace_id="live", tier=1), cancel=threading.Event(),
                              raw_dir=Path(sys.argv[1]) / "raw")
provider.close()
total = deps.ledger.total()
print("tracks:", [t.title for t in proposal.tracks])
print("usage:", total.calls, "calls,", total.prompt_tokens, "prompt,", total.output_tokens, "output,",
      total.thinking_tokens, "thinking")
assert proposal.tracks and total.prompt_tokens > 0 and total.output_tokens > 0
"""


def test_tier1_plans_a_tiny_epic_with_a_real_model(tmp_path: Path) -> None:
    (tmp_path / "cli.py").write_text("import sys\nprint('hello')\n")
    model = _ENV.get("CONDUCTOR_LIVE_MODEL", "gemini-2.5-flash")
    env = {k: v for k, v in _ENV.items() if k not in ("CONDUCTOR_GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL")}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), model], env=env, capture_output=True,
                          text=True, timeout=300)
    key = env.get("GOOGLE_API_KEY") or env.get("GEMINI_API_KEY") or ""
    output = proc.stdout + proc.stderr
    assert not key or key not in output
    assert proc.returncode == 0, output[-4000:]
    assert "tracks:" in proc.stdout
