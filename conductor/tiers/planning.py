"""Tier 1 (epic → tracks) and Tier 2 (track → ticket DAG): structured answers, validated, repaired."""

from __future__ import annotations

import threading
from pathlib import Path

from conductor import dag
from conductor.events import Provenance
from conductor.messages import user
from conductor.model import TicketPlan, Track, TrackProposal
from conductor.providers.base import ProviderRequest
from conductor.tiers import prompts
from conductor.tiers.call import CallDeps
from conductor.tiers.structured import ask_structured


def propose_tracks(epic: str, workspace: Path, deps: CallDeps, *, prov: Provenance, cancel: threading.Event,
                   raw_dir: Path) -> TrackProposal:
    """Tier 1: split an epic into tracks."""
    if not epic.strip():
        raise ValueError("the epic is empty: describe the work first")
    cfg = deps.cfg
    req = ProviderRequest(model=cfg.models.tier1, tier=1, system=prompts.TIER1_SYSTEM,
                          messages=(user(prompts.tier1_user(epic, prompts.workspace_listing(workspace))),),
                          thinking=cfg.thinking.tier1, prov=prov.with_(tier=1))
    return ask_structured(TrackProposal, req, deps, cancel=cancel, raw_dir=raw_dir, label="tier1-tracks")


def plan_problems(plan: TicketPlan) -> list[str]:
    """DAG problems (duplicate / unknown / self / cyclic dependencies), each naming the ids."""
    return dag.problems(plan.tickets)


def propose_tickets(track: Track, workspace: Path, deps: CallDeps, *, prov: Provenance, cancel: threading.Event,
                    raw_dir: Path) -> TicketPlan:
    """Tier 2: turn a track into a valid ticket DAG (graph problems are fed back like schema errors)."""
    cfg = deps.cfg
    req = ProviderRequest(model=cfg.models.tier2, tier=2, system=prompts.TIER2_SYSTEM,
                          messages=(user(prompts.tier2_user(track, prompts.workspace_listing(workspace))),),
                          thinking=cfg.thinking.tier2, prov=prov.with_(tier=2, track_id=track.id))
    return ask_structured(TicketPlan, req, deps, cancel=cancel, raw_dir=raw_dir, label="tier2-tickets",
                          extra_check=plan_problems)
