"""A fake Gemini API server on 127.0.0.1: the real google-genai client talks to it with no network.

It speaks the REST/SSE protocol the SDK (3.4.0) uses, for any API version (`v1`, `v1beta`):

    POST /{ver}/models/{model}:generateContent
    POST /{ver}/models/{model}:streamGenerateContent?alt=sse   (chunked, one `data: {...}\\n\\n` per event)
    POST /{ver}/models/{model}:countTokens
    GET  /{ver}/models                                          (the model list)

Every answer comes from a `Script` (text chunks, thoughts, function calls, usageMetadata, finish reason,
latency) or injects a fault (HTTP 429 with RetryInfo / 503 before the stream, an error event mid-stream,
a cut connection, a clean close with no finish reason, a blocked prompt, a SAFETY or MAX_TOKENS finish,
an event that is not JSON). Scripts are chosen per request:

    with FakeGeminiServer(PipelineScript()) as server:              # every tier answered sensibly
    with FakeGeminiServer([Script.unavailable(), Script(text="ok")]) as server:   # in order; last repeats
    with FakeGeminiServer({"tier3": my_responder, "*": Script(text="hi")}) as server:
    with FakeGeminiServer(lambda record, n: Script(text=f"call {n}")) as server:

A responder is `(record: RequestRecord, n: int) -> Script`. The role of a request ("tier1".."tier4" or
"other") comes from `classify_request` (or the `classify=` function you pass): the response schema's
fields first, then the tools, then the system instruction. A top-level sequence or responder counts all
generate requests; an entry of a role mapping counts that role's requests only.

Every request is recorded (`server.requests()`) with its parsed body and its headers, the API key header
REDACTED (only a fingerprint is kept, to check which key was sent). Every answer is recorded too
(`server.responses()`), with the usageMetadata actually delivered, so tests can compare token for token.
Both camelCase and snake_case request fields are accepted (the SDK mixes them).

Scripts, event building and the request view live in `gemini_script` (pure, no sockets); everything is
re-exported here, so `from conductor.testing.fake_gemini import Script, PipelineScript` works.
"""

from __future__ import annotations

import json
import logging
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from conductor.testing.gemini_script import (
    PipelineScript,
    RequestRecord,
    Responder,
    ResponseRecord,
    Script,
    ScriptSource,
    Storm,
    as_responder,
    build_events,
    camel,
    classify_request,
    error_body,
    estimate_tokens,
    get_field,
    key_fingerprint,
    merge_events,
    snake,
    with_usage,
)

log = logging.getLogger(__name__)

API_KEY_HEADER = "x-goog-api-key"
REDACTED = "<redacted>"
DEFAULT_MODELS = ("gemini-3.8-flash", "gemini-3.5-flash", "gemini-3.5-flash-lite", "gemini-3.1-pro-preview",
                  "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite")
_PATH_RE = re.compile(r"^/(?P<ver>v\d+[a-z0-9]*)/models(?:/(?P<model>[^/:]+)(?::(?P<action>[A-Za-z]+))?)?/?$")


# --- the server ---

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle keep-alive connection frees its thread after this long
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake gemini: " + format, *args)

    def do_GET(self) -> None:
        self.server.fake._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.fake._handle(self, "POST")


class _HTTPServer(ThreadingHTTPServer):
    # Non-daemon handler threads, joined by server_close(): stop() leaves no thread of ours behind.
    daemon_threads = False
    block_on_close = True
    fake: FakeGeminiServer

    def process_request(self, request: Any, client_address: Any) -> None:
        self.fake._track(request)
        super().process_request(request, client_address)


class FakeGeminiServer:
    """The fake server. Use as a context manager, or `start()` / `stop()`. Thread-safe."""

    def __init__(self, script: ScriptSource | Mapping[str, ScriptSource] | None = None, *,
                 classify: Callable[[RequestRecord], str] = classify_request,
                 models: Sequence[str] = DEFAULT_MODELS, host: str = "127.0.0.1", port: int = 0) -> None:
        self.classify = classify
        self.models = list(models)
        self.models_status: int | None = None
        """Set to an HTTP status to make the model list fail."""
        self._host, self._port = host, port
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._requests: list[RequestRecord] = []
        self._responses: list[ResponseRecord] = []
        self._counts: dict[str, int] = {}
        self._conns: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.set_script(script)

    # -- lifecycle --

    def start(self) -> FakeGeminiServer:
        httpd = _HTTPServer((self._host, self._port), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-gemini", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections (waking scripted sleeps) and join the server thread."""
        self._stopping.set()
        if self._httpd is None:
            return
        self._httpd.shutdown()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for sock in conns:  # wakes handlers blocked on a keep-alive read or a slow client
            _shutdown_socket(sock)
        self._httpd.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> FakeGeminiServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake Gemini server is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host if isinstance(host, str) else host.decode()}:{port}"

    # -- scripting and inspection --

    def set_script(self, script: ScriptSource | Mapping[str, ScriptSource] | None) -> None:
        """Replace the script (call counts start again from 0)."""
        if isinstance(script, Mapping):
            table = {k: as_responder(v) for k, v in script.items()}
            default = table.get("*") or PipelineScript()
            responder: Callable[[RequestRecord], tuple[Responder, str]] = (
                lambda r: (table[r.role], r.role) if r.role in table else (default, r.role))
        else:
            single = as_responder(script if script is not None else PipelineScript())
            responder = lambda r: (single, "*")
        with self._lock:
            self._responder = responder
            self._counts = {}

    def requests(self, action: str | None = None, role: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self._requests if (action is None or r.action == action)
                    and (role is None or r.role == role)]

    def generate_requests(self, role: str | None = None) -> list[RequestRecord]:
        return [r for r in self.requests(role=role) if r.is_generate]

    def responses(self) -> list[ResponseRecord]:
        with self._lock:
            return list(self._responses)

    def usage_sent(self) -> list[dict[str, int]]:
        """The final usageMetadata of every answer that completed, in order."""
        return [dict(r.usage) for r in self.responses() if r.completed and r.usage is not None]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least `count` requests have arrived (no sleeping in tests)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._requests) >= count, timeout=timeout)

    def wait_for_responses(self, count: int, timeout: float = 5.0) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: len(self._responses) >= count, timeout=timeout)

    # -- request handling --

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns = {s for s in self._conns if s.fileno() != -1} | {sock}

    def _handle(self, h: _Handler, method: str) -> None:
        record = self._record(h, method)
        log.debug("fake gemini request %s", json.dumps(record.redacted())[:2000])
        if record.action is None:
            self._send_json(h, 404, error_body(404, f"no such endpoint: {record.path}"))
        elif record.action in ("list", "get"):
            self._serve_models(h, record)
        elif record.action == "countTokens":
            self._send_json(h, 200, {"totalTokens": estimate_tokens(get_field(record.body, "contents") or "")})
        elif record.is_generate:
            self._serve_generate(h, record)
        else:
            self._send_json(h, 404, error_body(404, f"unknown method {record.action}"))

    def _record(self, h: _Handler, method: str) -> RequestRecord:
        url = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = {"unparsed": raw[:200].decode("utf-8", "replace")}
        headers = {k.lower(): v for k, v in h.headers.items()}
        key = headers.get(API_KEY_HEADER)
        if key is not None:
            headers[API_KEY_HEADER] = REDACTED
        m = _PATH_RE.match(url.path)
        action = None
        if m:
            action = m["action"] or ("get" if m["model"] else "list")
        with self._lock:
            record = RequestRecord(
                seq=len(self._requests) + 1, method=method, path=url.path,
                query={k: v[-1] for k, v in parse_qs(url.query).items()}, api_version=m["ver"] if m else None,
                model=m["model"] if m else None, action=action, headers=headers, body=body,
                key_fingerprint=key_fingerprint(key) if key else None)
            if record.is_generate:
                record.role = self.classify(record)
            self._requests.append(record)
            self._lock.notify_all()
        return record

    def _next_script(self, record: RequestRecord) -> tuple[Script, int]:
        with self._lock:
            responder, key = self._responder(record)
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
        return responder(record, n), n

    def _add_response(self, rec: ResponseRecord) -> None:
        """Record an answer once. A complete answer is recorded before its last bytes go out, so a client
        that has read the whole answer always finds it here (no waiting needed)."""
        with self._lock:
            if not any(r is rec for r in self._responses):
                self._responses.append(rec)
                self._lock.notify_all()

    def _serve_models(self, h: _Handler, record: RequestRecord) -> None:
        if self.models_status is not None:
            self._send_json(h, self.models_status, error_body(self.models_status, "model list unavailable"))
            return
        entries = [{"name": f"models/{m}", "displayName": m, "version": "001", "inputTokenLimit": 1048576,
                    "outputTokenLimit": 65536, "supportedGenerationMethods": ["generateContent", "countTokens"]}
                   for m in self.models]
        if record.action == "get":
            found = [e for e in entries if e["name"] == f"models/{record.model}"]
            self._send_json(h, 200 if found else 404, found[0] if found else error_body(404, "model not found"))
            return
        self._send_json(h, 200, {"models": entries})

    def _serve_generate(self, h: _Handler, record: RequestRecord) -> None:
        script, n = self._next_script(record)
        streaming = record.action == "streamGenerateContent"
        rec = ResponseRecord(request_seq=record.seq, role=record.role, n=n, kind="stream" if streaming else "unary")
        try:
            if script.latency_s and self._stopping.wait(script.latency_s):
                return
            if script.http_status is not None:
                rec.kind = f"http {script.http_status}"
                self._send_error(h, script)
                return
            events = build_events(script, record.body)
            if streaming:
                self._stream(h, script, events, rec)
            else:
                self._unary(h, script, events, rec)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            rec.client_disconnected = True
            h.close_connection = True
        finally:
            self._add_response(rec)

    def _send_error(self, h: _Handler, script: Script) -> None:
        extra = {"Retry-After": script.retry_after} if script.retry_after else {}
        self._send_json(h, script.http_status or 500,
                        error_body(script.http_status or 500, script.error_message, script.retry_delay,
                                   script.quota_violations), extra)

    def _unary(self, h: _Handler, script: Script, events: list[dict[str, Any]], rec: ResponseRecord) -> None:
        if script.error_after is not None or script.cut_after is not None:
            rec.kind = "unary error"
            self._send_json(h, script.error_code, error_body(script.error_code, "failed while generating"))
            return
        merged = merge_events(events)
        rec.usage, rec.completed = merged.get("usageMetadata"), True
        self._add_response(rec)
        self._send_json(h, 200, merged)

    def _stream(self, h: _Handler, script: Script, events: list[dict[str, Any]], rec: ResponseRecord) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for i, event in enumerate(events):
            if i and script.chunk_delay_s and self._pause(h, script.chunk_delay_s, rec):
                return
            if self._fault_before(h, script, i, rec):
                return
            _write_chunk(h, f"data: {json.dumps(event)}\r\n\r\n".encode())
            rec.usage = event.get("usageMetadata", rec.usage)
        if self._fault_before(h, script, len(events), rec):
            return
        rec.completed = bool(script.finish_reason or script.block_reason)
        if not rec.completed:
            rec.kind = "no finish"
        self._add_response(rec)
        _write_chunk(h, b"")

    def _pause(self, h: _Handler, seconds: float, rec: ResponseRecord) -> bool:
        """Wait between events; True when the stream must end (the server stops or the client hung up)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stopping.is_set():
                return True
            readable, _, _ = select.select([h.connection], [], [], min(left, 0.05))
            if readable and not h.connection.recv(1, socket.MSG_PEEK):
                rec.client_disconnected = True
                h.close_connection = True
                return True
        return False

    def _fault_before(self, h: _Handler, script: Script, i: int, rec: ResponseRecord) -> bool:
        """Inject the script's mid-stream fault before event i; True when the stream is over."""
        if script.error_after == i:
            rec.kind = "error event"
            body = error_body(script.error_code, "The service is currently unavailable.", script.retry_delay)
            _write_chunk(h, f"data: {json.dumps(body)}\r\n\r\n".encode())
            _write_chunk(h, b"")
            return True
        if script.bad_event_after == i:
            rec.kind = "bad event"
            _write_chunk(h, b"data: {this is not json\r\n\r\n")
            _write_chunk(h, b"")
            return True
        if script.cut_after == i:
            rec.kind = "cut"
            h.wfile.write(b"40\r\ndata: {\"candidates\": [{\"content\": ")  # half an event, then nothing
            h.wfile.flush()
            _shutdown_socket(h.connection)
            h.close_connection = True
            return True
        return False

    def _send_json(self, h: _Handler, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=UTF-8")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()


def _write_chunk(h: BaseHTTPRequestHandler, data: bytes) -> None:
    """One HTTP/1.1 chunk (an empty one ends the body)."""
    h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    h.wfile.flush()


def _shutdown_socket(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _PacedPipeline(PipelineScript):
    """The pipeline script with a pace, so a demo's panes stream visibly."""

    def __init__(self, latency_s: float, chunk_delay_s: float) -> None:
        super().__init__()
        self.pace = {"latency_s": latency_s, "chunk_delay_s": chunk_delay_s, "chunk_chars": 12}

    def __call__(self, record: RequestRecord, n: int) -> Script:
        base = super().__call__(record, n)
        return replace(base, latency_s=float(self.pace["latency_s"]), chunk_delay_s=float(self.pace["chunk_delay_s"]),
                       chunk_chars=int(self.pace["chunk_chars"]))


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the pipeline script until Ctrl-C, for an offline demo of `--provider gemini`."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m conductor.testing.fake_gemini", description=main.__doc__)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.3, help="seconds before each answer")
    ap.add_argument("--chunk-delay", type=float, default=0.05, help="seconds between streamed events")
    args = ap.parse_args(argv)
    with FakeGeminiServer(_PacedPipeline(args.latency, args.chunk_delay), port=args.port) as server:
        print(f"fake Gemini server on {server.url} (Ctrl-C stops it). In another shell:\n"
              f"  CONDUCTOR_GEMINI_BASE_URL={server.url} GEMINI_API_KEY=fake conductor run --provider gemini "
              f"--epic 'demo' --approve all", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "FakeGeminiServer",
    "PipelineScript",
    "RequestRecord",
    "Responder",
    "ResponseRecord",
    "Script",
    "ScriptSource",
    "Storm",
    "build_events",
    "camel",
    "classify_request",
    "error_body",
    "get_field",
    "key_fingerprint",
    "merge_events",
    "snake",
    "with_usage",
]
