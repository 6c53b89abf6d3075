"""An accidental real network call fails loudly in tests, at the socket and at the provider."""

from __future__ import annotations

import socket
import threading

import pytest

from conductor.config import Config
from conductor.errors import NetworkForbidden
from conductor.messages import user
from conductor.providers.base import ProviderRequest
from conductor.providers.gemini import GeminiProvider


def test_a_socket_to_a_non_loopback_address_is_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(NetworkForbidden, match="203.0.113.7"):
        s.connect(("203.0.113.7", 443))


def test_the_gemini_provider_refuses_google_while_real_requests_are_off() -> None:
    provider = GeminiProvider(Config(), api_key="not-a-real-key")  # Google's endpoint: no base_url override
    req = ProviderRequest(model="gemini-3.8-flash", tier=1, system="s", messages=(user("hi"),))
    try:
        with pytest.raises(NetworkForbidden, match="real model requests are disabled"):
            list(provider.stream(req, threading.Event()))
    finally:
        provider.close()
