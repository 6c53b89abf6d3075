"""Settings: edits config.toml (models per tier, ladder, workers, attempts, step mode, approval policy, budget,
prices). The whole config is validated before anything is written; an invalid value is refused with the
key and the reason, and nothing changes. Saving is atomic (save_config)."""

from __future__ import annotations

import tomllib
from typing import Any

import dearpygui.dearpygui as dpg
import tomli_w

from conductor.app import AppController, split_ids, split_lines
from conductor.gui import tags
from conductor.gui.hidpi import px
from conductor.gui.theme import DIM, ERROR, Themes
from conductor.gui.util import centre, safe

KINDS = ("plan", "tickets", "spawn", "tool")
NUMBERS = {"engine.max_workers": int, "engine.max_attempts": int, "engine.call_timeout_s": float,
           "engine.repair_attempts": int, "retry.max_retries": int, "approvals.timeout_s": float}
OPTIONAL = {"budget.max_tokens": int, "budget.max_cost_usd": float,
            "budget.max_tokens_per_day": int, "budget.max_cost_usd_per_day": float,
            "budget.max_tokens_per_track": int, "budget.max_cost_usd_per_track": float}


class SettingsDialog:
    size = (780, 620)

    def __init__(self, controller: AppController, themes: Themes) -> None:
        self.c = controller
        self.themes = themes

    def build(self) -> None:
        with dpg.window(tag=tags.SETTINGS_DIALOG, label="Settings", modal=True, show=False, no_collapse=True,
                        width=self.size[0], height=self.size[1], no_saved_settings=True):
            dpg.add_text("", tag="settings_path", color=DIM)
            with dpg.child_window(border=False, height=-px(64)):
                with dpg.tab_bar():
                    with dpg.tab(label="Models"):
                        for tier in (1, 2, 3, 4):
                            self._row(f"models.tier{tier}", f"Tier {tier} model", combo=True)
                        self._row("models.ladder", "Escalation ladder (comma separated)")
                        self._row("models.offered", "Offered models (comma separated)")
                    with dpg.tab(label="Engine"):
                        self._row("engine.max_workers", "Concurrent workers")
                        self._row("engine.max_attempts", "Attempts per ticket")
                        self._row("engine.repair_attempts", "Plan repair attempts")
                        self._row("engine.call_timeout_s", "Model call timeout (s)")
                        self._row("retry.max_retries", "Retries for transient errors")
                        dpg.add_checkbox(label="Step mode: approve every worker spawn",
                                         tag=tags.setting("engine.step_mode"))
                    with dpg.tab(label="Approvals"):
                        dpg.add_text("Approved without asking (use with care: 'tool' approves every write and command)",
                                     color=DIM, wrap=0)
                        for kind in KINDS:
                            dpg.add_checkbox(label=kind, tag=tags.setting(f"approvals.auto.{kind}"))
                        self._row("approvals.timeout_s", "Reject unanswered after (s, 0 = never)")
                        dpg.add_text("Commands allowed without asking (exact command lines, one per line)", color=DIM)
                        dpg.add_input_text(tag=tags.setting("approvals.allow_commands"), multiline=True, height=90,
                                           width=-1)
                    with dpg.tab(label="Budget"):
                        dpg.add_text("Leave empty for no limit. A spent budget pauses the run.", color=DIM)
                        self._row("budget.max_tokens", "Max tokens, all tracks")
                        self._row("budget.max_cost_usd", "Max cost (USD), all tracks")
                        self._row("budget.max_tokens_per_day", "Max tokens per day")
                        self._row("budget.max_cost_usd_per_day", "Max cost (USD) per day")
                        self._row("budget.max_tokens_per_track", "Max tokens per track")
                        self._row("budget.max_cost_usd_per_track", "Max cost (USD) per track")
                        dpg.add_text("Each budget can be reset (counted again from zero) under Tokens & cost.",
                                     color=DIM, wrap=0)
                    with dpg.tab(label="Prices"):
                        dpg.add_text("USD per million tokens, one [[prices]] table per model and date (TOML)",
                                     color=DIM)
                        box = dpg.add_input_text(tag=tags.setting("prices"), multiline=True, height=-1, width=-1)
                        self.themes.mono(box)
            dpg.add_text("", tag=tags.SETTINGS_ERROR, color=ERROR, wrap=0)
            with dpg.group(horizontal=True):
                dpg.add_button(label="Save", tag=tags.SETTINGS_SAVE, width=px(120), callback=safe(self._save))
                dpg.add_button(label="Cancel", tag=tags.SETTINGS_CANCEL, width=px(120), callback=safe(self._cancel))

    def _row(self, key: str, text: str, combo: bool = False) -> None:
        with dpg.group(horizontal=True):
            dpg.add_text(f"{text:<40}")
            if combo:
                dpg.add_combo([], tag=tags.setting(key), width=-1)
            else:
                dpg.add_input_text(tag=tags.setting(key), width=-1)

    # ---------------- open: widgets from the live config

    def open(self) -> None:
        cfg = self.c.cfg
        dpg.set_value("settings_path", f"File: {self.c.config_path or '(no config file: changes apply until exit)'}")
        offered = self.c.offered_models()
        for tier in (1, 2, 3, 4):
            dpg.configure_item(tags.setting(f"models.tier{tier}"), items=offered)
            dpg.set_value(tags.setting(f"models.tier{tier}"), cfg.models.for_tier(tier))
        dpg.set_value(tags.setting("models.ladder"), ", ".join(cfg.models.ladder))
        dpg.set_value(tags.setting("models.offered"), ", ".join(cfg.models.offered))
        for key in NUMBERS:
            section, name = key.split(".")
            dpg.set_value(tags.setting(key), str(getattr(getattr(cfg, section), name)))
        for key in OPTIONAL:
            section, name = key.split(".")
            value = getattr(getattr(cfg, section), name)
            dpg.set_value(tags.setting(key), "" if value is None else str(value))
        dpg.set_value(tags.setting("engine.step_mode"), cfg.engine.step_mode)
        for kind in KINDS:
            dpg.set_value(tags.setting(f"approvals.auto.{kind}"), kind in cfg.approvals.auto)
        dpg.set_value(tags.setting("approvals.allow_commands"), "\n".join(cfg.approvals.allow_commands))
        prices = {"prices": [p.model_dump(mode="python", exclude_none=True) for p in cfg.prices]}
        dpg.set_value(tags.setting("prices"), tomli_w.dumps(prices))
        dpg.set_value(tags.SETTINGS_ERROR, "")
        centre(tags.SETTINGS_DIALOG, *self.size)
        dpg.configure_item(tags.SETTINGS_DIALOG, show=True)

    # ---------------- save: widgets → dict → validated config

    def collect(self) -> dict[str, Any]:
        """The edited config as a dict; raises ValueError naming the field when a value cannot be read."""
        data = self.c.cfg.model_dump(mode="python")
        for tier in (1, 2, 3, 4):
            data["models"][f"tier{tier}"] = dpg.get_value(tags.setting(f"models.tier{tier}"))
        data["models"]["ladder"] = split_ids(dpg.get_value(tags.setting("models.ladder")))
        data["models"]["offered"] = split_ids(dpg.get_value(tags.setting("models.offered")))
        for key, kind in {**NUMBERS, **OPTIONAL}.items():
            section, name = key.split(".")
            data[section][name] = _number(key, dpg.get_value(tags.setting(key)), kind, optional=key in OPTIONAL)
        data["engine"]["step_mode"] = bool(dpg.get_value(tags.setting("engine.step_mode")))
        data["approvals"]["auto"] = [k for k in KINDS if dpg.get_value(tags.setting(f"approvals.auto.{k}"))]
        data["approvals"]["allow_commands"] = split_lines(dpg.get_value(tags.setting("approvals.allow_commands")))
        try:
            data["prices"] = tomllib.loads(dpg.get_value(tags.setting("prices")) or "").get("prices", [])
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"prices: not valid TOML: {exc}") from None
        return data

    def _save(self, *_: object) -> None:
        try:
            data = self.collect()
        except ValueError as exc:
            dpg.set_value(tags.SETTINGS_ERROR, f"Not saved: {exc}")
            return
        err = self.c.save_settings(data)
        if err:
            dpg.set_value(tags.SETTINGS_ERROR, f"Not saved: {err}")
            return
        dpg.configure_item(tags.SETTINGS_DIALOG, show=False)

    def _cancel(self, *_: object) -> None:
        dpg.configure_item(tags.SETTINGS_DIALOG, show=False)


def _number(key: str, text: str, kind: type, optional: bool) -> int | float | None:
    text = (text or "").strip().replace(",", "").replace("_", "")
    if not text and optional:
        return None
    try:
        value: int | float = kind(text)
        return value
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{key}: {text!r} is not {what}") from None
