"""What the SDK providers of a configured endpoint share (openai_compat, anthropic_provider): the endpoint and
its profile, one SDK client created on first use (the SDK imported only then), its closing, and the one place
their errors are translated. Each subclass says how to build its SDK's client and how to stream."""

from __future__ import annotations

import logging
import threading
from abc import abstractmethod
from typing import Any
from urllib.parse import urlsplit

from conductor.errors import ProviderError
from conductor.providers import openai_mapping as om
from conductor.providers.base import Provider, check_allow_real_model_requests
from conductor.providers.compat import EndpointProfile
from conductor.providers.endpoints import NO_KEY, Endpoint
from conductor.providers.gemini import _Watcher

log = logging.getLogger(__name__)


class EndpointProvider(Provider):
    """One endpoint, through its SDK. Safe to use from several worker threads at once."""

    def __init__(self, endpoint: Endpoint, *, name: str, http_timeout_s: float = 120.0,
                 profile: EndpointProfile | None = None) -> None:
        self.endpoint = endpoint
        self.name = name
        self.base_url = endpoint.base_url
        self.offline = endpoint.local
        self.http_timeout_s = http_timeout_s
        self.profile = profile or EndpointProfile.from_config(endpoint.name, endpoint.compat)
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._watcher = _Watcher()
        self._who = f"{endpoint.name} ({urlsplit(endpoint.base_url).hostname})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint.name!r}, base_url={self.base_url!r})"

    @abstractmethod
    def _new_client(self, key: str) -> Any:
        """The SDK's client for this endpoint (its import happens here, on first use), with SDK retries off."""

    def _sdk(self) -> Any:
        if not self.endpoint.local:
            check_allow_real_model_requests(urlsplit(self.base_url).hostname or self.base_url)
        with self._client_lock:
            if self._client is None:
                # An explicit key: the SDK then reads no credential from the environment or disk profiles.
                self._client = self._new_client(self.endpoint.key.reveal() if self.endpoint.key is not None
                                                else NO_KEY)
            return self._client

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        self._watcher.join()

    def _secrets(self) -> list[str]:
        return [self.endpoint.key.reveal()] if self.endpoint.key is not None else []

    def _translate(self, exc: BaseException, *, mid_stream: bool, usage: Any) -> ProviderError:
        err = om.translate_exception(exc, who=self._who, key_env=self.endpoint.key_env, mid_stream=mid_stream,
                                     usage=usage, secrets=self._secrets())
        log.info("%s call failed: %s", self.name, err)
        return err
