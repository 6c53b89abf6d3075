"""Rate-limit storms, outages and a spent daily quota against the fake Gemini server, through the real SDK and
the whole pipeline (plan → 6 tickets on 4 workers → review), with time compressed ×100: what each costs in
requests, attempts and escalations, and how the run ends.

    .venv/bin/python bench/storms.py                                   # this tree
    git archive main | tar -x -C /tmp/main-tree
    .venv/bin/python bench/storms.py --baseline /tmp/main-tree         # this tree and another, side by side

The baseline runs in a subprocess with PYTHONPATH pointing at the other tree. A tree without the per-model gate
(conductor/limits.py) gets its retry delays and the server's Retry-After compressed through its config and the
script instead, so both trees see the same storm in simulated seconds. Scenarios:

  storm60 / storm150   429 (RetryInfo 10 s) on every worker and reviewer request for 60 / 150 s, from the moment
                       the fan-out tickets start
  outage150            503 on every worker request for 150 s
  plan150              429 on planning (Tier 1 and 2) for 150 s
  turn600              one ticket; 503 on its worker requests for 600 s (SDK attempts 3, the old default)
  quota                a per-day quota error on every worker request, from the start

This is a benchmark, not a test: it prints figures and exits 0 unless something crashes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SPEED = 100.0
TICKETS = 6
WORKERS = 4
SCENARIOS = ("storm60", "storm150", "outage150", "plan150", "turn600", "quota")


class ScaledClock:
    def __init__(self, speed: float) -> None:
        self.speed, self._start = speed, time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._start) * self.speed

    def to_real(self, seconds: float) -> float:
        return seconds / self.speed


def run_scenario(name: str) -> dict[str, Any]:
    import conductor.testing.fake_gemini as fg
    from conductor.config import Config
    from conductor.providers.gemini import GeminiProvider
    from conductor.session import Session

    try:
        from conductor.limits import ModelLimits
        gated = True
    except ImportError:
        gated = False
    clock = ScaledClock(SPEED)
    cfg = Config()
    cfg = cfg.updated({"engine": {"max_workers": WORKERS}})
    if not gated:  # compress the old retry layer's real-time delays instead
        cfg.retry.initial_delay_s /= SPEED
        cfg.retry.max_delay_s /= SPEED
    if name == "turn600":
        cfg = cfg.updated({"gemini": {"sdk_retry_attempts": 3}})
    hint = "10s" if gated else f"{10 / SPEED:g}s"
    seconds = {"storm60": 60, "storm150": 150, "outage150": 150, "plan150": 150, "turn600": 600, "quota": 1e12}[name]
    roles = {"plan150": {"tier1", "tier2"}, "outage150": {"tier3"}, "turn600": {"tier3"}}.get(name, {"tier3", "tier4"})
    fault = fg.Script(http_status=503, error_message="overloaded") if name in ("outage150", "turn600") else \
        fg.Script(http_status=429, retry_delay=hint, error_message="Resource has been exhausted")
    if name == "quota":
        fault = _quota_script(fg, cfg.models.tier3, gated)
    tickets = 1 if name == "turn600" else TICKETS
    pipeline = fg.PipelineScript(tickets=tickets)
    lock = threading.Lock()
    state: dict[str, Any] = {"started": None, "refused": 0}

    def responder(record: Any, n: int) -> Any:
        with lock:
            hit = record.role in roles
            fan_out = name in ("plan150", "quota", "turn600") or "TICKET: T1" not in record.user_text
            if state["started"] is None and hit and fan_out:
                state["started"] = clock.now()
            if state["started"] is not None and hit and clock.now() < state["started"] + seconds:
                state["refused"] += 1
                return fault
        return pipeline(record, n)

    t0 = time.monotonic()
    out: dict[str, Any] = {"gated": gated}
    with tempfile.TemporaryDirectory() as d, fg.FakeGeminiServer(responder) as server:
        ws = Path(d) / "ws"
        ws.mkdir()
        (ws / "README.md").write_text("# demo\n")
        provider = GeminiProvider(cfg, api_key="bench-key", base_url=server.url, sdk_retry_initial_delay_s=0.005,
                                  sdk_retry_max_delay_s=0.01)
        kw: dict[str, Any] = {"limits": ModelLimits.from_config(cfg, clock=clock)} if gated else {}
        s = Session(cfg, workspace=ws, tracks_dir=Path(d) / "tracks", provider=provider, linger=False, **kw)
        s.broker.auto_approve({"plan", "tickets", "spawn", "tool"})
        try:
            tids = s.plan_epic("Add a friendly greeting to the README").wait(timeout=300)
            track = s.engines[tids[0]].join(timeout=300)
            out["track"] = track.status.value
            out["second_attempts"] = sum(t.attempts > 1 for t in track.tickets)
            out["escalated"] = sum(bool(t.model_used) and t.model_used != cfg.models.tier3 for t in track.tickets)
            out["failed"] = sum(t.status.value == "failed" for t in track.tickets)
        except Exception as exc:  # noqa: BLE001 - a run that dies is a figure too
            out["track"] = f"{type(exc).__name__}: {str(exc)[:60]}"
        finally:
            s.shutdown()
        out["refused"] = state["refused"]
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


def _quota_script(fg: Any, model: str, gated: bool) -> Any:
    if hasattr(fg.Script, "quota_exhausted"):
        return fg.Script.quota_exhausted(model=model, retry_delay="41s" if gated else f"{41 / SPEED:g}s")
    # an older fake server cannot send QuotaFailure details: give its error body the real details
    plain = fg.error_body

    def with_quota(code: int, message: str, retry_delay: str | None = None) -> dict[str, Any]:
        body = plain(code, message, retry_delay)
        if code == 429:
            body["error"].setdefault("details", []).insert(0, {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel",
                                "quotaDimensions": {"model": model}, "quotaValue": "250"}]})
        return body
    fg.error_body = with_quota
    return fg.Script(http_status=429, retry_delay=f"{41 / SPEED:g}s", error_message="You exceeded your current quota")


def run_tree(tree: Path | None, scenarios: list[str]) -> dict[str, dict[str, Any]]:
    env = dict(os.environ)
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GEMINI_BASE_URL"):
        env.pop(var, None)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    results = {}
    for name in scenarios:
        proc = subprocess.run([sys.executable, __file__, "--one", name], env=env, capture_output=True, text=True,
                              check=False, timeout=900, cwd=tree or Path(__file__).resolve().parent.parent)
        line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        results[name] = json.loads(line) if line.startswith("{") else {"track": f"crashed: {proc.stderr[-200:]}"}
    return results


def fmt(r: dict[str, Any]) -> str:
    if "refused" not in r:
        return str(r.get("track"))
    return (f"{r['refused']:>3} refused req, {r.get('second_attempts', '-')} 2nd attempts, "
            f"{r.get('escalated', '-')} escalated, {r.get('failed', '-')} failed, track {r['track']} ({r['seconds']}s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, help="another source tree to run side by side (e.g. main)")
    ap.add_argument("--only", nargs="*", choices=SCENARIOS, default=list(SCENARIOS))
    ap.add_argument("--one", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_scenario(args.one)))
        return 0
    here = run_tree(None, args.only)
    base = run_tree(args.baseline, args.only) if args.baseline else {}
    print(f"time ×{SPEED:g}; {TICKETS} tickets, {WORKERS} workers (turn600: 1 ticket)")
    for name in args.only:
        print(f"{name:<10} this tree: {fmt(here[name])}")
        if base:
            print(f"{'':<10} baseline : {fmt(base[name])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
