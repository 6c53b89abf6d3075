"""What the fake OpenAI-compatible and Anthropic servers share: the fake Gemini server's lifecycle, scripting
and recording (they subclass it), with their own routes, key headers and request views.

A dialect server answers every generate request from the same `Script`s as the fake Gemini server (text
pieces, thoughts, function calls, a Gemini-style usage dict, faults), so `PipelineScript` drives all three;
each dialect translates the script into its own wire format and records the usage it actually delivered
in ITS OWN format (`ResponseRecord.usage`), so tests compare the ledger with what that wire carried.

Script usage keys the dialects read: promptTokenCount (whole prompt, cached included), candidatesTokenCount,
thoughtsTokenCount, cachedContentTokenCount (cache reads), toolUsePromptTokenCount (added to the prompt) and
cacheWriteTokenCount (Anthropic cache creation; part of the prompt).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from conductor.testing.fake_gemini import FakeGeminiServer, _Handler, _write_chunk
from conductor.testing.gemini_script import RequestRecord, Script, key_fingerprint

REDACTED = "<redacted>"
LEGAL_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What OpenAI (`tools[].function.name`) and Anthropic (`tools[].name`) accept; both refuse the whole request
otherwise. The fakes apply it to the names in the history too (stricter than needed, never laxer)."""


def illegal_function_name(named: Iterable[tuple[str, object]]) -> str | None:
    """The refusal message for the first (where, name) that is not a legal function name, else None."""
    for where, name in named:
        if not isinstance(name, str) or not LEGAL_FUNCTION_NAME.match(name):
            return (f"Invalid '{where}': string does not match pattern. Expected a string that matches the "
                    f"pattern '{LEGAL_FUNCTION_NAME.pattern}', got {name!r}.")
    return None


def gemini_usage(script: Script, prompt_estimate: int) -> dict[str, int]:
    """The script's usage (Gemini-style keys), or one computed from the text and the prompt's size."""
    if script.usage is not None:
        return dict(script.usage)
    text = "".join(script.text) if not isinstance(script.text, str) else script.text
    out = max(1, (len(text) + 3) // 4 + sum(max(1, len(json.dumps(c)) // 4) for c in script.function_calls))
    return {"promptTokenCount": prompt_estimate, "candidatesTokenCount": out, "totalTokenCount": prompt_estimate + out}


def text_pieces(script: Script) -> list[str]:
    if not isinstance(script.text, str):
        return list(script.text)
    size = max(script.chunk_chars, 1)
    return [script.text[i:i + size] for i in range(0, len(script.text), size)]


class DialectServer(FakeGeminiServer):
    """Base of the fake OpenAI and Anthropic servers. Subclasses set `key_headers`, `record_cls`, `route`
    and `serve_chat` / `serve_models`."""

    key_headers: tuple[str, ...] = ("authorization",)
    record_cls: type[RequestRecord] = RequestRecord
    name = "fake"

    def route(self, method: str, path: str) -> str | None:
        """The action of a request path: "chat", "models" or None (404)."""
        raise NotImplementedError

    def serve_chat(self, h: _Handler, record: RequestRecord) -> None:
        raise NotImplementedError

    def serve_models(self, h: _Handler, record: RequestRecord) -> None:
        raise NotImplementedError

    def not_found(self, h: _Handler, record: RequestRecord) -> None:
        self._send_json(h, 404, {"error": {"message": f"no such endpoint: {record.path}", "type": "not_found"}})

    # -- overrides of the Gemini server's request handling --

    def _handle(self, h: _Handler, method: str) -> None:
        record = self._record(h, method)
        if record.action == "chat":
            self.serve_chat(h, record)
        elif record.action == "models":
            self.serve_models(h, record)
        else:
            self.not_found(h, record)

    def _record(self, h: _Handler, method: str) -> RequestRecord:
        url = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = {"unparsed": raw[:200].decode("utf-8", "replace")}
        headers = {k.lower(): v for k, v in h.headers.items()}
        key = None
        for name in self.key_headers:
            value = headers.get(name)
            if value is not None:
                key = re.sub(r"^Bearer\s+", "", value)
                headers[name] = REDACTED
        action = self.route(method, url.path)
        with self._lock:
            record = self.record_cls(
                seq=len(self._requests) + 1, method=method, path=url.path,
                query={k: v[-1] for k, v in parse_qs(url.query).items()}, api_version=None,
                model=body.get("model") if isinstance(body, dict) else None, action=action, headers=headers,
                body=body, key_fingerprint=key_fingerprint(key) if key else None)
            if action == "chat":
                record.role = self.classify(record)
            self._requests.append(record)
            self._lock.notify_all()
        return record

    def generate_requests(self, role: str | None = None) -> list[RequestRecord]:
        return [r for r in self.requests(role=role) if r.action == "chat"]

    # -- writing --

    def start_sse(self, h: _Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

    @staticmethod
    def sse(h: _Handler, data: Mapping[str, Any] | str, event: str | None = None) -> None:
        body = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {event}\n" if event else ""
        _write_chunk(h, f"{head}data: {body}\n\n".encode())

    @staticmethod
    def end_body(h: _Handler) -> None:
        _write_chunk(h, b"")

    def cut(self, h: _Handler) -> None:
        """Half an event, then the connection is gone (no chunked terminator)."""
        from conductor.testing.fake_gemini import _shutdown_socket
        h.wfile.write(b"40\r\ndata: {\"choices\": [{\"delta\": ")
        h.wfile.flush()
        _shutdown_socket(h.connection)
        h.close_connection = True
