"""Tier 4: review a finished ticket against its acceptance criteria; pass, or fail with a short hint."""

from __future__ import annotations

import threading
from pathlib import Path

from conductor.events import Provenance
from conductor.messages import user
from conductor.model import Review, Ticket
from conductor.providers.base import ProviderRequest
from conductor.tiers import prompts
from conductor.tiers.call import CallDeps
from conductor.tiers.structured import ask_structured


def review_ticket(ticket: Ticket, report: str, actions: list[str], deps: CallDeps, *, prov: Provenance,
                  cancel: threading.Event, raw_dir: Path) -> Review:
    cfg = deps.cfg
    req = ProviderRequest(model=cfg.models.tier4, tier=4, system=prompts.TIER4_SYSTEM,
                          messages=(user(prompts.tier4_user(ticket, report, actions)),),
                          thinking=cfg.thinking.tier4, prov=prov.with_(tier=4))
    return ask_structured(Review, req, deps, cancel=cancel, raw_dir=raw_dir,
                          label=f"tier4-{ticket.id}-a{prov.attempt}")
