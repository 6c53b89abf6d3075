"""Test-wide guards: no real network, no real model requests, no API keys leaking in from the environment.

A forgotten fake fails loudly: any socket connection to a non-loopback address raises NetworkForbidden,
and the providers' global switch refuses real model requests.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor.errors import NetworkForbidden
from conductor.providers.base import set_allow_real_model_requests

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX paths are local
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_loopback(address):
        raise NetworkForbidden(f"tests may not reach the network (attempted {address!r}); use the fakes")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_loopback(address):
        raise NetworkForbidden(f"tests may not reach the network (attempted {address!r}); use the fakes")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    set_allow_real_model_requests(False)
    try:
        yield
    finally:
        socket.socket.connect = _real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
        set_allow_real_model_requests(True)


@pytest.fixture(autouse=True)
def _no_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GEMINI_BASE_URL",
                "CONDUCTOR_GEMINI_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
                "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "CONDUCTOR_OPENAI_BASE_URL",
                "CONDUCTOR_ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def _own_config_home(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The user's config and data folders (where conductor.launch looks) are per test, never the real ones."""
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("# demo workspace\n")
    (ws / "app.py").write_text("def add(a, b):\n    return a + b\n")
    return ws


@pytest.fixture
def thread_baseline() -> Iterator[set[int]]:
    """The threads alive before the test; the test asserts none of ours outlive it."""
    yield {t.ident for t in threading.enumerate() if t.ident is not None}


@pytest.fixture
def server() -> Iterator[object]:
    """A fake Gemini server on 127.0.0.1 answering every tier with the ready-made pipeline script."""
    from conductor.testing.fake_gemini import FakeGeminiServer, PipelineScript
    with FakeGeminiServer(PipelineScript()) as s:
        yield s


@pytest.fixture(autouse=True, scope="session")
def _private_data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The demo keeps its folder under $XDG_DATA_HOME: point it at a scratch folder, never the real home."""
    import os
    old = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("XDG_DATA_HOME", None)
        else:
            os.environ["XDG_DATA_HOME"] = old


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`slow` soak tests (100-kill loops and the like) run only with CONDUCTOR_SLOW=1; CI runs their short
    versions, which are ordinary tests."""
    import os
    if os.environ.get("CONDUCTOR_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow soak test: set CONDUCTOR_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
