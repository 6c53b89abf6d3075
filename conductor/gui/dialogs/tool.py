"""Tool approval: one write, edit or command a worker asked for. Shows the diff (or the exact command, its
argv and working folder) and where the request comes from; the arguments are editable field by field;
approve, reject with a reason, or always allow this exact form for the track."""

from __future__ import annotations

import json
from typing import Any, assert_never

import dearpygui.dearpygui as dpg
from pydantic import JsonValue

from conductor import redact
from conductor.approval_payloads import (
    CommandPreview,
    FileChangePreview,
    McpCallPreview,
    NoPreview,
    PreviewFailed,
    ToolPayload,
    ToolPreview,
)
from conductor.approvals import ApprovalRequest
from conductor.gui import tags
from conductor.gui.dialogs.base import ApprovalDialog, label
from conductor.gui.diff_view import colour_unified, compact
from conductor.gui.theme import DIM, WARNING
from conductor.gui.util import safe


class ToolDialog(ApprovalDialog[ToolPayload]):
    kind = "tool"
    tag = tags.TOOL_DIALOG
    title = "Tool approval"
    approve_label = "Approve tool call"
    size = (940, 680)
    _preview_seen: object = None

    def payload_type(self) -> type[ToolPayload]:
        return ToolPayload

    def first_field(self) -> str | None:
        args = self.drafts.get(self.request.id, {}).get("args", {}) if self.request is not None else {}
        return tags.tool_arg(next(iter(args))) if args else None

    def heading(self, req: ApprovalRequest) -> str:
        p = self.typed(req)
        return f"{p.tool}  {_what(p.preview)}".strip()

    def new_draft(self, req: ApprovalRequest) -> dict[str, Any]:
        args = self.typed(req).args
        return {"args": {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in args.items()},
                "raw": {k: not isinstance(v, str) for k, v in args.items()}, "always": False}

    def fill(self, req: ApprovalRequest, draft: dict[str, Any]) -> None:
        p = self.typed(req)
        if req.prov.tier == 4 and p.tool == "run_command":  # not a worker's: QA's own check
            dpg.add_text(f"QA runs the workspace's check command in ticket {req.prov.ticket_id}'s worktree: a failure "
                         "fails the attempt, and its output becomes the hint for the next one.", wrap=0)
        if p.interrupted:
            dpg.add_text(f"Asked again after a restart: {p.interrupted}", color=WARNING, wrap=0)
        self._preview(p)
        label("Arguments (edit before approving; an edited call runs as edited)")
        for name, value in draft["args"].items():
            long = "\n" in value or len(value) > 70
            hint = "JSON value" if draft["raw"][name] else ""
            with dpg.group(horizontal=not long):
                dpg.add_text(f"{name}:")
                item = dpg.add_input_text(tag=tags.tool_arg(name), default_value=value, width=-1, multiline=long,
                                          height=120 if long else 0, hint=hint, user_data=name,
                                          callback=safe(self._edited))
                if long:
                    self.themes.mono(item)
        # Only an exact command form can be remembered; writes and shell syntax always ask (the gate says which).
        dpg.add_checkbox(label="Always allow this exact command for this track (no more questions for it)",
                         tag=tags.TOOL_ALWAYS, default_value=draft["always"], callback=safe(self._always),
                         show=p.can_remember)

    def _preview(self, p: ToolPayload) -> None:
        match p.preview:
            case PreviewFailed(error=error):
                dpg.add_text(f"Preview failed: {error}", color=WARNING, wrap=0)
            case FileChangePreview() as f:
                label("Diff" + (" (new file)" if f.new_file else "") + " — recomputed when you edit the arguments")
                dpg.add_text("", tag=tags.TOOL_PREVIEW_NOTE, color=WARNING, wrap=0)
                diff = f.diff or "(no change)"  # shown, never edited: colour_unified redacts each line
                lines = max(diff.count("\n") + 1, 8)  # room for an edit that makes the diff longer
                compact(dpg.add_child_window(tag=tags.TOOL_PREVIEW, height=min(24 + 18 * lines, 260), width=-1,
                                             border=True, horizontal_scrollbar=True))
                colour_unified(tags.TOOL_PREVIEW, diff, self.themes)
                self._preview_seen = None
            case CommandPreview() as c:
                label("Command")
                box = dpg.add_input_text(tag=tags.TOOL_PREVIEW, default_value=redact.text(c.command), readonly=True,
                                         width=-1)
                self.themes.mono(box)
                dpg.add_text(f"argv: {json.dumps(list(c.argv))}", wrap=0)
                dpg.add_text(f"working folder: {c.cwd}    timeout: {c.timeout_s} s", wrap=0)
            case McpCallPreview() as m:  # a third-party server runs this call: say which, and how it is reached
                label("MCP server tool")
                dpg.add_text(f"server: {m.server}    tool: {m.tool}    timeout: {m.timeout_s} s", tag=tags.TOOL_MCP,
                             wrap=0)
                dpg.add_text(f"runs: {m.transport}", wrap=0)
            case NoPreview():
                pass
            case _:
                assert_never(p.preview)
        if p.needs_person and p.can_remember:  # a plain command: an exact allow rule may let it run
            dpg.add_text("Commands always ask you unless an exact allow rule matches: tick 'Always allow' below "
                         "(or press Shift+A) and this exact command runs without asking for the rest of the "
                         "track.", color=DIM, wrap=0)
        elif p.needs_person:
            dpg.add_text(f"Only a person may approve this: {p.needs_person}", color=WARNING, wrap=0)
        dpg.add_spacer(height=4)

    def _edited(self, _sender: object, value: str, name: str) -> None:
        if self.request is not None:
            self.drafts[self.request.id]["args"][name] = value
            if isinstance(self.typed(self.request).preview, FileChangePreview):  # the diff follows the edit
                try:  # (computed off this thread)
                    args = self.payload(self.request, self.drafts[self.request.id]).args
                except ValueError as exc:
                    dpg.set_value(tags.TOOL_PREVIEW_NOTE, f"diff not updated: {exc}")
                    return
                self.c.preview_tool(self.request.id, args)

    def refresh_preview(self) -> None:
        """Draw the newest recomputed preview of the open request (a ToolPreviewReady event)."""
        req = self.request
        if req is None or not self.is_open or not dpg.does_item_exist(tags.TOOL_PREVIEW):
            return
        found = self.c.tool_previews.get(req.id)
        if found is None or found is self._preview_seen:
            return
        self._preview_seen = found
        if found.pending:
            dpg.set_value(tags.TOOL_PREVIEW_NOTE, "recomputing the diff for your edit…")
            return
        if found.error is not None:
            dpg.set_value(tags.TOOL_PREVIEW_NOTE, f"the edited call cannot run as it is: {found.error}")
            return
        dpg.set_value(tags.TOOL_PREVIEW_NOTE, f"diff of your edit (revision {found.revision})")
        dpg.delete_item(tags.TOOL_PREVIEW, children_only=True)
        colour_unified(tags.TOOL_PREVIEW, found.diff or "(no change)", self.themes)

    def _always(self, _sender: object, value: bool, _u: object) -> None:
        if self.request is not None:
            self.drafts[self.request.id]["always"] = bool(value)

    def always_allow(self) -> bool:
        """Tick 'Always allow' (Shift+A). False when this call cannot be remembered (not an exact command)."""
        if self.request is None or not dpg.does_item_exist(tags.TOOL_ALWAYS) or not dpg.is_item_shown(tags.TOOL_ALWAYS):
            return False
        dpg.set_value(tags.TOOL_ALWAYS, True)
        self.drafts[self.request.id]["always"] = True
        return True

    def save_draft(self) -> None:
        if self.request is None or self.request.id not in self.drafts:
            return
        draft = self.drafts[self.request.id]
        for name in draft["args"]:
            if dpg.does_item_exist(tags.tool_arg(name)):
                draft["args"][name] = dpg.get_value(tags.tool_arg(name))
        if dpg.does_item_exist(tags.TOOL_ALWAYS):
            draft["always"] = bool(dpg.get_value(tags.TOOL_ALWAYS))

    def remember(self) -> bool:
        if self.request is None or not dpg.does_item_exist(tags.TOOL_ALWAYS) or not dpg.is_item_shown(tags.TOOL_ALWAYS):
            return False
        return bool(self.drafts.get(self.request.id, {}).get("always"))

    def payload(self, req: ApprovalRequest, draft: dict[str, Any]) -> ToolPayload:
        args: dict[str, JsonValue] = {}
        for name, text in draft["args"].items():
            if draft["raw"][name]:
                try:
                    args[name] = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"Argument {name!r} is not valid JSON: {exc.msg} at column {exc.colno}.") from None
            else:
                args[name] = text
        return self.typed(req).with_args(args)


def _what(preview: ToolPreview) -> str:
    """What the call touches, for the heading: the file (the one really written, through a symlink), the
    command, the MCP server's tool."""
    match preview:
        case FileChangePreview(path=path, target=None):
            return path
        case FileChangePreview(path=path, target=target):
            return f"{target} (through the symlink {path})"
        case CommandPreview(command=command):
            return command
        case McpCallPreview(server=server, tool=tool):
            return f"{server}/{tool}"
        case PreviewFailed() | NoPreview():
            return ""
        case _:
            assert_never(preview)

