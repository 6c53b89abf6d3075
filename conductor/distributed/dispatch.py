"""The desktop's side of remote Tier 3: queue attempts, take everything back, answer approvals, watch leases.

It plugs into the engine where the local thread pool runs attempts (`EngineDeps.remote`); the engine never knows
whether an attempt ran here or elsewhere: it gets the same callbacks (review started, result or error) and merges
the commit through its own merge path, after the worker's ticket branch was fetched from the git remote.

Threads (all retry while Redis restarts; nothing here blocks the engine):
  * dispatcher — pushes the track tip to the git remote, stamps a dispatch number (INCR), enqueues;
  * ingest — XREADGROUP on `{ns}:events`: journals the records (one fsync per batch), then posts the events,
    then XACKs; drops a (request, dispatch, seq) it has seen and any late dispatch's result;
  * watcher — every beat: a started attempt whose lease expired (three missed beats) is reassigned once (a new
    dispatch; the old one's late result is rejected), a second loss fails the attempt; cancels are passed on;
    the dead-letter actions of a monitor are applied.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from pydantic import JsonValue

from conductor.approval_payloads import ToolPayload
from conductor.approval_types import ApprovalDecision, ApprovalRequest
from conductor.approvals import ApprovalBroker
from conductor.attempt import AttemptResult
from conductor.config import Config
from conductor.distributed.api import Outcome, RemoteJob
from conductor.distributed.bus import Bus, advertise
from conductor.distributed.remote_git import DesktopRemote, dispatch_ref, resolve_ref
from conductor.distributed.schema import EVENTS_GROUP, DeadLetter, DlqAction, Lease, request_id
from conductor.distributed.wire import (
    AskApproval,
    AttemptMessage,
    BusEvent,
    DeadLettered,
    Finished,
    Forwarded,
    Journalled,
    Parked,
    Released,
    RemoteError,
    Reviewing,
    Started,
    WireError,
    config_text,
    decode,
    error_from_wire,
)
from conductor.distributed.worker import ACTOR
from conductor.errors import Cancelled, ConductorError
from conductor.events import EventQueue, Notice, Provenance, StreamDelta
from conductor.git import GitError
from conductor.records import Record, UsageLogged
from conductor.store import Journal
from conductor.usage import UsageLedger

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

TRIM_EVERY = 2000
"""Acknowledged events between trims of the events stream (one desktop reads a namespace)."""

@dataclass
class _Outstanding:
    job: RemoteJob
    rid: str
    message: AttemptMessage | None = None
    dispatch: int = 0
    started: bool = False
    started_at: float = 0.0
    reassigned: int = 0
    parked: str | None = None
    dead: str | None = None
    cancel_sent: bool = False
    last_seq: dict[int, int] = field(default_factory=dict)


class Dispatcher:
    """Implements the engine's `RemoteAttempts`: `submit` from the engine's committer thread."""

    def __init__(self, bus: Bus, cfg: Config, *, git_remote: str, events: EventQueue, broker: ApprovalBroker,
                 ledger: UsageLedger, workspace: Path) -> None:
        self.bus = bus
        self.keys = bus.keys
        self.client: redis.Redis = bus.client
        self.cfg = cfg
        self.dcfg = cfg.distributed
        self.git_remote = git_remote
        self.events = events
        self.broker = broker
        self.ledger = ledger
        self.desktop = advertise(bus)
        self.remote = DesktopRemote(workspace, git_remote)
        self.consumer = f"desktop-{socket.gethostname()}"
        """Stable across restarts: after a kill the restarted desktop re-reads what it was handed but never acked."""
        self._out: dict[str, _Outstanding] = {}
        self._lock = threading.RLock()
        self._todo: queue.SimpleQueue[tuple[_Outstanding, dict[str, JsonValue] | None] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self.rejected: list[tuple[str, int]] = []
        """(request id, dispatch) of late results refused (tests and the log)."""
        self.reassigned: list[str] = []
        self._ended: dict[str, _Outstanding] = {}
        """Requests whose outcome the engine got (from their `dispatch`): later results of others are rejected."""
        bus.broker.declare_queue(self.dcfg.queue)
        self._ensure_group()
        self._threads = [threading.Thread(target=fn, name=f"conductor-remote-{name}", daemon=True)
                         for name, fn in (("dispatch", self._dispatch_loop), ("ingest", self._ingest_loop),
                                          ("watch", self._watch_loop))]
        for t in self._threads:
            t.start()

    # -- the engine's side -----------------------------------------------------------------------------------

    def submit(self, job: RemoteJob) -> None:
        rid = request_id(job.track.id, job.ticket.id, job.attempt)
        out = _Outstanding(job, rid)
        with self._lock:
            self._out[rid] = out
        self._todo.put((out, None))

    def close(self) -> None:
        self._stop.set()
        self._todo.put(None)
        for t in self._threads:
            t.join(timeout=10)

    def outstanding(self) -> list[str]:
        with self._lock:
            return sorted(self._out)

    # -- dispatcher thread -----------------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            item = self._todo.get()
            if item is None:
                return
            out, decision = item
            while not self._stop.is_set():
                try:
                    self._send(out, decision)
                    break
                except _REDIS_DOWN as exc:
                    log.warning("broker unreachable while queueing %s (%s); retrying", out.rid, type(exc).__name__)
                    self._stop.wait(0.3)
                except BaseException as exc:  # noqa: BLE001 — git or a bug: the attempt fails, visibly, not silently
                    self._finish(out, exc)
                    break

    def _send(self, out: _Outstanding, decision: dict[str, JsonValue] | None) -> None:
        import dramatiq

        job = out.job
        with self._lock:
            if self._out.get(out.rid) is not out:
                return  # it ended meanwhile (a result raced a reassignment): nothing to send
        if out.message is None:
            tip = job.git.tg.tip()
            resolve = (resolve_ref(out.rid), job.resolve_from) if job.resolve_from else None
            self.remote.publish_track(job.git.branch, tip, resolve)
            d = int(self.client.incr(self.keys.dispatch(out.rid)))
            out.message = AttemptMessage(namespace=self.keys.ns, bus_id=self.desktop.bus_id,
                                         trace_id=job.prov.trace_id, request_id=out.rid, dispatch=d, track=job.track,
                                         ticket=job.ticket, model=job.model, config_toml=config_text(self.cfg),
                                         git_remote=self.git_remote, track_branch=job.git.branch, track_tip=tip,
                                         resolve_from=job.resolve_from, resolve_ref=resolve[0] if resolve else None)
        else:  # a reassignment or a resume: the same attempt from the same tip, under a new dispatch number
            d = int(self.client.incr(self.keys.dispatch(out.rid)))
            out.message = out.message.model_copy(update={"dispatch": d, "resume_decision": decision})
        with self._lock:
            out.dispatch, out.started, out.parked = d, False, None
        body = out.message.model_dump_json()
        self.bus.broker.enqueue(dramatiq.Message(queue_name=self.dcfg.queue, actor_name=ACTOR, args=(body,),
                                                 kwargs={}, options={}))

    # -- ingest thread ---------------------------------------------------------------------------------------

    def _ensure_group(self) -> None:
        import redis as redis_mod

        try:
            self.client.xgroup_create(self.keys.events, EVENTS_GROUP, id="0", mkstream=True)
        except redis_mod.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _ingest_loop(self) -> None:
        import redis as redis_mod

        start = "0"  # first what this consumer was handed but never acked (a crash), then new entries
        acked = 0
        while not self._stop.is_set():
            try:
                replies = self.client.xreadgroup(EVENTS_GROUP, self.consumer, {self.keys.events: start},
                                                 count=500, block=200)
            except redis_mod.ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis lost the group (a restart without persistence)
                    self._ensure_group()
                    continue
                raise
            except _REDIS_DOWN:
                self._stop.wait(0.3)
                continue
            entries = _stream_entries(replies)
            if not entries:
                start = ">"
                continue
            try:
                self._ingest(entries)
            except _REDIS_DOWN:  # Redis, or the journal's disk: nothing of the batch is acked; read it again
                log.warning("remote events not taken in (will retry)", exc_info=True)
                self._stop.wait(0.3)
                start = "0"
                continue
            except Exception:
                log.exception("remote event ingest (the batch is acknowledged: one bad event must not stall all)")
            while not self._stop.is_set():
                try:
                    self.client.xack(self.keys.events, EVENTS_GROUP, *[eid for eid, _ in entries])
                    acked += len(entries)
                    if acked >= TRIM_EVERY:  # what is journalled and acked is no longer needed in Redis
                        self.client.xtrim(self.keys.events, minid=entries[-1][0], approximate=True)
                        acked = 0
                    break
                except _REDIS_DOWN:
                    self._stop.wait(0.3)

    def _ingest(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Journal the batch's records (one fsync per journal), then act on everything in order."""
        decoded: list[tuple[_Outstanding, BusEvent, bool]] = []
        batch_seen: dict[tuple[str, int], int] = {}
        for _eid, fields in entries:
            try:
                ev = decode(fields[b"e"].decode("utf-8"))
            except (WireError, KeyError, UnicodeDecodeError) as exc:
                log.warning("dropped an unreadable event: %s", exc)
                continue
            with self._lock:
                out = self._out.get(ev.request_id)
                live = out is not None
                if out is None:
                    out = self._ended.get(ev.request_id)
            if out is None:  # from before this desktop started (a restart): nobody waits for it
                if isinstance(ev.payload, Started | AskApproval):  # still running somewhere: stop it
                    self.client.set(self.keys.cancel(ev.request_id), "1", ex=24 * 3600)
                continue
            k = (ev.request_id, ev.dispatch)
            if ev.seq <= max(out.last_seq.get(ev.dispatch, 0), batch_seen.get(k, 0)):
                continue  # a duplicate (a redelivered entry, a retried write)
            batch_seen[k] = ev.seq
            decoded.append((out, ev, live))
        per_journal: dict[int, tuple[Journal, list[Record]]] = {}
        for out, ev, live in decoded:
            if not isinstance(ev.payload, Journalled) or out.job.journal is None:
                continue
            # usage is money spent, by whichever dispatch: always journalled; the rest only from the current one
            if isinstance(ev.payload.record, UsageLogged) or (live and ev.dispatch == out.dispatch):
                per_journal.setdefault(id(out.job.journal), (out.job.journal, []))[1].append(ev.payload.record)
        for journal, recs in per_journal.values():
            journal.append_many(recs, sync=True)
        for out, ev, live in decoded:
            if live:
                self._act(out, ev)
            else:
                self._act_late(out, ev)
            out.last_seq[ev.dispatch] = ev.seq  # taken in: a redelivery of it is a duplicate from now on

    def _act_late(self, out: _Outstanding, ev: BusEvent) -> None:
        """An event of a request whose outcome the engine already has (from `out.dispatch`)."""
        match ev.payload:
            case Journalled(record=UsageLogged() as rec):
                self.ledger.record(rec.record)
            case Finished() if ev.dispatch != out.dispatch:
                self._reject(ev, out.dispatch, out.job.prov)
            case Started() | AskApproval():
                self.client.set(self.keys.cancel(out.rid), "1", ex=24 * 3600)
            case _:
                pass

    def _act(self, out: _Outstanding, ev: BusEvent) -> None:
        job = out.job
        current = ev.dispatch == out.dispatch
        match ev.payload:
            case Started(worker=w):
                if current:
                    with self._lock:
                        out.started, out.started_at = True, time.time()
                    log.info("%s dispatch %d started on %s", out.rid, ev.dispatch, w)
            case Forwarded(event=e):
                if current:
                    self.events.post(e)
                    if isinstance(e, StreamDelta) and not e.replayed and job.store is not None and e.tier:
                        job.store.append_output(job.store.ticket_output(job.track.id, job.ticket.id, e.tier), e.text)
            case Journalled(record=rec):
                if isinstance(rec, UsageLogged):  # spent, by whichever dispatch: counted (once, by record id)
                    self.ledger.record(rec.record)
            case AskApproval(request=req):
                if current:
                    self._open_approval(out, req)
            case Reviewing():
                if current:
                    job.on_review()
            case Finished() as f:
                if not current:
                    self._reject(ev, out.dispatch, job.prov)
                    return
                self._result(out, f)
            case Parked(call_id=call_id):
                if current:
                    self._parked(out, call_id)
            case Released(reason=reason):
                if current:  # given back undone by a stopping worker: queue it again now, no loss counted
                    with self._lock:  # dispatch 0 until sent again: the watcher must not take it for a loss
                        out.started, out.dispatch = False, 0
                    log.info("%s dispatch %d released by %s (%s); dispatching it again", out.rid, ev.dispatch,
                             ev.worker, reason)
                    self._todo.put((out, None))  # from the start, as a reassignment (a resume's saved state is gone)
            case DeadLettered(reason=reason):
                if current or ev.dispatch == 0:
                    with self._lock:
                        out.dead, out.started = reason, False
                    self.events.post(Notice(prov=job.prov, level="error", message=(
                        f"{out.rid} is in the dead-letter queue: {reason}. Retry or discard it there (discard "
                        "fails the attempt, and the engine retries the ticket as usual).")))

    def _reject(self, ev: BusEvent, current: int, prov: Provenance | None) -> None:
        """A late result (a worker that was silent, then came back): never merged, only said."""
        self.rejected.append((ev.request_id, ev.dispatch))
        self.events.post(Notice(prov=prov or Provenance(trace_id=ev.trace_id), level="warning", message=(
            f"late result of {ev.request_id} (dispatch {ev.dispatch}, from {ev.worker}) rejected: the attempt was "
            f"reassigned as dispatch {current}")))

    def _result(self, out: _Outstanding, f: Finished) -> None:
        if f.error_type is not None:
            self._finish(out, error_from_wire(f.error_type, f.error))
            return
        if f.commit is not None:
            assert f.branch is not None
            try:
                self.remote.fetch_result(dispatch_ref(out.rid, out.dispatch), f.commit, f.branch)
            except GitError as exc:
                self._finish(out, exc)
                return
        self._finish(out, AttemptResult(f.hint, f.commit))

    def _finish(self, out: _Outstanding, outcome: Outcome) -> None:
        with self._lock:
            if self._out.get(out.rid) is not out:
                return
            del self._out[out.rid]
            self._ended[out.rid] = out
        out.job.on_done(outcome)

    # -- approvals -------------------------------------------------------------------------------------------

    def _open_approval(self, out: _Outstanding, req: ApprovalRequest) -> None:
        payload = req.payload
        if not isinstance(payload, ToolPayload):  # a worker's own attempt only ever asks about its tool calls
            self._finish(out, WireError(f"{out.rid}: a worker asked a {payload.kind} approval ({req.id}); only tool "
                                        "calls are asked from a worker"))
            return
        pending = self.broker.request(req.prov, req.title, payload, request_id=req.id,
                                      human_only=payload.needs_person is not None)
        pending.add_done_callback(functools.partial(self._answered, out.rid))

    def _answered(self, rid: str, decision: ApprovalDecision) -> None:
        """The person (or a desktop policy) decided: the decision is journalled by now (the broker's hooks run
        before it is released). Send it to the waiting worker, or resume the parked attempt with it."""
        with self._lock:
            out = self._out.get(rid)
            parked = out is not None and out.parked == decision.request_id
            if parked and out is not None:
                out.parked = None
        if parked and out is not None:
            self._todo.put((out, decision.to_json()))
            return
        self._push_answer(decision)

    def _push_answer(self, decision: ApprovalDecision) -> None:
        key = self.keys.approval(decision.request_id)
        for _ in range(600):
            try:
                pipe = self.client.pipeline()
                pipe.lpush(key, json.dumps(decision.to_json()))
                pipe.expire(key, 7 * 24 * 3600)
                pipe.execute()
                return
            except _REDIS_DOWN:
                self._stop.wait(0.1)
        log.error("could not send the answer to approval %s: the broker stayed unreachable", decision.request_id)

    def _parked(self, out: _Outstanding, call_id: str) -> None:
        self.events.post(Notice(prov=out.job.prov, message=(
            f"{out.rid} parked while approval {call_id} waits for an answer; it resumes on a worker once answered")))
        try:
            pending = self.broker.get(call_id)
        except ConductorError:
            pending = None
        with self._lock:
            out.started = False
            out.parked = call_id
        decided = pending.decision if pending is not None and pending.done else None
        if pending is None or decided is not None:  # answered while the worker was parking: resume at once
            with self._lock:
                out.parked = None
            self.client.delete(self.keys.approval(call_id))
            self._todo.put((out, decided.to_json() if decided is not None else
                            {"request_id": call_id, "approved": False, "reason": "the approval was lost"}))

    # -- watcher thread --------------------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        interval = max(0.05, self.dcfg.beat_interval_s / 2)
        while not self._stop.wait(interval):
            try:
                self._watch()
                self._dlq_actions()
            except _REDIS_DOWN:
                continue
            except Exception:
                log.exception("remote attempts watcher (it carries on)")

    def _watch(self) -> None:
        with self._lock:
            outs = list(self._out.values())
        for out in outs:
            if out.job.cancel.is_set():
                self._cancel(out)
                continue
            if out.dispatch == 0 or out.parked or out.dead:
                continue
            # Claimed (a worker took it: claim and lease are set in one step, before anything is said) but no
            # lease: its worker is silent — even one killed before its "started" event reached us.
            pipe = self.client.pipeline(transaction=False)
            pipe.exists(self.keys.claim(out.rid, out.dispatch))
            pipe.get(self.keys.lease(out.rid))
            pipe.exists(self.keys.result(out.rid, out.dispatch))
            pipe.exists(self.keys.parked(out.rid))
            claimed, lease_raw, *ended = pipe.execute()
            alive = lease_raw is not None and Lease.model_validate_json(lease_raw).dispatch == out.dispatch
            if not claimed or alive or any(ended):  # queued; alive; or ended (result or parked state on its way)
                continue
            if out.reassigned >= 1:
                self._finish(out, RemoteError(f"{out.rid}: its worker went offline (three missed beats) twice"))
                continue
            with self._lock:
                out.reassigned += 1
                out.started = False
            self.reassigned.append(out.rid)
            log.warning("%s dispatch %d: lease expired; reassigning", out.rid, out.dispatch)
            self.events.post(Notice(prov=out.job.prov, level="warning", message=(
                f"the worker of {out.rid} went silent (three missed beats): reassigned; its late result, if any, "
                "will be rejected")))
            self._todo.put((out, None))

    def _cancel(self, out: _Outstanding) -> None:
        if not out.cancel_sent:
            self.client.set(self.keys.cancel(out.rid), "1", ex=7 * 24 * 3600)
            out.cancel_sent = True
        if not out.started:  # nobody runs it: stale it (a worker that takes it later drops it) and report
            self.client.incr(self.keys.dispatch(out.rid))
            self._finish(out, Cancelled(f"{out.rid} was cancelled before a worker ran it"))

    def _dlq_actions(self) -> None:
        for _ in range(100):
            raw = self.client.rpop(self.keys.dlq_actions)
            if not isinstance(raw, bytes | str):
                return
            try:
                action = DlqAction.model_validate_json(raw)
            except ValueError as exc:
                log.warning("ignored a malformed dead-letter action: %s", exc)
                continue
            entry_raw = self.client.hget(self.keys.dlq, action.entry_id)
            if not isinstance(entry_raw, bytes | str):
                continue
            entry = DeadLetter.model_validate_json(entry_raw)
            self.client.hdel(self.keys.dlq, action.entry_id)
            with self._lock:
                out = self._out.get(entry.request_id)
            if action.action == "discard":
                if out is not None and out.dead is not None:
                    self._finish(out, RemoteError(f"{out.rid} was discarded from the dead-letter queue "
                                                  f"({out.dead})"))
                continue
            if entry.request_id:
                self.client.delete(self.keys.deliveries(entry.request_id))
            if out is not None and out.message is not None:
                with self._lock:
                    out.dead = None
                self._todo.put((out, out.message.resume_decision))
            else:
                import dramatiq

                self.bus.broker.enqueue(dramatiq.Message(queue_name=entry.queue, actor_name=ACTOR,
                                                         args=(entry.payload,), kwargs={}, options={}))


def _stream_entries(replies: object) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of an XREADGROUP reply on one stream (redis-py's reply type is a union of every shape)."""
    if not replies:
        return []
    first = cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], replies)[0]
    return list(first[1])


def _redis_down() -> tuple[type[BaseException], ...]:
    import redis as redis_mod

    return (redis_mod.ConnectionError, redis_mod.TimeoutError, OSError)


_REDIS_DOWN = _redis_down()
