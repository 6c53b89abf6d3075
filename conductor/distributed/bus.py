"""Opening the bus: one Redis client and one Dramatiq RedisBroker, bound explicitly (never Dramatiq's global
broker, which actors decorated at import time would silently use — the "worker never consumes" trap).

Also the environment guards: a gevent-monkeypatched process refuses to start (our threads, BLPOP waits and git
subprocesses assume real threads), and a worker whose namespace no desktop advertised on this Redis refuses to
start (it is pointed at another broker or namespace than the desktop). Broker URLs are shown only redacted.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conductor import redact
from conductor.config import DistributedConfig
from conductor.distributed.schema import DesktopInfo, Keys
from conductor.errors import ConfigError

if TYPE_CHECKING:
    import redis
    from dramatiq import Broker


class BusRefused(ConfigError):
    """The bus cannot be used as configured; the text says why and what to do."""


def shown_url(url: str) -> str:
    """The broker URL as it may appear in a message or a log: credentials replaced."""
    redact.add_secrets(redact.url_credentials(url))
    return redact.text(url)


def broker_url(cfg: DistributedConfig, given: str | None = None) -> str | None:
    """The broker URL: `given` (the command line), else the environment variable, else the config file; None:
    no broker (local threads). A password is accepted only from the environment."""
    env = os.environ.get(cfg.broker_url_env, "").strip()
    if given:
        from urllib.parse import urlsplit
        if urlsplit(given).password:
            raise BusRefused(f"--broker {shown_url(given)} carries a password on the command line (where other "
                             f"users see it); put the URL in the environment variable {cfg.broker_url_env} instead")
        return given
    if env:
        redact.add_secrets(redact.url_credentials(env))
        return env
    return cfg.broker_url or None


def gevent_patched() -> bool:
    """True when gevent has monkey-patched this process (checked without importing gevent)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return False
    saved = getattr(monkey, "saved", None)
    return bool(saved)


def refuse_gevent(what: str) -> None:
    if gevent_patched():
        raise BusRefused(f"{what} refuses to run in a gevent-monkeypatched process: its heartbeats, approval waits "
                         "and git subprocesses need real threads (Dramatiq's gevent mode also breaks time limits). "
                         "Start it as a plain `conductor worker` process, without gevent or locust imported.")


@dataclass
class Bus:
    url: str
    keys: Keys
    client: redis.Redis
    broker: Broker

    @property
    def shown(self) -> str:
        return shown_url(self.url)

    def close(self) -> None:
        self.broker.close()
        self.client.close()


def open_bus(url: str, cfg: DistributedConfig) -> Bus:
    """Connect (and ping) Redis and make the RedisBroker over the same client, tuned as measured: the
    heartbeat timeout and a high maintenance chance bring a dead worker's message back in seconds, not minutes."""
    refuse_gevent("Conductor's distributed mode")  # before Dramatiq is imported: it changes itself under gevent
    import redis as redis_mod
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.middleware import AgeLimit, Callbacks, CurrentMessage, Pipelines, ShutdownNotifications

    try:
        client = redis_mod.Redis.from_url(url, socket_timeout=None, socket_connect_timeout=5,
                                          health_check_interval=30, retry_on_timeout=True)
        client.ping()
    except (redis_mod.RedisError, OSError, ValueError) as exc:
        raise BusRefused(f"cannot reach the broker {shown_url(url)}: {redact.text(str(exc))}") from None
    keys = Keys(cfg.namespace)
    # No Retries middleware: a failed attempt is the engine's to retry (its ladder, its hint); a killed worker's
    # redelivery is handled by our own delivery counter and leases. No TimeLimit: an attempt may wait on a person.
    middleware = [AgeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), CurrentMessage()]
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        client=client, namespace=keys.dramatiq_namespace, middleware=middleware,
        heartbeat_timeout=cfg.heartbeat_timeout_ms, maintenance_chance=100_000)
    return Bus(url, keys, client, broker)


def advertise(bus: Bus) -> DesktopInfo:
    """The desktop side: claim (or keep) the namespace's bus id and say who owns it. Workers check it."""
    bus_id = uuid.uuid4().hex
    existing = bus.client.get(bus.keys.desktop)
    if existing is not None:
        try:
            bus_id = DesktopInfo.model_validate_json(existing).bus_id
        except ValueError:
            pass  # damaged: replaced below
    info = DesktopInfo(namespace=bus.keys.ns, bus_id=bus_id, host=socket.gethostname(), pid=os.getpid(),
                       started=time.time())
    bus.client.set(bus.keys.desktop, info.model_dump_json())
    return info


def desktop_of(bus: Bus) -> DesktopInfo:
    """The worker side: the desktop advertised on this broker and namespace, or BusRefused saying why not."""
    raw = bus.client.get(bus.keys.desktop)
    if raw is None:
        others = sorted({k.decode(errors="replace").rsplit(":", 1)[0]
                         for k in bus.client.scan_iter(match="*:desktop", count=1000)})[:5]
        hint = f" (namespaces advertised here: {', '.join(others)})" if others else ""
        raise BusRefused(f"no Conductor desktop has advertised the namespace {bus.keys.ns!r} on {bus.shown}{hint}: "
                         "this worker is pointed at a different broker or namespace than the desktop. Start the "
                         "desktop with --broker first, and give the worker the same broker URL and --namespace.")
    try:
        return DesktopInfo.model_validate_json(raw)
    except ValueError as exc:
        raise BusRefused(f"{bus.keys.desktop} on {bus.shown} is damaged ({exc}); restart the desktop") from None
