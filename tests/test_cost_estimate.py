"""A cost estimate in the ticket review before approval: measured from the prompt, priced per tier's model,
'unknown' (never zero) when a model has no price, and target files read only through the worker's sandbox."""

from __future__ import annotations

import re
from pathlib import Path

from gui_support import app_factory, make_controller, make_session, plan  # noqa: F401

from conductor.settings import ApplySettings
from conductor.app.cost_estimate import CostEstimator, TicketText, estimate_ticket, summary
from conductor.config import Config, EndpointConfig
from conductor.gui import tags
from conductor.usage import PriceTable


def _text(context: int = 0, model: str | None = None, description: str = "Do it") -> TicketText:
    return TicketText("T1", "Add login", description, "works", model, context)


def test_a_bigger_prompt_costs_more_and_the_figure_is_never_zero() -> None:
    cfg = Config()
    prices = PriceTable.for_config(cfg)
    small = estimate_ticket(_text(), cfg, prices, tool_chars=2000)
    big = estimate_ticket(_text(context=80_000), cfg, prices, tool_chars=2000)
    assert small.cost_usd is not None and 0 < small.cost_usd < big.cost_usd
    assert big.prompt_tokens - small.prompt_tokens >= 3 * 80_000 // 4, "the files are sent on every worker turn"
    assert small.worker_model == cfg.models.tier3 and small.review_model == cfg.models.tier4
    pricier = estimate_ticket(_text(model="gemini-3.1-pro-preview"), cfg, prices, tool_chars=2000)
    assert pricier.worker_model == "gemini-3.1-pro-preview" and pricier.cost_usd > small.cost_usd


def test_a_model_without_a_price_is_unknown_never_free() -> None:
    cfg = Config()
    cfg = cfg.updated({"endpoints": {"lab": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
                                     "home": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "free": True}}})
    prices = PriceTable.for_config(cfg)
    unknown = estimate_ticket(_text(model="lab:mystery-7b"), cfg, prices, tool_chars=0)
    assert unknown.cost_usd is None and unknown.unpriced == ("lab:mystery-7b",)
    assert unknown.label().endswith("· unknown")
    free = estimate_ticket(_text(model="home:llama"), cfg, prices, tool_chars=0)
    assert free.unpriced == () and free.cost_usd is not None, "free only where the person said so"
    known = estimate_ticket(_text(), cfg, prices, tool_chars=0)
    line = summary([known, unknown])
    assert "unknown for 1 (no price for lab:mystery-7b)" in line and "for 1, " in line
    assert "$0.0000" not in summary([unknown]) and "unknown for 1" in summary([unknown])
    assert summary([known]).startswith("Estimated first attempt of 1 ticket: ~") and "$" in summary([known])
    assert summary([]) == ""


def test_target_files_are_measured_through_the_sandbox(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "a.py").write_text("x = 1\n" * 1000, "utf-8")
    (ws / ".env").write_text("SECRET=" + "s" * 50_000, "utf-8")
    (tmp_path / "outside.txt").write_text("o" * 90_000, "utf-8")
    est = CostEstimator(ws, (), ())
    assert est.context_chars(["src/a.py"]) >= 6000
    for hostile in (".env", "../outside.txt", str(tmp_path / "outside.txt"), "src/../../outside.txt"):
        assert est.context_chars([hostile]) < 1000, f"{hostile} was read, not refused"
    assert est.context_chars(["missing.py"]) == 0


def test_the_ticket_review_shows_an_estimate_per_ticket_and_in_total(
        tmp_path: Path, app_factory) -> None:  # noqa: F811
    c = make_controller(make_session(tmp_path, auto_run=False))
    p = app_factory(c).pilot
    plan(p)
    assert p.approve("plan") == ""
    p.wait_for_approval("tickets")
    p.open_approval("tickets")
    first = p.value(tags.ticket_field(0, "estimate"))
    assert re.fullmatch(r"\d+(\.\d)?k? · ~\$\d+\.\d{4}", first), first
    total = p.value(tags.TICKETS_ESTIMATE)
    assert total.startswith("Estimated first attempt of 6 tickets: ~") and "$" in total, total

    c.session.apply_settings(ApplySettings({"endpoints": {"lab": {"kind": "openai",  # declared in Settings
                                                                   "base_url": "http://127.0.0.1:9/v1"}}}))
    p.type(tags.ticket_field(0, "model"), "lab:mystery-7b")
    assert p.value(tags.ticket_field(0, "estimate")).endswith("· unknown")
    assert "unknown for 1 (no price for lab:mystery-7b)" in p.value(tags.TICKETS_ESTIMATE)
    p.click(tags.ticket_field(0, "drop"))
    assert p.value(tags.ticket_field(0, "estimate")) == "dropped"
    assert p.value(tags.TICKETS_ESTIMATE).startswith("Estimated first attempt of 5 tickets")
    assert "unknown" not in p.value(tags.TICKETS_ESTIMATE)


# ---------------------------------------------------------------- the spawn dialog: context against the window


def test_context_windows_are_known_only_where_published() -> None:
    from conductor.app.context_budget import context_window
    assert context_window("gemini-3.5-flash-lite") == 1_048_576
    assert context_window("anthropic:claude-sonnet-4-5") == 200_000
    assert context_window("lab:gemini-3.5-flash") is None, "a local server's window is its own"
    assert context_window("mystery") is None


def test_the_spawn_dialog_weighs_the_context_against_the_window(tmp_path: Path, app_factory) -> None:  # noqa: F811
    from gui_support import make_workspace
    cfg = Config()
    cfg = cfg.updated({"engine": {"step_mode": True}})
    ws = make_workspace(tmp_path)
    (ws / "notes").mkdir()
    (ws / "notes" / "survey.md").write_text("# survey\n" + "word " * 8000, "utf-8")
    c = make_controller(make_session(tmp_path, cfg=cfg))
    p = app_factory(c).pilot
    plan(p)
    p.wait_for_approval("plan")
    assert p.approve("plan") == ""
    p.wait_for_approval("tickets")
    assert p.approve("tickets") == ""
    p.wait_for_approval("spawn")
    p.open_approval("spawn")
    # 40,000 characters, of which the worker is sent the first 20,000 (read_context cuts): ~5k tokens
    assert re.fullmatch(r"Context: notes/survey\.md ~5\.\dk", p.value(tags.SPAWN_FILES)), p.value(tags.SPAWN_FILES)
    budget = p.value(tags.SPAWN_BUDGET)
    assert re.match(r"First request ~\d\.\dk tokens \(prompt 5\.\dk, system \d+, tools [\d.]+k?\) · "
                    r"\d\.\d% of gemini-3\.5-flash-lite's 1,048,576-token window$", budget), budget

    p.type(tags.SPAWN_CONTEXT, "notes/survey.md\nnothing/here.py\n../outside.txt")
    files = p.value(tags.SPAWN_FILES)
    assert "nothing/here.py (missing)" in files and "../outside.txt ~" in files, files
    p.type(tags.SPAWN_PROMPT, "x" * 4_400_000)
    assert p.value(tags.SPAWN_BUDGET).endswith("— TOO BIG for the window")
    c.session.apply_settings(ApplySettings({"endpoints": {"lab": {"kind": "openai",  # declared in Settings
                                                                   "base_url": "http://127.0.0.1:9/v1"}}}))
    p.type(tags.SPAWN_MODEL, "lab:mystery-7b")
    assert p.value(tags.SPAWN_BUDGET).endswith("· lab:mystery-7b's context window is unknown")
