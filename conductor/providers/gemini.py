"""The Gemini provider, on the real google-genai SDK (3.4.0, pinned).

    provider = GeminiProvider.from_env(cfg)                      # GOOGLE_API_KEY, else GEMINI_API_KEY
    provider = GeminiProvider(cfg, api_key=key, base_url=fake.url)   # tests: the fake server

Every tier streams through `client.models.generate_content_stream` on one long-lived sync client (a
temporary client would be closed under us). The SDK is imported lazily, inside methods, so importing
this module stays cheap. Requests and responses are translated by `gemini_mapping`; errors are
translated once, here, at the boundary, and their messages never carry the API key.

The SDK retries only the initial request (`HttpRetryOptions`, `cfg.gemini.sdk_retry_attempts`, 1 by default:
no SDK retry), and not on 429: a rate limit goes straight to our retry layer and the shared per-model gate
(conductor/limits.py), which honour the server's delay. Failures inside a stream are ours to retry (they
raise StreamInterrupted). A failure carries `http_requests`, so the SDK's retries count in our one budget.

Cancellation and deadlines: `cancel` is checked between chunks; a small watcher thread (alive only while
streams are open) also cuts the socket of a stream whose `cancel` is set or whose deadline passed, so a
long silent wait (a model thinking) ends promptly too.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from conductor.config import Config
from conductor.errors import CallTimeout, Cancelled, MissingApiKey, ProviderError
from conductor.providers import gemini_mapping as gm
from conductor.providers.base import Provider, ProviderEvent, ProviderRequest, check_allow_real_model_requests
from conductor.providers.endpoints import Secret

log = logging.getLogger(__name__)

GOOGLE_ENDPOINT = "https://generativelanguage.googleapis.com/"
BASE_URL_ENV = "CONDUCTOR_GEMINI_BASE_URL"
"""Points `from_env` at another endpoint (the fake server in tests and offline demos)."""
SDK_RETRY_CODES = (408, 500, 502, 503, 504)
"""HTTP statuses the SDK itself retries (429 is left to our layer, which honours RetryInfo)."""
MISSING_KEY_HELP = ("no Gemini API key: set one in the environment, e.g. `export GEMINI_API_KEY=...` "
                    "(GOOGLE_API_KEY also works and wins when both are set); or run offline with "
                    "`--provider scripted`")


# --- per-stream tracking of the HTTP response (for cancel, deadlines and "did the stream start?") ---

@dataclass(eq=False)
class _Slot:
    cancel: threading.Event
    deadline: float | None
    response: Any = None
    status: int | None = None
    requests: int = 0
    """HTTP responses seen (the SDK's own retries included): each counts against the one retry budget."""
    cut: str | None = None
    """Why the watcher cut this stream's socket: "cancel" or "deadline"."""

    @property
    def started(self) -> bool:
        """True once a 200 response is streaming: a failure from then on is an interruption."""
        return self.status == 200


_current = threading.local()


def _on_response(response: Any) -> None:
    """httpx2 response hook (runs in the requesting thread, before the body is read).

    A module-level function on purpose: the SDK deep-copies its HTTP options, and a bound method would
    be copied along with its object."""
    slot = getattr(_current, "slot", None)
    if slot is not None:
        slot.response = response
        slot.status = response.status_code
        slot.requests += 1


def _cut_socket(response: Any) -> None:
    """Shut the response's socket down: this wakes a read blocked in another thread (close() alone doesn't)."""
    try:
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass


class _Watcher:
    """Cuts streams that were cancelled or ran past their deadline. Its thread lives only while streams are open."""

    def __init__(self, poll_s: float = 0.05) -> None:
        self.poll_s = poll_s
        self._slots: set[_Slot] = set()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextmanager
    def track(self, cancel: threading.Event, deadline: float | None) -> Iterator[_Slot]:
        slot = _Slot(cancel, deadline)
        _current.slot = slot
        with self._lock:
            self._slots.add(slot)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gemini-stream-watch", daemon=True)
                self._thread.start()
        try:
            yield slot
        finally:
            if getattr(_current, "slot", None) is slot:
                _current.slot = None
            with self._lock:
                self._slots.discard(slot)
                self._lock.notify_all()
            if slot.response is not None:
                slot.response.close()

    def _run(self) -> None:
        with self._lock:
            while self._slots:
                now = time.monotonic()
                for slot in self._slots:
                    if slot.cut is None and slot.response is not None:
                        reason = "cancel" if slot.cancel.is_set() else (
                            "deadline" if slot.deadline is not None and now > slot.deadline else None)
                        if reason:
                            slot.cut = reason
                            _cut_socket(slot.response)
                self._lock.wait(self.poll_s)
            self._thread = None

    def join(self, timeout: float = 2.0) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class GeminiProvider(Provider):
    """Gemini through google-genai. Safe to use from several worker threads at once."""

    name = "gemini"
    offline = False

    def __init__(self, cfg: Config, *, api_key: str, base_url: str | None = None,
                 sdk_retry_initial_delay_s: float = 0.5, sdk_retry_max_delay_s: float = 4.0,
                 sdk_retry_codes: tuple[int, ...] = SDK_RETRY_CODES, include_thoughts: bool = False) -> None:
        if not api_key or not api_key.strip():
            raise MissingApiKey(MISSING_KEY_HELP)
        self.cfg = cfg
        self._key = Secret(api_key.strip())
        self.base_url = base_url or cfg.gemini.base_url or GOOGLE_ENDPOINT
        self.offline = _is_loopback(self.base_url)
        self.sdk_retry = (sdk_retry_initial_delay_s, sdk_retry_max_delay_s, tuple(sdk_retry_codes))
        self.include_thoughts = include_thoughts
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._watcher = _Watcher()

    @classmethod
    def from_env(cls, cfg: Config, *, environ: Mapping[str, str] | None = None, base_url: str | None = None,
                 **kw: Any) -> GeminiProvider:
        """A provider keyed from the environment: GOOGLE_API_KEY wins over GEMINI_API_KEY (as in the SDK).

        The endpoint is `base_url`, else $CONDUCTOR_GEMINI_BASE_URL, else the config's, else Google's.
        Raises MissingApiKey (saying how to set one) when neither variable is set."""
        env = os.environ if environ is None else environ
        google, gemini = (env.get("GOOGLE_API_KEY") or "").strip(), (env.get("GEMINI_API_KEY") or "").strip()
        if google and gemini:
            log.info("both GOOGLE_API_KEY and GEMINI_API_KEY are set; using GOOGLE_API_KEY")
        key = google or gemini
        if not key:
            raise MissingApiKey(MISSING_KEY_HELP)
        return cls(cfg, api_key=key, base_url=base_url or env.get(BASE_URL_ENV) or None, **kw)

    def __repr__(self) -> str:
        return f"GeminiProvider(base_url={self.base_url!r}, api_version={self.cfg.gemini.api_version!r})"

    # -- the SDK client (created once, on first use, and kept: a temporary client gets closed) --

    def _check_network(self) -> None:
        if not _is_loopback(self.base_url):
            check_allow_real_model_requests(urlsplit(self.base_url).hostname or self.base_url)

    def _sdk(self) -> Any:
        self._check_network()
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        from google import genai
        from google.genai import types

        initial, maximum, codes = self.sdk_retry
        retry = types.HttpRetryOptions(attempts=self.cfg.gemini.sdk_retry_attempts, initial_delay=initial,
                                       max_delay=maximum, http_status_codes=list(codes))
        http = types.HttpOptions(base_url=self.base_url, api_version=self.cfg.gemini.api_version,
                                 timeout=int(self.cfg.gemini.http_timeout_s * 1000), retry_options=retry,
                                 client_args={"event_hooks": {"response": [_on_response]}})
        # vertexai=False: a GOOGLE_GENAI_USE_VERTEXAI in the environment must not reroute us.
        return genai.Client(api_key=self._key.reveal(), vertexai=False, http_options=http)

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        self._watcher.join()

    # -- streaming --

    def _translate(self, exc: BaseException, *, mid_stream: bool, usage: Any) -> ProviderError:
        err = gm.translate_exception(exc, mid_stream=mid_stream, usage=usage, secrets=[self._key.reveal()])
        log.info("gemini call failed: %s", err)
        return err

    def _request_args(self, request: ProviderRequest) -> tuple[Any, list[dict[str, Any]]]:
        from google.genai import types

        timeout_ms = None
        if request.timeout_s is not None and request.timeout_s < self.cfg.gemini.http_timeout_s:
            timeout_ms = max(int(request.timeout_s * 1000), 1)
        kwargs = gm.config_kwargs(request, timeout_ms=timeout_ms)
        if self.include_thoughts and "thinking_config" in kwargs:
            kwargs["thinking_config"] = {**kwargs["thinking_config"], "include_thoughts": True}
        try:
            return types.GenerateContentConfig(**kwargs), gm.to_contents(request.messages)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError: our request is wrong
            failure = gm.translate_exception(exc, mid_stream=False)
        raise failure

    def stream(self, request: ProviderRequest, cancel: threading.Event) -> Iterator[ProviderEvent]:
        """Stream one call (see `conductor.providers.base`). Raises Cancelled, or a ProviderError subclass."""
        if cancel.is_set():
            raise Cancelled("cancelled before the Gemini request was sent")
        client = self._sdk()
        config, contents = self._request_args(request)
        turn = gm.TurnAssembler(request)
        deadline = time.monotonic() + request.timeout_s if request.timeout_s else None
        log.debug("gemini stream: model=%s tier=%s %s", request.model, request.tier, request.prov.describe())
        failure: ProviderError | None = None
        with self._watcher.track(cancel, deadline) as slot:
            try:
                chunks = client.models.generate_content_stream(model=request.model, contents=contents,
                                                               config=config)
                try:
                    for chunk in chunks:
                        self._check_stop(cancel, slot, request, turn)
                        yield from turn.feed(chunk.model_dump(mode="json", exclude_none=True))
                finally:
                    chunks.close()
            except (Cancelled, ProviderError):
                raise
            except Exception as exc:  # noqa: BLE001 — the SDK and httpx2 raise many kinds; all are translated here
                self._check_stop(cancel, slot, request, turn)
                failure = self._translate(exc, mid_stream=slot.started, usage=turn.partial_usage())
                failure.http_requests = max(slot.requests, 1)
        if failure is not None:
            raise failure  # outside the except: no __context__ chain to the SDK error (it holds the request)
        self._check_stop(cancel, slot, request, turn)
        yield turn.finish()

    @staticmethod
    def _check_stop(cancel: threading.Event, slot: _Slot, request: ProviderRequest, turn: gm.TurnAssembler) -> None:
        if cancel.is_set():
            raise Cancelled(f"Gemini call cancelled ({request.prov.describe() or request.model})")
        if slot.cut == "deadline" or (slot.deadline is not None and time.monotonic() > slot.deadline):
            raise CallTimeout(f"the Gemini call exceeded its {request.timeout_s:g}s deadline",
                              usage=turn.partial_usage())

    # -- other endpoints --

    def list_models(self) -> list[str]:
        """Model ids from the API that can generate content; [] (and a log line saying why) on any failure."""
        try:
            client = self._sdk()
            names = []
            for m in client.models.list(config={"page_size": 100}):
                actions = m.supported_actions or []
                if m.name and (not actions or "generateContent" in actions):
                    names.append(m.name.removeprefix("models/"))
            return names
        except Exception as exc:  # noqa: BLE001 — listing is a nicety: never fail the caller
            err = gm.translate_exception(exc, mid_stream=False, secrets=[self._key.reveal()])
            log.warning("could not list Gemini models (%s); offering the configured ones only", err)
            return []

    def count_tokens(self, request: ProviderRequest) -> int:
        """Prompt tokens of a request as the API counts them (the system text folded into the contents:
        the Developer API refuses a system instruction in countTokens)."""
        client = self._sdk()
        contents = gm.to_contents(request.messages)
        if request.system:
            contents.insert(0, {"role": "user", "parts": [{"text": request.system}]})
        try:
            return int(client.models.count_tokens(model=request.model, contents=contents).total_tokens or 0)
        except Exception as exc:  # noqa: BLE001 — the provider boundary: every SDK error is translated here, once
            failure = self._translate(exc, mid_stream=False, usage=None)
        raise failure
