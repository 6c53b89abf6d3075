"""`conductor worker`: a Dramatiq worker process that runs Tier 3 attempts sent by a desktop.

Each attempt runs through the same code as a local one (conductor.attempt.run_attempt: the worker tier, the tool
gate, the QA tier, one commit in the attempt's own worktree) on a clone of the desktop's git remote; only the
plumbing differs — events, journal records and approval requests go back over the bus, approvals come back
by BLPOP, and the commit is pushed instead of merged.

Per message, in order (each step makes at-least-once delivery harmless):
  1. parse and check it (malformed, or from another broker/namespace → dead-letter queue with the reason);
  2. drop it when the desktop has since reassigned the request (a newer dispatch number);
  3. count the delivery (INCR; a SIGKILL redelivery is no Dramatiq retry) → more than `max_deliveries`: poison,
     dead-lettered, and the desktop told;
  4. claim the dispatch with its lease in one step (SET NX) → a duplicate is dropped;
  5. run, with the lease refreshed every beat; a long approval wait parks the attempt (state saved, acked);
  6. publish the result (written before Dramatiq acks) and SET NX the result key.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from conductor import redact
from conductor.approval_payloads import ToolPayload
from conductor.approval_types import ApprovalDecision, ApprovalRequest, DecidedBy
from conductor.approvals import ApprovalBroker
from conductor.attempt import EngineDeps, Workbench, run_attempt
from conductor.config import Config
from conductor.distributed.bus import Bus, desktop_of, refuse_gevent
from conductor.distributed.publisher import EventPublisher, RequestChannel
from conductor.distributed.remote_git import WorkerClones, dispatch_ref
from conductor.distributed.schema import (
    ATTEMPTS_QUEUE,
    BEAT_INTERVAL_S,
    MISSED_BEATS_OFFLINE,
    DeadLetter,
    DesktopInfo,
    Lease,
    WorkerInfo,
)
from conductor.distributed.wire import (
    AskApproval,
    AttemptMessage,
    DeadLettered,
    Finished,
    Forwarded,
    Journalled,
    Parked,
    Released,
    Reviewing,
    Started,
    WireError,
    decision_from_wire,
    is_forwarded,
    parse_attempt,
)
from conductor.errors import Cancelled
from conductor.events import E, EventQueue, Provenance
from conductor.git import (
    AttemptKey,
    TrackGit,
    open_repository,
)
from conductor.gitwork import GitWork, git_settings
from conductor.limits import ModelLimits
from conductor.providers.base import Provider
from conductor.records import GitAttemptCommitted, GitAttemptStarted, Record
from conductor.store import Journal, JournalEntry
from conductor.tiers.call import CallDeps
from conductor.tools import CommandPolicy, workspace_toolbox
from conductor.usage import PriceTable, UsageLedger

if TYPE_CHECKING:
    from dramatiq import Worker as DramatiqWorker

log = logging.getLogger(__name__)
T = TypeVar("T")

ACTOR = "conductor_attempt"
KEEP_S = 7 * 24 * 3600
"""How long claims, results and delivery counts are kept (Dramatiq's own dead-message TTL)."""

_CLAIM = """
local holder = redis.call('get', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('set', KEYS[2], ARGV[3], 'PX', ARGV[4])
redis.call('zadd', KEYS[3], ARGV[5], ARGV[6])
return 1
"""


_REFRESH = """
local held = redis.call('get', KEYS[1])
if held and cjson.decode(held)['dispatch'] > tonumber(ARGV[2]) then
  return 0
end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""
"""A lease is refreshed only by its own dispatch or an older one's lapse: a worker back from a SIGSTOP never
takes the lease of the dispatch that replaced it."""

_RELEASE = """
local held = redis.call('get', KEYS[1])
if held and cjson.decode(held)['dispatch'] == tonumber(ARGV[1]) then
  redis.call('del', KEYS[1])
  redis.call('zrem', KEYS[2], ARGV[2])
end
return 0
"""


class ParkRequested(Cancelled):
    """The attempt waits on a person longer than the worker holds a thread: it stops here and resumes later."""


@dataclass
class _Running:
    message: AttemptMessage
    cancel: threading.Event = field(default_factory=threading.Event)
    acquired: float = field(default_factory=time.time)
    parked: ApprovalRequest | None = None
    waiting: ApprovalRequest | None = None
    """The approval the attempt waits on now (a shutdown parks it on this one)."""
    released: bool = False
    """Cancelled by this worker's shutdown: given back undone (`Released`), never reported as failed."""
    superseded: bool = False
    """A newer dispatch of the same request came to this process (it was reassigned): this one stops first."""
    ended: threading.Event = field(default_factory=threading.Event)


class _ForwardingEvents(EventQueue):
    """The attempt's event queue: what the desktop shows goes over the bus, nothing stays here."""

    def __init__(self, chan: RequestChannel) -> None:
        super().__init__()
        self._chan = chan

    def post(self, event: E) -> E:
        if is_forwarded(event):
            self._chan.send(Forwarded(event))
        return event


class _ForwardingJournal(Journal):
    """The attempt's own journal file (so a parked attempt resumes by replay) whose records also go to the
    desktop's journal — but not the git bookkeeping of this machine's worktrees, which the desktop's reconcile
    must never act on."""

    def __init__(self, path: Path, chan: RequestChannel) -> None:
        super().__init__(path)
        self._chan = chan

    def append_many(self, recs: list[Record], *, sync: bool = True,
                    before_sync: Callable[[], None] | None = None) -> list[JournalEntry]:
        entries = super().append_many(recs, sync=sync, before_sync=before_sync)
        for rec in recs:
            if not isinstance(rec, GitAttemptStarted | GitAttemptCommitted):
                self._chan.send(Journalled(rec))
        return entries


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


class WorkerRuntime:
    """One worker process (or the desktop's own worker threads): the actor, the beats, the attempts."""

    def __init__(self, bus: Bus, *, name: str, threads: int, workdir: Path, provider: Provider,
                 queue: str = ATTEMPTS_QUEUE, beat_interval_s: float = BEAT_INTERVAL_S,
                 check_desktop: bool = True) -> None:
        refuse_gevent("conductor worker")
        self.bus = bus
        self.keys = bus.keys
        self.client = bus.client
        self.name = name
        self.threads = threads
        self.workdir = workdir
        self.provider = provider
        self.queue = queue
        self.beat_interval_s = beat_interval_s
        self.desktop: DesktopInfo | None = desktop_of(bus) if check_desktop else None
        self.clones = WorkerClones(workdir / "repos")
        self.ledger = UsageLedger(PriceTable.for_config(Config()))
        self._limits: ModelLimits | None = None
        self._gits: dict[tuple[str, str, str, str, str], GitWork] = {}
        self.current: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self.done = 0
        self.started = time.time()
        self._stop = threading.Event()
        self._stopping = threading.Event()
        """Set first on shutdown: messages handed over from now on go back to the queue untouched."""
        self._waiters: set[threading.Thread] = set()
        self.publisher = EventPublisher(self.client, self.keys.events, stopped=self._stop.is_set)
        self._claim = self.client.register_script(_CLAIM)
        self._refresh = self.client.register_script(_REFRESH)
        self._release = self.client.register_script(_RELEASE)
        self._beats: threading.Thread | None = None
        self.dramatiq: DramatiqWorker | None = None
        import dramatiq

        # Bound to OUR broker, explicitly: never Dramatiq's global one (set or not, at import time or later).
        self.actor = dramatiq.Actor(self.handle, broker=bus.broker, actor_name=ACTOR, queue_name=queue,
                                    priority=0, options={"max_retries": 0})

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        from dramatiq import Worker

        self._beat()
        self._beats = threading.Thread(target=self._beat_loop, name="conductor-worker-beats", daemon=True)
        self._beats.start()
        self.bus.broker.emit_after("process_boot")
        worker = Worker(self.bus.broker, queues={self.queue}, worker_threads=self.threads, worker_timeout=200)
        worker.queue_prefetch = self.threads  # prefetch is per process: more would sit idle behind busy threads
        worker.start()
        self.dramatiq = worker

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop promptly, losing nothing: an attempt waiting on a person is parked (its answer resumes it on any
        worker), any other running attempt is cancelled and given back to the desktop (`Released`: dispatched
        again at once), a message handed over meanwhile is re-queued. Threads that use the bus end before it
        is closed (by the caller)."""
        self._stopping.set()
        with self._lock:
            running = list(self.current.values())
        for r in running:
            waiting = r.waiting
            if waiting is not None:
                r.parked = waiting
            else:
                r.released = True
            r.cancel.set()
        if self.dramatiq is not None:
            self.dramatiq.stop(timeout=int(timeout_s * 1000))
        self._stop.set()
        if self._beats is not None:
            self._beats.join()
        with self._lock:
            waiters = list(self._waiters)
        for t in waiters:  # approval waits end on their attempt's cancel (a BLPOP returns within a second)
            t.join()
        self.publisher.close()
        try:
            self.client.zrem(self.keys.workers, self.name)
            self.client.delete(self.keys.worker(self.name))
        except OSError:
            pass

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.beat_interval_s):
            self._beat()

    def _beat(self) -> None:
        """Say this worker is alive, refresh the lease of each running attempt, and pick up cancels."""
        import redis as redis_mod

        now = time.time()
        with self._lock:
            running = dict(self.current)
        info = WorkerInfo(name=self.name, host=socket.gethostname(), pid=os.getpid(), threads=self.threads,
                          started=self.started, last_beat=now, beat_interval_s=self.beat_interval_s,
                          current=sorted(running), done=self.done, stopping=self._stop.is_set())
        ttl_ms = int(self.beat_interval_s * MISSED_BEATS_OFFLINE * 1000)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.keys.worker(self.name), info.model_dump_json(), px=ttl_ms * 4)
            pipe.zadd(self.keys.workers, {self.name: now})
            for rid, r in running.items():
                lease = Lease(request_id=rid, dispatch=r.message.dispatch, worker=self.name, acquired=r.acquired,
                              renewed=now, ttl_s=ttl_ms / 1000)
                self._refresh(keys=[self.keys.lease(rid)], args=[lease.model_dump_json(), r.message.dispatch, ttl_ms],
                              client=pipe)
                pipe.zadd(self.keys.leases, {rid: now + ttl_ms / 1000})
            for rid in running:
                pipe.exists(self.keys.cancel(rid))
                pipe.get(self.keys.dispatch(rid))
            replies = pipe.execute()
        except (redis_mod.ConnectionError, redis_mod.TimeoutError, OSError) as exc:
            log.warning("heartbeat not written (%s); the broker is unreachable", type(exc).__name__)
            return
        checks = replies[2 + 2 * len(running):]
        for i, r in enumerate(running.values()):
            cancelled, current = checks[2 * i], checks[2 * i + 1]
            if current is not None and int(current) > r.message.dispatch:
                r.superseded = True  # reassigned while this worker was silent: its worktree is dropped, not kept
                r.cancel.set()
            elif cancelled:
                r.cancel.set()  # cancelled by the person

    # -- one message -----------------------------------------------------------------------------------------

    def handle(self, body: object = None, *extra: object, **kw: object) -> None:
        """The actor: never raises (a failed attempt is a result; a bad message is a dead letter)."""
        raw = body if isinstance(body, str) else json.dumps([body, *extra, kw], default=repr)
        try:
            if not isinstance(body, str) or extra or kw:
                raise WireError("malformed message: the actor takes one JSON string (the attempt)")
            msg = parse_attempt(body)
        except WireError as exc:
            self._dead_from_raw(raw, str(exc))
            return
        why = self._foreign(msg)
        if why is not None:
            self._dead_letter(raw, why, msg, notify=False)
            return
        rid, d = msg.request_id, msg.dispatch
        # a stale dispatch is dropped before it is counted: only deliveries of the live one make a poison attempt
        current = self._retry(lambda: self.client.get(self.keys.dispatch(rid)))
        if current is not None and int(current) > d:
            log.info("dropping %s dispatch %d: reassigned as dispatch %s", rid, d, int(current))
            return
        if self._stopping.is_set():  # handed over while this worker stops: back to the queue, not counted
            self._requeue(body)
            return
        n = int(self._retry(lambda: self.client.incr(self.keys.deliveries(rid))))
        self._retry(lambda: self.client.expire(self.keys.deliveries(rid), KEEP_S))
        limit = msg.config.distributed.max_deliveries
        if n > limit:
            self._dead_letter(raw, f"delivered {n} times (max {limit}): a poison attempt (it keeps killing or "
                                   "losing its worker)", msg, deliveries=n)
            return
        ttl_ms = int(self.beat_interval_s * MISSED_BEATS_OFFLINE * 1000)
        now = time.time()
        lease = Lease(request_id=rid, dispatch=d, worker=self.name, acquired=now, renewed=now, ttl_s=ttl_ms / 1000)
        token = f"{self.name}:{uuid.uuid4().hex}"  # ours: a claim retried after a lost reply is still ours
        claimed = self._retry(lambda: self._claim(
            keys=[self.keys.claim(rid, d), self.keys.lease(rid), self.keys.leases],
            args=[token, KEEP_S, lease.model_dump_json(), ttl_ms, now + ttl_ms / 1000, rid]))
        if not claimed:
            log.info("dropping %s dispatch %d: already claimed (a duplicate or a redelivery)", rid, d)
            return
        log.info("running %s dispatch %d (delivery %d)", rid, d, n)
        running = _Running(msg, acquired=now)
        with self._lock:
            older = self.current.get(rid)
            self.current[rid] = running
        if older is not None:
            # reassigned onto this same worker while its older dispatch still runs here (this worker looked
            # offline): both would use the attempt's one branch and worktree ("index.lock: File exists",
            # "worktree ... was released"). The older one stops and cleans up first.
            log.info("%s dispatch %d: stopping its older dispatch %d here first", rid, d, older.message.dispatch)
            older.superseded = True
            older.cancel.set()
            older.ended.wait()
        if self._stopping.is_set():  # the stop began after the check above but missed this one: give it back
            running.released = True
            running.cancel.set()
        chan = RequestChannel(self.publisher, rid, msg.trace_id, d, self.name)
        try:
            chan.send(Started(self.name))
            try:
                outcome: Finished | Parked | Released = self._run(msg, chan, running)
            except ParkRequested:
                assert running.parked is not None
                outcome = Parked(running.parked.id)
            except BaseException as exc:  # noqa: BLE001 — every failure is the attempt's result, for the engine
                outcome = (Released(f"the worker stopped ({type(exc).__name__})") if running.released else
                           Finished(None, None, None, type(exc).__name__, redact.text(str(exc))))
            chan.send(outcome, wait=True)  # written before Dramatiq acks the message
            log.info("%s dispatch %d: %s", rid, d, outcome)
            if isinstance(outcome, Finished):
                result = json.dumps({"worker": self.name, "commit": outcome.commit, "hint": outcome.hint})
                self._retry(lambda: self.client.set(self.keys.result(rid, d), result, nx=True, ex=KEEP_S))
        finally:
            with self._lock:
                if self.current.get(rid) is running:
                    del self.current[rid]
                self.done += 1
            try:
                self._release(keys=[self.keys.lease(rid), self.keys.leases], args=[d, rid])
            except (OSError, redis_errors()):
                pass  # the lease expires on its own
            running.ended.set()

    def _requeue(self, body: str) -> None:
        import dramatiq

        self._retry(lambda: self.bus.broker.enqueue(dramatiq.Message(
            queue_name=self.queue, actor_name=ACTOR, args=(body,), kwargs={}, options={})))

    def _retry(self, fn: Callable[[], T]) -> T:
        """`fn()`, retried while Redis is unreachable (a restart): the actor must not fail a message for that,
        or Dramatiq would dead-letter a perfectly good attempt."""
        import redis as redis_mod

        while True:
            try:
                return fn()
            except (redis_mod.ConnectionError, redis_mod.TimeoutError) as exc:
                log.warning("broker unreachable (%s); retrying", type(exc).__name__)
                self._stop.wait(0.3)

    def _foreign(self, msg: AttemptMessage) -> str | None:
        if msg.namespace != self.keys.ns:
            return (f"sent for namespace {msg.namespace!r} but read from {self.keys.ns!r}: the desktop and this "
                    "worker use different namespaces")
        if self.desktop is not None and msg.bus_id != self.desktop.bus_id:
            self.desktop = self._retry(lambda: desktop_of(self.bus))  # it may have re-advertised since
            if msg.bus_id != self.desktop.bus_id:
                return (f"sent through another broker (bus {msg.bus_id[:8]}, this one is {self.desktop.bus_id[:8]}): "
                        "the desktop and this worker are pointed at different Redis servers")
        return None

    def _dead_from_raw(self, raw: str, reason: str) -> None:
        rid, trace, dispatch = "", "", 0
        try:
            d = json.loads(raw)
            if isinstance(d, dict):
                rid, trace, dispatch = str(d.get("request_id", "")), str(d.get("trace_id", "")), int(
                    d.get("dispatch", 0))
        except (ValueError, TypeError):
            pass
        self._store_dead(raw, reason, rid, trace, 1)
        if rid:  # the desktop learns why its attempt will never report
            RequestChannel(self.publisher, rid, trace, dispatch, self.name).send(DeadLettered(reason), wait=True)

    def _dead_letter(self, raw: str, reason: str, msg: AttemptMessage, *, deliveries: int = 1,
                     notify: bool = True) -> None:
        self._store_dead(raw, reason, msg.request_id, msg.trace_id, deliveries)
        if notify:
            RequestChannel(self.publisher, msg.request_id, msg.trace_id, msg.dispatch, self.name).send(
                DeadLettered(reason), wait=True)

    def _store_dead(self, raw: str, reason: str, rid: str, trace: str, deliveries: int) -> None:
        from dramatiq.middleware import CurrentMessage

        current = CurrentMessage.get_current_message()
        entry = DeadLetter(entry_id=f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}", queue=self.queue,
                           reason=reason, payload=raw, deliveries=deliveries, time=time.time(),
                           message_id=current.message_id if current is not None else "", request_id=rid,
                           trace_id=trace, worker=self.name)
        self._retry(lambda: self.client.hset(self.keys.dlq, entry.entry_id, entry.model_dump_json()))
        log.warning("dead-lettered %s: %s", rid or "a message", reason)

    # -- the attempt -----------------------------------------------------------------------------------------

    def _git_for(self, clone: Path, track_id: str, cfg: Config) -> GitWork:
        """One GitWork per track and clone in this process, as on the desktop: its attempts share the locks that
        keep two threads from taking the same parked worktree."""
        key = (str(clone), track_id, cfg.git.track_branch, cfg.git.ticket_branch, cfg.git.merge_strategy)
        with self._lock:
            git = self._gits.get(key)
            if git is None:
                settings = git_settings(cfg.git, self.workdir / "worktrees" / clone.name)
                git = GitWork(TrackGit(open_repository(clone), track_id, settings), cfg.git, self.workdir / "tracks")
                self._gits[key] = git
            return git

    def _limits_for(self, cfg: Config) -> ModelLimits:
        with self._lock:
            if self._limits is None:
                self._limits = ModelLimits.from_config(cfg)
            return self._limits

    def _run(self, msg: AttemptMessage, chan: RequestChannel, running: _Running) -> Finished:
        cfg = msg.config
        track_id, ticket_id, attempt = msg.ids()
        resolve = (msg.resolve_ref, msg.resolve_from) if msg.resolve_from and msg.resolve_ref else None
        clone = self.clones.prepare(msg.git_remote, msg.track_branch, msg.track_tip, resolve)
        git = self._git_for(clone, track_id, cfg)
        tg = git.tg
        if tg.branch != msg.track_branch:
            raise WireError(f"the track branch is {msg.track_branch!r} on the desktop but {tg.branch!r} here")
        key = AttemptKey(track_id, ticket_id, attempt)
        journal_path = self.workdir / "journals" / f"{_safe(msg.request_id)}-d{msg.dispatch}.jsonl"
        parked = self._load_parked(msg, journal_path, git, key)
        journal = _ForwardingJournal(journal_path, chan)
        abroker = ApprovalBroker(None)
        if parked is not None and msg.resume_decision is not None:
            abroker.add_policy("resumed", _answer_parked(parked, decision_from_wire(msg.resume_decision)))
        abroker.on_requested.append(lambda req: self._ask(req, chan, abroker, running, cfg))
        calls = CallDeps(provider=self.provider, events=_ForwardingEvents(chan), ledger=self.ledger, cfg=cfg,
                         limits=self._limits_for(cfg))
        deps = EngineDeps(cfg=cfg, call=calls, broker=abroker, workspace=clone, toolbox=workspace_toolbox(clone),
                          allow=CommandPolicy.from_config(cfg), git=git, protected=(self.workdir,))
        bench = Workbench(track_id, deps, journal)
        prov = Provenance(trace_id=msg.trace_id, track_id=track_id, ticket_id=ticket_id, tier=3, attempt=attempt)
        try:
            res = run_attempt(bench, msg.track, msg.ticket, msg.model, prov=prov, cancel=running.cancel,
                              on_review=lambda: chan.send(Reviewing()), resolve_from=msg.resolve_from)
        except Cancelled:
            if running.parked is not None:
                self._park(msg, running.parked, journal_path, git, key)
                raise ParkRequested(f"parked on approval {running.parked.id}") from None
            if running.released or running.superseded:  # run again from the start (here or elsewhere)
                self._discard(git, key)
                journal_path.unlink(missing_ok=True)
            raise
        branch = tg.attempt_branch(key)
        if res.commit is not None:
            self.clones.push_result(msg.git_remote, res.commit, branch, dispatch_ref(msg.request_id, msg.dispatch))
        journal_path.unlink(missing_ok=True)
        return Finished(res.hint, res.commit, branch)

    # -- approvals: asked on the desktop, answered back by BLPOP; a long wait parks ---------------------------

    def _ask(self, req: ApprovalRequest, chan: RequestChannel, abroker: ApprovalBroker, running: _Running,
             cfg: Config) -> None:
        chan.send(AskApproval(req), wait=True)
        t = threading.Thread(target=self._await_answer, args=(req, abroker, running, cfg.distributed.approval_wait_s),
                             name=f"conductor-approval-{req.id[:16]}", daemon=True)
        with self._lock:
            self._waiters.add(t)
        t.start()

    def _await_answer(self, req: ApprovalRequest, abroker: ApprovalBroker, running: _Running, wait_s: float) -> None:
        running.waiting = req
        try:
            self._answer_loop(req, abroker, running, wait_s)
        finally:
            running.waiting = None
            with self._lock:
                self._waiters.discard(threading.current_thread())

    def _answer_loop(self, req: ApprovalRequest, abroker: ApprovalBroker, running: _Running, wait_s: float) -> None:
        import redis as redis_mod

        from conductor.errors import ApprovalError

        deadline = time.monotonic() + wait_s
        key = self.keys.approval(req.id)
        while not running.cancel.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                running.parked = req  # nobody answered in time: free this thread; the answer resumes it
                running.cancel.set()
                return
            try:
                item = self.client.blpop([key], timeout=min(1.0, left))
            except (redis_mod.ConnectionError, redis_mod.TimeoutError, OSError):
                running.cancel.wait(0.2)  # the broker restarts: the answer waits in the list
                continue
            if item is None:
                continue
            try:
                answer = decision_from_wire(json.loads(item[1]))
            except (WireError, ValueError) as exc:
                log.warning("approval answer for %s not usable: %s", req.id, exc)
                continue
            try:  # an edit made on the desktop is validated HERE, by the tool it is for, before anything runs
                decision = abroker.decide(req.id, approved=answer.approved, payload=answer.payload,
                                          reason=answer.reason, remember=answer.remember, by=answer.by)
            except ApprovalError as exc:  # settled meanwhile (a cancel): nothing left to answer
                log.info("approval %s already settled: %s", req.id, exc)
                return
            except ValueError as exc:
                decision = ApprovalDecision(request_id=req.id, approved=False,
                                            reason=f"the edited request was refused here: {exc}", by=answer.by)
            try:
                abroker.finish(decision)
            except ApprovalError as exc:
                log.warning("approval %s already settled: %s", req.id, exc)
            return

    def _park(self, msg: AttemptMessage, req: ApprovalRequest, journal_path: Path, git: GitWork,
              key: AttemptKey) -> None:
        """Save what the attempt did so far (its journal: model turns and tool results; its worktree's changes)
        and drop the worktree: any worker resumes it from this."""
        tg = git.tg
        entry = tg.attempt_entry(key)
        diff = b""
        base = msg.track_tip
        if entry is not None:
            tg.repo.git.run(entry.path, "add", "--all")
            diff = tg.repo.git.run(entry.path, "diff", "--cached", "--binary", base).stdout
            tg.repo.run("worktree", "remove", "--force", str(entry.path))  # under the repository's worktree lock
        tg.repo.run("branch", "-D", tg.attempt_branch(key), ok=(0, 1))
        state = {"journal": journal_path.read_text("utf-8") if journal_path.exists() else "",
                 "diff": base64.b64encode(diff).decode(), "base": base, "request": req.to_json()}
        self._retry(lambda: self.client.set(self.keys.parked(msg.request_id), json.dumps(state), ex=KEEP_S))
        journal_path.unlink(missing_ok=True)

    def _discard(self, git: GitWork, key: AttemptKey) -> None:
        """Drop what an attempt given back left: its worktree (kept when dirty) and branch, so its next dispatch
        in this process starts clean."""
        tg = git.tg
        entry = tg.attempt_entry(key)
        if entry is not None:
            tg.repo.run("worktree", "remove", "--force", "--force", str(entry.path), ok=(0, 128))
        tg.repo.run("branch", "-D", tg.attempt_branch(key), ok=(0, 1))

    def _load_parked(self, msg: AttemptMessage, journal_path: Path, git: GitWork,
                     key: AttemptKey) -> ApprovalRequest | None:
        if msg.resume_decision is None:
            return None
        raw = self.client.get(self.keys.parked(msg.request_id))
        if raw is None:
            raise WireError(f"resume of {msg.request_id}: no parked state in {self.keys.parked(msg.request_id)}")
        state = json.loads(raw)
        self.client.delete(self.keys.parked(msg.request_id))  # resumed: the lease guards it from here on
        journal_path.parent.mkdir(parents=True, exist_ok=True)
        journal_path.write_text(state["journal"], "utf-8")
        wt = git.begin(key.ticket, key.attempt)
        diff = base64.b64decode(state["diff"])
        if diff:
            git.tg.repo.git.run(wt.path, "apply", "--binary", "--index", "-", stdin=diff)
        return ApprovalRequest.from_json(state["request"])


def _answer_parked(req: ApprovalRequest, decision: ApprovalDecision) -> Callable[[ApprovalRequest], Any]:
    """The policy that answers, once, the request the attempt parked on (asked again by the replayed attempt,
    with a new id): same kind, same tool call and arguments."""
    used = threading.Event()

    def policy(r: ApprovalRequest) -> ApprovalDecision | None:
        asked, parked = r.payload, req.payload
        same = (isinstance(asked, ToolPayload) and isinstance(parked, ToolPayload)
                and asked.call_id == parked.call_id and asked.args == parked.args)
        if not same or used.is_set():
            return None
        used.set()
        return ApprovalDecision(request_id=r.id, approved=decision.approved,
                                payload=r.payload if decision.approved and not decision.edited else decision.payload,
                                reason=decision.reason, remember=decision.remember, by=DecidedBy.PERSON,
                                edited=decision.edited)

    return policy


def redis_errors() -> type[Exception]:
    import redis as redis_mod

    return redis_mod.RedisError


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"
