"""`conductor run` / `conductor tracks`: the whole pipeline headless, with progress on the terminal.

Approvals are answered at the prompt, or by a policy flag (`--approve plan,tickets,spawn`). Without a
terminal, an approval no policy covers is rejected with a reason saying which flag would allow it.

Exit codes: 0 every ticket done · 1 the run stalled (failed/blocked tickets) or was cancelled ·
2 bad arguments or config · 3 no valid plan.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, assert_never

from pydantic import JsonValue

from conductor import redact, terminal
from conductor.approval_payloads import (
    ApprovalPayload,
    CommandPreview,
    FileChangePreview,
    PlanPayload,
    SpawnPayload,
    TicketsPayload,
    ToolPayload,
)
from conductor.approvals import ApprovalRequest, DecidedBy
from conductor.config import Config
from conductor.distributed.commands import add_run_flags, add_worker_parser, attach, cmd_worker
from conductor.errors import ConductorError, ConfigError, MissingApiKey, PlanInvalid, StoreError
from conductor.events import (
    ApprovalRequested,
    ApprovalResolved,
    ErrorRaised,
    Event,
    Notice,
    RecordApplied,
    RunFinished,
    StreamReset,
    ToolCalled,
    ToolResulted,
    TrackLoaded,
)
from conductor.launch import default_config_path, resolve_launch
from conductor.model import Track, TrackStatus
from conductor.providers.factory import PROVIDERS, make_provider, uses_endpoints, with_model_everywhere
from conductor.records import PlanningStep, RecordError, TicketUpdated, TrackUpdated, apply
from conductor.session import PlanHandle, Session

KINDS = ("plan", "tickets", "spawn", "tool")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="conductor", description="Plan, run and review software work with a "
                                                                "tiered team of LLM agents.")
    ap.add_argument("--config", help=f"config file (default: {default_config_path()}; never the current folder "
                                     "or the workspace)")
    ap.add_argument("--tracks-dir", help="tracks folder (default: the config's paths.tracks_dir, else "
                                         "$XDG_DATA_HOME/conductor/tracks)")
    ap.add_argument("--gemini-base-url", help="send Gemini requests (and the API key) to this endpoint instead of "
                                              "Google's")
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="plan an epic and run it, or resume a track")
    what = run.add_mutually_exclusive_group(required=True)
    what.add_argument("--epic", help="the work to do, in plain words")
    what.add_argument("--resume", metavar="TRACK", help="continue a track after a stop or crash")
    what.add_argument("--resume-planning", action="store_true",
                      help="continue planning runs a stop or crash interrupted (pending reviews are asked again)")
    run.add_argument("--workspace", help="the folder the workers may read and change (required with --epic; "
                                         "with --resume, default: the workspace the track recorded)")
    run.add_argument("--force-workspace", action="store_true", help="with --resume: run the track in --workspace "
                                                                    "although it recorded another one")
    run.add_argument("--provider", default="gemini", metavar="NAME",
                     help=f"the endpoint for bare model names: {', '.join(PROVIDERS)}, or one configured in "
                          "[endpoints.NAME] (default: gemini)")
    run.add_argument("--model", help="run every tier (and the whole ladder) on this model of --provider")
    run.add_argument("--base-url", help="send --provider's requests (and its API key) to this URL")
    run.add_argument("--approve", default="", help=f"approval kinds answered yes without asking: comma-separated "
                                                   f"from {','.join(KINDS)} (or 'all'); 'tool' covers writes and "
                                                   "edits only: a command runs unattended only through an exact "
                                                   "approvals.allow_commands rule")
    run.add_argument("--step", action="store_true", help="ask for a spawn approval before every worker")
    run.add_argument("--workers", type=int, help="max concurrent workers (overrides the config)")
    run.add_argument("--latency", type=float, default=0.0, help="scripted provider: seconds before each answer")
    run.add_argument("--chunk-delay", type=float, default=0.0, help="scripted provider: seconds between chunks")
    add_run_flags(run)
    sub.add_parser("tracks", help="list the tracks on disk and their state")
    output = sub.add_parser("output", help="print a ticket's whole stream text (Tier 3, or Tier 4 with --tier 4)")
    output.add_argument("track", help="the track's id (see `conductor tracks`)")
    output.add_argument("ticket", help="the ticket's id")
    output.add_argument("--tier", type=int, choices=(3, 4), default=3, help="3: the worker (default); 4: QA")
    add_worker_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    redact.install_log_filter()
    try:
        launch = resolve_launch(config=args.config, tracks_dir=args.tracks_dir, base_url=args.gemini_base_url)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "tracks":
        return cmd_tracks(launch.cfg, launch.tracks_dir)
    if args.command == "output":
        return cmd_output(launch.tracks_dir, args.track, args.ticket, args.tier)
    if args.command == "worker":
        return cmd_worker(args, launch.cfg)
    if args.base_url is None and args.provider == "gemini":
        args.base_url = launch.base_url  # --gemini-base-url or the environment's Gemini endpoint
    return cmd_run(args, launch.cfg, launch.tracks_dir)


def choose_workspace(args: argparse.Namespace, tracks_dir: Path) -> Path:
    """The folder the workers run in. A new epic needs --workspace. A resumed track runs where it was planned:
    without --workspace that recorded folder; with another --workspace only when --force-workspace says so.
    Raises ConfigError with what to do."""
    given = Path(args.workspace).expanduser().resolve() if args.workspace else None
    if not args.resume:
        if given is None:
            raise ConfigError("--workspace is required with --epic (the folder the workers may read and change; "
                              "it is never assumed to be the current folder)")
        return given
    from conductor.store import TrackStore
    try:
        recorded_text = TrackStore(tracks_dir).load_track(args.resume).track.workspace
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    recorded = Path(recorded_text).resolve() if recorded_text else None
    if given is None:
        if recorded is None:
            raise ConfigError(f"track {args.resume!r} recorded no workspace (it was made by an older version); "
                              "pass --workspace DIR")
        return recorded
    if recorded is not None and given != recorded and not args.force_workspace:
        raise ConfigError(f"track {args.resume!r} was planned for the workspace {str(recorded)!r}, not "
                          f"{str(given)!r}; leave out --workspace to use it, or add --force-workspace")
    return given


def cmd_tracks(cfg: Config, tracks_dir: Path, out: TextIO | None = None) -> int:
    from conductor.store import TrackStore
    out = out or sys.stdout
    tracks = TrackStore(tracks_dir).list_tracks()
    if not tracks:
        print(f"no tracks in {tracks_dir}", file=out)
    for t in tracks:
        done = sum(1 for x in t.tickets if x.status.value in ("done", "skipped"))
        print(f"{t.id:40} {t.status.value:10} {done}/{len(t.tickets)} tickets  {t.title}", file=out)
    return 0


def cmd_output(tracks_dir: Path, track_id: str, ticket_id: str, tier: int, out: TextIO | None = None) -> int:
    """A ticket's text from its track's output log (conductor.output_log), which is not one file per ticket."""
    from conductor.store import TrackStore
    out = out or sys.stdout
    store = TrackStore(tracks_dir)
    if Path(track_id).name != track_id or track_id.startswith(".") or not store.track_dir(track_id).is_dir():
        print(f"error: no track {track_id!r} in {tracks_dir} (see `conductor tracks`)", file=sys.stderr)
        return 2
    try:
        track = store.peek_track(track_id)[0]
    except (StoreError, OSError) as exc:
        print(f"error: track {track_id!r} in {tracks_dir}: {exc}", file=sys.stderr)
        return 2
    if not any(t.id == ticket_id for t in track.tickets):
        print(f"error: track {track_id!r} has no ticket {ticket_id!r}", file=sys.stderr)
        return 2
    out.write(store.read_output(store.ticket_output(track_id, ticket_id, tier)))
    return 0


def _kinds(flag: str) -> set[str]:
    kinds = set(KINDS) if flag.strip() == "all" else {k.strip() for k in flag.split(",") if k.strip()}
    bad = kinds - set(KINDS)
    if bad:
        raise ConfigError(f"--approve: unknown kind(s) {sorted(bad)}; use {','.join(KINDS)} or all")
    return kinds


def cmd_run(args: argparse.Namespace, cfg: Config, tracks_dir: Path) -> int:
    try:
        kinds = _kinds(args.approve)
        if args.step:
            cfg = cfg.updated({"engine": {"step_mode": True}}, source="--step")
        if args.workers:
            cfg = cfg.updated({"engine": {"max_workers": args.workers}}, source="--workers")
        workspace = choose_workspace(args, tracks_dir)
        if not workspace.is_dir():
            raise ConfigError(f"workspace {str(workspace)!r} is not a folder")
        if args.model:
            cfg = with_model_everywhere(cfg, args.model, args.provider)
        elif args.provider not in ("gemini", "scripted") and not uses_endpoints(cfg):
            raise ConfigError(f"--provider {args.provider} needs --model NAME (the configured tiers name Gemini "
                              "models), or name `endpoint:model` per tier in config.toml")
        provider = make_provider(args.provider, cfg, latency_s=args.latency, chunk_delay_s=args.chunk_delay,
                                 base_url=args.base_url)
    except (ConfigError, MissingApiKey, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    session = Session(cfg, workspace=workspace, tracks_dir=tracks_dir, provider=provider, linger=False,
                      force_workspace=bool(args.force_workspace))
    if kinds:
        session.broker.auto_approve(kinds)
    try:
        dist = attach(session, cfg, broker=args.broker, remote=args.remote)
    except ConfigError as exc:
        session.shutdown()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    console = Console(session, interactive=sys.stdin.isatty())
    try:
        return console.run(epic=args.epic, resume=args.resume, resume_planning=args.resume_planning)
    except KeyboardInterrupt:
        print("\ninterrupted: cancelling (state is saved; continue with --resume)", file=sys.stderr)
        for eng in session.engines.values():
            eng.cancel()
        return 1
    finally:
        session.shutdown()
        if dist is not None:
            dist.close()


class Console:
    """Prints events as progress lines and answers approvals at the prompt (main thread only)."""

    def __init__(self, session: Session, *, interactive: bool, out: TextIO | None = None) -> None:
        self.s = session
        self.interactive = interactive
        self.out = out or sys.stdout  # looked up now, not at import, so later redirection is honoured
        self.errors: list[str] = []
        self.tracks: dict[str, Track] = {}
        """The tracks as the records say (the same `apply` as the engine and the GUI)."""

    def run(self, *, epic: str | None, resume: str | None, resume_planning: bool = False) -> int:
        handle = None
        if resume:
            try:
                self.s.run_track(resume)
            except ConductorError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        elif resume_planning:
            epics = self.s.recover()
            if not epics:
                print("no interrupted planning to resume", file=self.out)
                return 0
            print(f"resuming planning: {', '.join(epics)}", file=self.out)
        else:
            assert epic is not None
            handle = self.s.plan_epic(epic)
        while True:
            ev = self.s.events.get(timeout=0.1)
            if ev is not None:
                self.show(ev)
                continue
            planning = any(not h.future.done() for h in self.s.plans.values())
            running = any(e.alive for e in self.s.engines.values())
            if not planning and not running and self.s.events.empty():
                break
        return self.verdict(handle)

    def verdict(self, handle: PlanHandle | None) -> int:
        if handle is not None and handle.future.exception() is not None:
            exc = handle.future.exception()
            print(f"error: {exc}", file=sys.stderr)
            return 3 if isinstance(exc, PlanInvalid) else 1
        self.summary()
        statuses = [e.track.status for e in self.s.engines.values()]
        return 0 if statuses and all(s == TrackStatus.DONE for s in statuses) else 1

    def summary(self) -> None:
        print("\nusage by tier:", file=self.out)
        for tier, tot in sorted(self.s.ledger.by_tier().items()):
            cost = "unknown" if tot.cost_usd is None else f"${tot.cost_usd:.4f}"
            est = f" (ESTIMATED for {tot.estimated} of the calls: the endpoint reported no usage)" \
                if tot.estimated else ""
            print(f"  tier {tier}: {tot.calls} calls, {tot.prompt_tokens} prompt, {tot.output_tokens} output, "
                  f"{tot.thinking_tokens} thinking, {tot.cached_tokens} cached tokens, cost {cost}{est}",
                  file=self.out)

    def show(self, ev: Event) -> None:
        line = self.describe(ev)
        if line:
            print(terminal.safe(line), file=self.out, flush=True)
        if isinstance(ev, ApprovalRequested) and any(r.id == ev.request.id for r in self.s.broker.pending()):
            self.ask(ev.request)

    def describe(self, ev: Event) -> str:
        tag = f"[{ev.ticket_id}]" if ev.ticket_id else f"[{ev.track_id or 'epic'}]"
        if isinstance(ev, RecordApplied):
            return self._apply(ev)
        if isinstance(ev, TrackLoaded):
            self.tracks[ev.track.id] = ev.track
            return f"[{ev.track.id}] track {ev.track.title!r}: {len(ev.track.tickets)} tickets"
        if isinstance(ev, ToolCalled):
            args = json.dumps(ev.args, ensure_ascii=False)
            shown = args if len(args) <= 160 else args[:159] + "… (shown in full when approved)"
            return f"{tag} tool {ev.name} {shown}"
        if isinstance(ev, ToolResulted):
            return f"{tag} tool {ev.name} {'ok' if ev.ok else 'failed'}{' (from journal)' if ev.replayed else ''}: " \
                   f"{ev.summary}"
        if isinstance(ev, ApprovalResolved):
            return f"{tag} {ev.approval_kind} approval {'approved' if ev.approved else 'rejected'} by " \
                   f"{('policy ' + (ev.policy or '')) if ev.by == DecidedBy.POLICY else ev.by.value}" \
                   f"{' (edited)' if ev.edited else ''}{': ' + ev.reason if ev.reason and not ev.approved else ''}"
        if isinstance(ev, StreamReset):
            return f"{tag} retrying: {ev.reason}"
        if isinstance(ev, ErrorRaised):
            self.errors.append(ev.message)
            return f"{tag} ERROR {ev.error_type}: {ev.message.splitlines()[0]}"
        if isinstance(ev, Notice):
            return f"{tag} {ev.level}: {ev.message}"
        if isinstance(ev, RunFinished):
            return f"{tag} run finished: {ev.status} {ev.counts}"
        return ""

    def _apply(self, ev: RecordApplied) -> str:
        """Apply a record to this console's copy of its track, and say what changed."""
        rec = ev.record
        if isinstance(rec, PlanningStep):
            return f"[epic] {rec.detail}"
        track = self.tracks.get(ev.track_id or "")
        if track is None:
            return ""
        old = track.find(rec.ticket_id) if isinstance(rec, TicketUpdated) else None
        old_status = old.status.value if old is not None else None
        old_track = track.status.value
        try:
            apply(track, rec)
        except RecordError as exc:
            return f"[{track.id}] warning: {exc}"
        if isinstance(rec, TicketUpdated) and rec.fields.status is not None and old is not None:
            why = f" — {rec.reason}" if rec.reason else ""
            model = f" ({old.model_used}, attempt {old.attempts})" if rec.fields.status == "running" else ""
            return f"[{rec.ticket_id}] {old_status or '-'} -> {rec.fields.status.value}{model}{why}"
        if isinstance(rec, TrackUpdated) and rec.fields.status is not None:
            return f"[{track.id}] {old_track} -> {rec.fields.status.value}"
        return ""

    MAX_LINES = 60
    """Lines of one approval's details or diff on screen; the rest goes to a file that the screen names."""

    def ask(self, req: ApprovalRequest) -> None:
        """Show everything the person approves: redacted, escaped, and never cut without saying where the rest
        is (tracks/<track>/approvals/<request>.details.txt and .diff.txt)."""
        folder = self._approval_dir(req)
        print(terminal.safe(f"\n=== {req.kind.value} approval {req.id}: {req.title}"), file=self.out)
        print(terminal.safe(f"    from: {req.prov.describe() or 'planning'}"), file=self.out)
        view = approval_view(req.payload)
        if view.writes_to:
            print(terminal.safe(f"    writes to: {view.writes_to}"), file=self.out)
        print(terminal.bounded(json.dumps(view.details, indent=2, ensure_ascii=False), max_lines=self.MAX_LINES,
                               full_path=folder / f"{req.id}.details.txt"), file=self.out)
        if view.diff:
            print(terminal.bounded(view.diff, max_lines=self.MAX_LINES, full_path=folder / f"{req.id}.diff.txt"),
                  file=self.out)
        if not self.interactive:
            how = ("a command runs unattended only through an exact approvals.allow_commands rule"
                   if view.is_command else f"pass --approve {req.kind.value} to allow")
            self.s.resolve_approval(req.id, approved=False, reason=f"no terminal to ask; {how}")
            return
        self._prompt(req, view.can_remember)

    def _approval_dir(self, req: ApprovalRequest) -> Path:
        store = self.s.store
        if req.prov.track_id:
            return store.track_dir(req.prov.track_id) / "approvals"
        return store.epic_dir(req.prov.trace_id or "unknown") / "approvals"

    def _prompt(self, req: ApprovalRequest, always: bool) -> None:
        answer = input(f"approve? [y]es / [n]o{' / [a]lways for this track' if always else ''}: ").strip().lower()
        if answer in ("y", "yes") or (always and answer in ("a", "always")):
            self.s.resolve_approval(req.id, approved=True, remember=answer.startswith("a"))
        else:
            reason = input("reason (returned to the model): ").strip() or "rejected at the prompt"
            self.s.resolve_approval(req.id, approved=False, reason=reason)

@dataclass(frozen=True)
class ApprovalView:
    """What the prompt shows of one approval: its details (JSON), the diff apart, the file really written."""

    details: dict[str, JsonValue]
    diff: str | None = None
    writes_to: str | None = None
    is_command: bool = False
    can_remember: bool = False


def approval_view(p: ApprovalPayload) -> ApprovalView:
    match p:
        case ToolPayload(preview=FileChangePreview() as f):
            return ApprovalView(p.model_dump(mode="json", exclude={"preview": {"diff"}}), f.diff or None, f.target,
                                can_remember=p.can_remember)
        case ToolPayload(preview=CommandPreview()):
            return ApprovalView(p.model_dump(mode="json"), is_command=True, can_remember=p.can_remember)
        case ToolPayload():
            return ApprovalView(p.model_dump(mode="json"), can_remember=p.can_remember)
        case PlanPayload() | TicketsPayload() | SpawnPayload():
            return ApprovalView(p.model_dump(mode="json"))
        case _:
            assert_never(p)


if __name__ == "__main__":
    raise SystemExit(main())

