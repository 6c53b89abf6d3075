"""What the fake Gemini server answers with, and what a responder sees of a request.

`Script` describes one answer (text chunks, thoughts, function calls, usage, finish reason, latency, an
injected fault); `build_events` turns it into the GenerateContentResponse events the server streams.
`RequestRecord` is a received request, with accessors for the parts tests look at. `PipelineScript`
answers each Conductor tier sensibly. Pure data and functions: no sockets here (see `fake_gemini`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

SAFETY_RATING = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]


# --- field access that tolerates both spellings ---

def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def get_field(obj: Any, name: str, default: Any = None) -> Any:
    """`obj[name]` under its camelCase or snake_case spelling (the SDK sends both, even in one body)."""
    if not isinstance(obj, Mapping):
        return default
    for key in (name, camel(name), snake(name)):
        if key in obj:
            return obj[key]
    return default


def key_fingerprint(key: str) -> str:
    """A short hash that identifies a key without revealing it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


# --- what the server saw ---

@dataclass
class RequestRecord:
    """One request as received. `headers` never holds the API key (see `key_fingerprint`)."""

    seq: int
    method: str
    path: str
    query: dict[str, str]
    api_version: str | None
    model: str | None
    action: str | None
    """generateContent | streamGenerateContent | countTokens | list | get."""
    headers: dict[str, str]
    body: Any
    key_fingerprint: str | None = None
    role: str = ""

    def __repr__(self) -> str:
        return f"RequestRecord(seq={self.seq}, {self.method} {self.path}, role={self.role!r})"

    def redacted(self) -> dict[str, Any]:
        """A printable form (the key header is already redacted at capture)."""
        return {"seq": self.seq, "method": self.method, "path": self.path, "query": self.query,
                "role": self.role, "headers": self.headers, "body": self.body}

    def key_matches(self, key: str) -> bool:
        return self.key_fingerprint == key_fingerprint(key)

    @property
    def is_generate(self) -> bool:
        return self.action in ("generateContent", "streamGenerateContent")

    # -- the parts of a generate request tests look at --

    @property
    def contents(self) -> list[dict[str, Any]]:
        return list(get_field(self.body, "contents") or [])

    @property
    def system_text(self) -> str:
        sys = get_field(self.body, "system_instruction") or {}
        return "".join(p.get("text", "") for p in get_field(sys, "parts") or [])

    @property
    def generation_config(self) -> dict[str, Any]:
        return dict(get_field(self.body, "generation_config") or {})

    @property
    def response_schema(self) -> dict[str, Any] | None:
        gc = self.generation_config
        schema = get_field(gc, "response_schema") or get_field(gc, "response_json_schema")
        return dict(schema) if isinstance(schema, dict) else None

    @property
    def schema_fields(self) -> set[str]:
        schema = self.response_schema or {}
        return set((schema.get("properties") or {}).keys())

    @property
    def function_declarations(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for tool in get_field(self.body, "tools") or []:
            out += get_field(tool, "function_declarations") or []
        return out

    @property
    def tool_names(self) -> list[str]:
        return [d.get("name", "") for d in self.function_declarations]

    def parts(self, role: str | None = None) -> Iterator[dict[str, Any]]:
        for content in self.contents:
            if role is None or content.get("role") == role:
                yield from content.get("parts") or []

    @property
    def user_text(self) -> str:
        """The text of every user part, joined (e.g. to find "TICKET: T2" in a worker's prompt)."""
        return "\n".join(p["text"] for p in self.parts("user") if isinstance(p.get("text"), str))

    @property
    def function_responses(self) -> list[dict[str, Any]]:
        return [get_field(p, "function_response") for p in self.parts() if get_field(p, "function_response")]

    @property
    def model_turns(self) -> list[dict[str, Any]]:
        return [c for c in self.contents if c.get("role") == "model"]


@dataclass
class ResponseRecord:
    """One answer as sent. `usage` is the last usageMetadata delivered (the final one when `completed`)."""

    request_seq: int
    role: str
    n: int
    kind: str
    """"stream" | "unary" | an injected fault's name."""
    usage: dict[str, int] | None = None
    completed: bool = False
    """True when the stream reached its end (a finish reason or a blocked prompt was delivered)."""
    client_disconnected: bool = False


# --- scripts ---

@dataclass(frozen=True)
class Script:
    """One scripted answer. Defaults: a plain STOP answer with computed usage."""

    text: str | Sequence[str] = ""
    """A string (split into `chunk_chars` pieces) or the exact pieces, one event each."""
    thoughts: Sequence[str] = ()
    """Thought-summary parts (thought=true), sent before the text."""
    function_calls: Sequence[Mapping[str, Any]] = ()
    """{"name": ..., "args": {...}, "id": optional}; sent together in one event after the text."""
    thought_signature: str | None = None
    """Base64 text put on the first function-call part (or on the last text part when there are none)."""
    finish_reason: str | None = "STOP"
    """None: the stream closes cleanly with no finish reason."""
    finish_message: str | None = None
    usage: Mapping[str, int] | None = None
    """The final usageMetadata (camelCase); None computes one. Earlier events carry cumulative partial counts."""
    block_reason: str | None = None
    """A prompt-level block: one event with promptFeedback.blockReason and no candidates."""
    http_status: int | None = None
    """Fail before the stream with this status (429, 503, 400, ...)."""
    error_message: str = ""
    error_type: str | None = None
    """The OpenAI/Anthropic fakes: the error's type/code (e.g. "context_length_exceeded")."""
    retry_delay: str | None = None
    """google.rpc.RetryInfo.retryDelay for an error ("2s")."""
    retry_after: str | None = None
    """A Retry-After header on an HTTP error."""
    quota_violations: Sequence[Mapping[str, Any]] = ()
    """google.rpc.QuotaFailure violations on an HTTP error (quotaId, quotaMetric, quotaDimensions, quotaValue)."""
    error_after: int | None = None
    """Send an error event after this many events, then end the stream."""
    error_code: int = 503
    cut_after: int | None = None
    """Cut the connection after this many events (no chunked terminator)."""
    bad_event_after: int | None = None
    """Send an event whose data is not JSON after this many events."""
    latency_s: float = 0.0
    chunk_delay_s: float = 0.0
    chunk_chars: int = 24
    model_version: str = "fake-gemini"

    # -- ready-made faults --
    @classmethod
    def rate_limited(cls, retry_delay: str | None = "2s", **kw: Any) -> Script:
        return cls(http_status=429, retry_delay=retry_delay, error_message="Resource has been exhausted", **kw)

    @classmethod
    def quota_exhausted(cls, model: str = "gemini-3.5-flash-lite", per: str = "Day", limit: str = "250",
                        retry_delay: str | None = "41s", **kw: Any) -> Script:
        """A 429 as Gemini sends it for a spent quota: a QuotaFailure naming the per-`per` request quota (plus
        the per-minute one, as real bodies list several), and a RetryInfo that is useless for a daily quota."""
        dims = {"location": "global", "model": model}
        violations = [{"quotaMetric": "generativelanguage.googleapis.com/generate_requests_per_model_per_day"
                       if per == "Day" else "generativelanguage.googleapis.com/generate_requests_per_model",
                       "quotaId": f"GenerateRequestsPer{per}PerProjectPerModel", "quotaDimensions": dims,
                       "quotaValue": limit}]
        if per == "Day":
            violations.append({"quotaMetric": "generativelanguage.googleapis.com/generate_requests_per_model",
                               "quotaId": "GenerateRequestsPerMinutePerProjectPerModel", "quotaDimensions": dims})
        return cls(http_status=429, retry_delay=retry_delay, quota_violations=violations,
                   error_message="You exceeded your current quota, please check your plan and billing details. "
                                 "For more information on this error, head to: "
                                 "https://ai.google.dev/gemini-api/docs/rate-limits.", **kw)

    @classmethod
    def unavailable(cls, status: int = 503, **kw: Any) -> Script:
        return cls(http_status=status, error_message="The model is overloaded. Please try again later.", **kw)

    @classmethod
    def bad_request(cls, status: int = 400, message: str = "Request contains an invalid argument.") -> Script:
        return cls(http_status=status, error_message=message)

    @classmethod
    def error_mid_stream(cls, text: str = "partial answer that will break", after: int = 1, code: int = 503,
                         **kw: Any) -> Script:
        return cls(text=text, error_after=after, error_code=code, **kw)

    @classmethod
    def cut(cls, text: str = "partial answer that will be cut", after: int = 1, **kw: Any) -> Script:
        return cls(text=text, cut_after=after, **kw)

    @classmethod
    def no_finish(cls, text: str = "an answer with no ending", **kw: Any) -> Script:
        return cls(text=text, finish_reason=None, **kw)

    @classmethod
    def prompt_blocked(cls, reason: str = "SAFETY", **kw: Any) -> Script:
        return cls(block_reason=reason, **kw)

    @classmethod
    def json(cls, obj: Any, **kw: Any) -> Script:
        return cls(text=json.dumps(obj), **kw)


Responder = Callable[[RequestRecord, int], Script]
ScriptSource = Script | Sequence[Script] | Responder


def as_responder(source: ScriptSource) -> Responder:
    if isinstance(source, Script):
        return lambda record, n: source
    if callable(source):
        return source
    seq = list(source)
    if not seq:
        raise ValueError("a script sequence needs at least one Script")
    return lambda record, n: seq[min(n, len(seq) - 1)]


def classify_request(record: RequestRecord) -> str:
    """The role of a generate request: by response schema, then tools, then the system instruction."""
    fields = record.schema_fields
    for name, role in (("tracks", "tier1"), ("tickets", "tier2"), ("verdict", "tier4")):
        if name in fields:
            return role
    if record.function_declarations:
        return "tier3"
    system = record.system_text.lower()
    for word, role in (("orchestrator", "tier1"), ("tech lead", "tier2"), ("qa", "tier4"), ("review", "tier4"),
                       ("worker", "tier3")):
        if re.search(rf"\b{word}\b", system):
            return role
    return "other"


# --- turning a script into SSE events ---

def _text_pieces(script: Script) -> list[str]:
    if not isinstance(script.text, str):
        return [t for t in script.text]
    size = max(script.chunk_chars, 1)
    return [script.text[i:i + size] for i in range(0, len(script.text), size)]


def estimate_tokens(obj: Any) -> int:
    return max(1, len(json.dumps(obj)) // 4)


def default_usage(script: Script, body: Any) -> dict[str, int]:
    prompt = estimate_tokens(get_field(body, "contents") or "") + estimate_tokens(
        get_field(body, "system_instruction") or "")
    text = "".join(_text_pieces(script))
    out = (len(text) + 3) // 4 + sum(estimate_tokens(c) for c in script.function_calls)
    return {"promptTokenCount": prompt, "candidatesTokenCount": out, "totalTokenCount": prompt + out}


def _partial_usage(final: Mapping[str, int], i: int, n: int) -> dict[str, int]:
    """Cumulative counts for event i of n: prompt from the start, candidates growing; the last is `final`."""
    if i == n - 1:
        return dict(final)
    prompt = final.get("promptTokenCount", 0)
    cand = final.get("candidatesTokenCount", 0) * (i + 1) // n
    return {"promptTokenCount": prompt, "candidatesTokenCount": cand, "totalTokenCount": prompt + cand}


def _call_parts(script: Script) -> list[dict[str, Any]]:
    parts = []
    for i, call in enumerate(script.function_calls):
        part: dict[str, Any] = {"functionCall": {k: v for k, v in call.items() if v is not None}}
        if i == 0 and script.thought_signature:
            part["thoughtSignature"] = script.thought_signature
        parts.append(part)
    return parts


def _content_events(script: Script) -> list[list[dict[str, Any]]]:
    """The parts of each event, in order: thoughts, text pieces, then all function calls together."""
    events: list[list[dict[str, Any]]] = [[{"text": t, "thought": True}] for t in script.thoughts]
    events += [[{"text": t}] for t in _text_pieces(script)]
    if script.function_calls:
        events.append(_call_parts(script))
    elif script.thought_signature and events:
        events[-1][-1]["thoughtSignature"] = script.thought_signature
    return events or [[{"text": ""}]]


def build_events(script: Script, body: Any) -> list[dict[str, Any]]:
    """The GenerateContentResponse events of a script, each with cumulative usageMetadata."""
    final = dict(script.usage) if script.usage is not None else default_usage(script, body)
    if script.block_reason:
        return [{"promptFeedback": {"blockReason": script.block_reason, "safetyRatings": SAFETY_RATING},
                 "usageMetadata": {"promptTokenCount": final.get("promptTokenCount", 0),
                                   "totalTokenCount": final.get("promptTokenCount", 0)},
                 "modelVersion": script.model_version}]
    parts_per_event = _content_events(script)
    events = []
    for i, parts in enumerate(parts_per_event):
        cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if i == len(parts_per_event) - 1 and script.finish_reason:
            cand["finishReason"] = script.finish_reason
            if script.finish_message:
                cand["finishMessage"] = script.finish_message
            if script.finish_reason in ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII"):
                cand["safetyRatings"] = SAFETY_RATING
        events.append({"candidates": [cand], "usageMetadata": _partial_usage(final, i, len(parts_per_event)),
                       "modelVersion": script.model_version, "responseId": "fake-response"})
    return events


def merge_events(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One unary response from stream events: parts concatenated, the last finish reason and usage."""
    if not events:
        return {}
    merged = json.loads(json.dumps(events[-1]))
    if "candidates" in merged:
        parts = [p for e in events for c in e.get("candidates", [])[:1] for p in c["content"]["parts"]]
        merged["candidates"][0]["content"]["parts"] = parts
    return dict(merged)


def error_body(code: int, message: str, retry_delay: str | None = None,
               quota_violations: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    status = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
              500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}.get(code, "UNKNOWN")
    err: dict[str, Any] = {"code": code, "message": message or status.lower(), "status": status}
    details: list[dict[str, Any]] = []
    if quota_violations:
        details.append({"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [dict(v) for v in quota_violations]})
        details.append({"@type": "type.googleapis.com/google.rpc.Help", "links": [
            {"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]})
    if retry_delay:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    if details:
        err["details"] = details
    return {"error": err}


class Storm:
    """A responder that fails every generate request with `fault` for `seconds`, then answers with `then` (the
    pipeline by default). Only requests whose role is in `roles` (all when None) are failed; the storm starts
    at the first of them for which `trigger` is true (e.g. once several workers run). `now` is the test's
    clock, so a 150 s storm can pass in a second or two of real time. `refused` counts the failed requests."""

    def __init__(self, now: Callable[[], float], seconds: float, fault: Script | None = None,
                 then: Responder | None = None, roles: set[str] | None = None,
                 trigger: Callable[[RequestRecord], bool] | None = None) -> None:
        self.now = now
        self.seconds = seconds
        self.fault = fault or Script.rate_limited(retry_delay="10s")
        self.then = then or PipelineScript()
        self.roles = roles
        self.trigger = trigger
        self._lock = threading.Lock()
        self.started: float | None = None
        self.refused = 0
        self.refused_by_role: dict[str, int] = {}

    @property
    def over(self) -> bool:
        with self._lock:
            return self.started is not None and self.now() >= self.started + self.seconds

    def __call__(self, record: RequestRecord, n: int) -> Script:
        with self._lock:
            now = self.now()
            hit = self.roles is None or record.role in self.roles
            if self.started is None and hit and (self.trigger is None or self.trigger(record)):
                self.started = now
            if self.started is not None and now < self.started + self.seconds and hit:
                self.refused += 1
                self.refused_by_role[record.role] = self.refused_by_role.get(record.role, 0) + 1
                return self.fault
        return self.then(record, n)


# --- the ready-made pipeline script ---

class PipelineScript:
    """Answers each Conductor tier sensibly, with distinctive usage numbers per call.

    tier 1: a TrackProposal with `tracks` tracks; tier 2: a TicketPlan T1 <- T2, T1 <- T3 (a small DAG);
    tier 3: a `list_dir` function call (with a thought signature, no id) on the first turn, then a text
    report; tier 4: {"verdict": "pass"}; anything else: a short text. The server records the usage it
    actually delivered (`server.usage_sent()`); `expected_usage` here is what each call was scripted with.
    """

    def __init__(self, *, tracks: int = 1, tickets: int = 3, call_ids: bool = False) -> None:
        self.tracks = tracks
        self.tickets = tickets
        self.call_ids = call_ids
        self._k = 0
        self._lock = threading.Lock()
        self.expected_usage: list[dict[str, int]] = []

    def _usage(self, tier: int, tool_turn: bool) -> dict[str, int]:
        with self._lock:
            self._k += 1
            k = self._k
        usage = {"promptTokenCount": tier * 1000 + k * 17 + 1, "candidatesTokenCount": tier * 100 + k * 3 + 2,
                 "thoughtsTokenCount": tier * 10 + k + 3, "cachedContentTokenCount": tier * 50 if k % 2 else 0}
        if tool_turn:
            usage["toolUsePromptTokenCount"] = 7 + k
        usage["totalTokenCount"] = (usage["promptTokenCount"] + usage["candidatesTokenCount"]
                                    + usage["thoughtsTokenCount"] + usage.get("toolUsePromptTokenCount", 0))
        with self._lock:
            self.expected_usage.append(usage)
        return usage

    def tracks_json(self) -> dict[str, Any]:
        return {"tracks": [{"title": f"Track {i + 1}", "goal": f"Deliver part {i + 1} of the epic",
                            "scope": "the fake workspace", "acceptance_criteria": [f"part {i + 1} works"]}
                           for i in range(self.tracks)]}

    def tickets_json(self) -> dict[str, Any]:
        def t(i: int) -> dict[str, Any]:
            deps = [] if i == 1 else ["T1"]
            return {"id": f"T{i}", "title": f"Ticket {i}", "description": f"Do step {i}.", "depends_on": deps,
                    "target_files": [f"notes/t{i}.md"], "acceptance_criteria": [f"step {i} done"],
                    "step_mode": False, "model_override": None}
        return {"tickets": [t(i) for i in range(1, self.tickets + 1)]}

    def worker(self, record: RequestRecord, n: int) -> Script:
        responded = bool(record.function_responses)
        usage = self._usage(3, responded)
        if not responded and "list_dir" in record.tool_names:
            call = {"name": "list_dir", "args": {"path": "."}, "id": f"call-{n}" if self.call_ids else None}
            return Script(text="Let me look around first.", function_calls=[call],
                          thought_signature=_b64(f"sig-call-{n}"), usage=usage)
        return Script(text="Work complete: I looked at the workspace and the ticket's goal is met.",
                      usage=usage, thought_signature=_b64("sig-final"))

    def __call__(self, record: RequestRecord, n: int) -> Script:
        role = record.role or classify_request(record)
        if role == "tier1":
            return Script.json(self.tracks_json(), usage=self._usage(1, False))
        if role == "tier2":
            return Script.json(self.tickets_json(), usage=self._usage(2, False))
        if role == "tier3":
            return self.worker(record, n)
        if role == "tier4":
            return Script.json({"verdict": "pass", "hint": ""}, usage=self._usage(4, False))
        return Script(text="Hello from the fake Gemini server.")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def with_usage(script: Script, **usage: int) -> Script:
    """A copy of `script` with its final usage given in snake_case or camelCase keyword form."""
    return replace(script, usage={camel(k) if "_" in k else k: v for k, v in usage.items()})
