"""Approval requests as futures, resolved by whoever is attached: the GUI, the CLI prompt, or a policy.

Kinds are distinct (`plan`, `tickets`, `spawn`, `tool`); each request has an id, its provenance and an
editable payload. A decision is bound to exactly one request id. The `on_resolved` hook runs *before* the
waiting thread is released, so the decision is journalled before any side effect it allows.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable

from conductor.approval_payloads import ApprovalPayload, P
from conductor.approval_types import ApprovalDecision as ApprovalDecision  # re-exported with the broker
from conductor.approval_types import ApprovalKind as ApprovalKind
from conductor.approval_types import ApprovalRequest as ApprovalRequest
from conductor.approval_types import DecidedBy as DecidedBy
from conductor.errors import ApprovalError, Cancelled
from conductor.events import ApprovalRequested, ApprovalResolved, EventQueue
from conductor.provenance import Provenance

Policy = Callable[[ApprovalRequest], "ApprovalDecision | None"]
Validator = Callable[[P], None]
"""Raises ValueError (with a message naming the problem) when an edited payload of its kind is unacceptable."""
_Check = Callable[[ApprovalPayload], None]


def _bound(original: P, validator: Validator[P] | None) -> _Check:
    """The check of an edit: of the request's own kind first (an edit can't turn a tool call into a plan), then
    the kind's validator."""

    def check(edited: ApprovalPayload) -> None:
        if not isinstance(edited, type(original)):
            raise ValueError(f"this is a {original.kind} approval: an edit must be a {original.kind} payload, "
                             f"not a {edited.kind} one")
        if validator is not None:
            validator(edited)

    return check


class PendingApproval:
    """A request waiting for its decision. `wait` blocks the caller only; cancellation wakes it."""

    def __init__(self, request: ApprovalRequest) -> None:
        self.request = request
        self._done = threading.Event()
        self._decision: ApprovalDecision | None = None
        self._callbacks: list[Callable[[ApprovalDecision], None]] = []
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def decision(self) -> ApprovalDecision | None:
        return self._decision

    def _set(self, decision: ApprovalDecision) -> None:
        with self._lock:
            self._decision = decision
            self._done.set()
            callbacks = list(self._callbacks)
        for cb in callbacks:
            cb(decision)

    def add_done_callback(self, cb: Callable[[ApprovalDecision], None]) -> None:
        """Call `cb(decision)` once resolved (at once if already resolved), on the resolving thread."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(cb)
                return
        assert self._decision is not None
        cb(self._decision)

    def wait(self, cancel: threading.Event | None = None, timeout: float | None = None) -> ApprovalDecision:
        """Block until decided. Raises Cancelled if `cancel` is set first; TimeoutError after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # Short slices so a cancel is noticed within 50 ms without a second wake-up channel.
            left = 0.05 if deadline is None else min(0.05, max(deadline - time.monotonic(), 0))
            if self._done.wait(left):
                assert self._decision is not None
                return self._decision
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled while waiting for {self.request.kind.value} approval {self.request.id}")
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{self.request.kind.value} approval {self.request.id} not answered in {timeout}s")


class ApprovalBroker:
    """Issues approval requests, applies policies, and resolves requests from any thread."""

    def __init__(self, events: EventQueue | None = None) -> None:
        self._events = events
        self._pending: dict[str, PendingApproval] = {}
        self._validators: dict[str, _Check] = {}
        self._policies: list[tuple[str, Policy]] = []
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self.on_requested: list[Callable[[ApprovalRequest], None]] = []
        self.on_resolved: list[Callable[[ApprovalRequest, ApprovalDecision], None]] = []

    def add_policy(self, name: str, policy: Policy) -> None:
        """Policies are asked in order; the first that returns a decision resolves the request."""
        self._policies.append((name, policy))

    def auto_approve(self, kinds: set[ApprovalKind] | set[str]) -> None:
        wanted = {ApprovalKind(k) for k in kinds}
        self.add_policy("auto:" + ",".join(sorted(k.value for k in wanted)),
                        lambda r: ApprovalDecision(request_id=r.id, approved=True, payload=r.payload)
                        if r.kind in wanted else None)

    def new_id(self, kind: ApprovalKind) -> str:
        return f"{kind.value}-{next(self._counter)}-{uuid.uuid4().hex[:6]}"

    def request(self, prov: Provenance, title: str, payload: P, *, validator: Validator[P] | None = None,
                request_id: str | None = None, human_only: bool = False) -> PendingApproval:
        """Open a request of the payload's kind. A policy may decide it at once (unless `human_only`); otherwise
        it waits for `resolve`."""
        req = ApprovalRequest(id=request_id or self.new_id(ApprovalKind(payload.kind)), prov=prov, title=title,
                              payload=payload)
        return self._open(req, _bound(payload, validator), human_only=human_only)

    def restore(self, req: ApprovalRequest, validator: _Check | None = None) -> PendingApproval:
        """Re-open a request that was pending when the app stopped (read back from the journal)."""
        return self._open(req, validator, restoring=True)

    def _open(self, req: ApprovalRequest, validator: _Check | None, restoring: bool = False,
              human_only: bool = False) -> PendingApproval:
        pending = PendingApproval(req)
        with self._lock:
            if req.id in self._pending:
                return self._pending[req.id]
            self._pending[req.id] = pending
            if validator is not None:
                self._validators[req.id] = validator
        for name, policy in ([] if human_only else self._policies):
            decision = policy(req)
            if decision is not None:
                self._finish(req.id, decision.model_copy(update={"request_id": req.id, "by": DecidedBy.POLICY,
                                                                 "edited": False, "policy": name}))
                return pending
        if not restoring:
            for hook in self.on_requested:
                hook(req)
        if self._events is not None:
            self._events.post(ApprovalRequested(prov=req.prov, request=req))
        return pending

    def pending(self, kind: ApprovalKind | None = None) -> list[ApprovalRequest]:
        with self._lock:
            reqs = [p.request for p in self._pending.values() if not p.done]
        return [r for r in reqs if kind is None or r.kind == kind]

    def get(self, request_id: str) -> PendingApproval:
        with self._lock:
            if request_id not in self._pending:
                raise ApprovalError(f"no approval request {request_id!r}")
            return self._pending[request_id]

    def resolve(self, request_id: str, *, approved: bool, payload: ApprovalPayload | None = None,
                reason: str | None = None, remember: bool = False,
                by: DecidedBy = DecidedBy.PERSON) -> ApprovalDecision:
        """Decide a request. An edited `payload` (of the request's kind) is validated first (ValueError names the
        problem)."""
        decision = self.decide(request_id, approved=approved, payload=payload, reason=reason, remember=remember,
                               by=by)
        self.finish(decision)
        return decision

    def decide(self, request_id: str, *, approved: bool, payload: ApprovalPayload | None = None,
               reason: str | None = None, remember: bool = False,
               by: DecidedBy = DecidedBy.PERSON) -> ApprovalDecision:
        """The decision `resolve` would make, validated (ValueError names what is wrong with an edit), without
        recording or releasing it: `finish` does that (journal first), possibly on another thread."""
        pending = self.get(request_id)
        if pending.done:
            raise ApprovalError(f"approval {request_id!r} was already resolved")
        edited = False
        final = pending.request.payload
        if approved and payload is not None and payload != pending.request.payload:
            original = pending.request.payload
            if type(payload) is not type(original):
                raise ValueError(f"this is a {original.kind} approval: an edit must be a {original.kind} payload, "
                                 f"not a {payload.kind} one")
            check = self._validators.get(request_id)
            if check is not None:
                check(payload)
            final, edited = payload, True
        if not approved and not reason:
            reason = "rejected by the user"
        return ApprovalDecision(request_id=request_id, approved=approved, payload=final if approved else None,
                                reason=reason, remember=remember, by=by, edited=edited)

    def finish(self, decision: ApprovalDecision) -> None:
        """Record (the on_resolved hooks journal it) and release a decision made by `decide`."""
        self._finish(decision.request_id, decision)

    def _finish(self, request_id: str, decision: ApprovalDecision) -> None:
        with self._lock:  # claim it: of two concurrent resolves, exactly one wins
            pending = self._pending.pop(request_id, None)
            validator = self._validators.pop(request_id, None)
        if pending is None:
            raise ApprovalError(f"approval {request_id!r} was already resolved (or never existed)")
        try:
            for hook in self.on_resolved:  # journal first: nothing the decision allows has run yet
                hook(pending.request, decision)
        except BaseException:
            with self._lock:  # not recorded, so not decided: it stays pending
                self._pending[request_id] = pending
                if validator is not None:
                    self._validators[request_id] = validator
            raise
        if self._events is not None:
            self._events.post(ApprovalResolved(prov=pending.request.prov, request_id=request_id,
                                               approval_kind=pending.request.kind.value, approved=decision.approved,
                                               edited=decision.edited, reason=decision.reason, by=decision.by,
                                               policy=decision.policy))
        pending._set(decision)

    def cancel_where(self, predicate: Callable[[ApprovalRequest], bool], reason: str) -> int:
        """Reject every pending request matching `predicate` (used on cancel). Returns how many."""
        n = 0
        for req in self.pending():
            if predicate(req):
                try:
                    self._finish(req.id, ApprovalDecision(request_id=req.id, approved=False, reason=reason,
                                                                 by=DecidedBy.CANCELLED))
                    n += 1
                except ApprovalError:
                    pass  # resolved concurrently: nothing left to cancel
        return n
