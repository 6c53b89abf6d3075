"""Ticket review: Tier 2's DAG for one track. Every field is editable, tickets can be added and dropped, and
the graph is validated on every keystroke: the problems are listed with the offending ids and Approve stays
disabled until there are none."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import dearpygui.dearpygui as dpg

from conductor import dag
from conductor.app import split_ids, split_lines
from conductor.app.cost_estimate import TicketEstimate, TicketText, summary
from conductor.approval_payloads import TicketsPayload
from conductor.approvals import ApprovalRequest
from conductor.gui import tags
from conductor.gui.dialogs.base import ApprovalDialog, label
from conductor.gui.theme import DIM, ERROR, OK
from conductor.gui.util import safe
from conductor.model import TicketSpec

AUTO = "auto (ladder)"
FIELDS = ("id", "title", "deps", "files", "step", "model", "drop")


class TicketsDialog(ApprovalDialog[TicketsPayload]):
    kind = "tickets"
    tag = tags.TICKETS_DIALOG
    title = "Ticket review"
    approve_label = "Approve tickets"
    size = (1060, 660)

    def first_field(self) -> str | None:
        return tags.ticket_field(0, "title")

    def payload_type(self) -> type[TicketsPayload]:
        return TicketsPayload

    def heading(self, req: ApprovalRequest) -> str:
        p = self.typed(req)
        return f"{p.track_title}: {len(p.tickets)} tickets"

    def new_draft(self, req: ApprovalRequest) -> dict[str, Any]:
        rows = [{"id": t.id, "title": t.title, "description": t.description, "deps": ", ".join(t.depends_on),
                 "files": ", ".join(t.target_files), "criteria": "\n".join(t.acceptance_criteria),
                 "step": t.step_mode, "model": t.model_override or AUTO, "drop": False}
                for t in self.typed(req).tickets]
        return {"rows": rows, "selected": 0}

    # ---------------- body

    def fill(self, req: ApprovalRequest, draft: dict[str, Any]) -> None:
        dpg.add_text("", tag=tags.TICKETS_PROBLEMS, wrap=0)
        est = dpg.add_text("", tag=tags.TICKETS_ESTIMATE, wrap=0, color=DIM)
        with dpg.tooltip(est):
            dpg.add_text("An estimate, before anything is spent: each ticket's prompt (system prompt, its text, its\n"
                         "target files as the worker receives them, the tool declarations) at ~4 characters a token,\n"
                         "sent over a few worker turns, plus a typical output and one Tier 4 review; priced for the\n"
                         "model each tier will use on the first attempt. 'unknown' when a model has no price.")
        height = min(34 + 29 * len(draft["rows"]), 300)
        with dpg.table(header_row=True, borders_innerH=True, row_background=True, resizable=True,
                       policy=dpg.mvTable_SizingStretchProp, scrollY=True, height=height):
            for name, w in (("ID", 0.6), ("Title", 2.1), ("Depends on", 1.0), ("Target files", 1.7),
                            ("Step", 0.4), ("Model override", 1.6), ("Est. tokens · cost", 1.5), ("Drop", 0.4)):
                dpg.add_table_column(label=name, init_width_or_weight=w)
            for i, row in enumerate(draft["rows"]):
                self._row(i, row)
        dpg.add_button(label="+ Add ticket", tag=tags.TICKETS_ADD, callback=safe(self._add))
        dpg.add_spacer(height=2)
        with dpg.group(horizontal=True):
            label("Details of")
            dpg.add_combo(self._choices(draft), tag=tags.TICKETS_DETAIL_SELECT, width=220,
                          default_value=self._choices(draft)[draft["selected"]] if draft["rows"] else "",
                          callback=safe(self._select))
        sel = draft["rows"][draft["selected"]] if draft["rows"] else {"description": "", "criteria": ""}
        label("Description")
        dpg.add_input_text(tag=tags.TICKETS_DESCRIPTION, default_value=sel["description"], multiline=True,
                           height=54, width=-1, user_data="description", callback=safe(self._detail))
        label("Acceptance criteria (one per line)")
        dpg.add_input_text(tag=tags.TICKETS_CRITERIA, default_value=sel["criteria"], multiline=True, height=54,
                           width=-1, user_data="criteria", callback=safe(self._detail))

    def _row(self, i: int, row: dict[str, Any]) -> None:
        cb = safe(self._edited)
        models = [AUTO, *self.c.offered_models()]
        with dpg.table_row():
            dpg.add_input_text(tag=tags.ticket_field(i, "id"), default_value=row["id"], width=-1, user_data=(i, "id"),
                               callback=cb)
            dpg.add_input_text(tag=tags.ticket_field(i, "title"), default_value=row["title"], width=-1,
                               user_data=(i, "title"), callback=cb)
            dpg.add_input_text(tag=tags.ticket_field(i, "deps"), default_value=row["deps"], width=-1,
                               user_data=(i, "deps"), callback=cb, hint="ids, comma separated")
            dpg.add_input_text(tag=tags.ticket_field(i, "files"), default_value=row["files"], width=-1,
                               user_data=(i, "files"), callback=cb)
            dpg.add_checkbox(tag=tags.ticket_field(i, "step"), default_value=row["step"], user_data=(i, "step"),
                             callback=cb)
            dpg.add_combo(models, tag=tags.ticket_field(i, "model"), default_value=row["model"], width=-1,
                          user_data=(i, "model"), callback=cb)
            dpg.add_text("", tag=tags.ticket_field(i, "estimate"), color=DIM)
            dpg.add_checkbox(tag=tags.ticket_field(i, "drop"), default_value=row["drop"], user_data=(i, "drop"),
                             callback=cb)

    @staticmethod
    def _choices(draft: dict[str, Any]) -> list[str]:
        return [f"{n + 1}. {r['id'] or '?'} {r['title'][:24]}" for n, r in enumerate(draft["rows"])]

    # ---------------- editing

    def _draft(self) -> dict[str, Any] | None:
        return self.drafts.get(self.request.id) if self.request is not None else None

    def _edited(self, _sender: object, value: Any, where: tuple[int, str]) -> None:
        draft = self._draft()
        if draft is None:
            return
        i, name = where
        draft["rows"][i][name] = value
        if name in ("id", "title"):
            dpg.configure_item(tags.TICKETS_DETAIL_SELECT, items=self._choices(draft))
        self.validate()

    def _detail(self, _sender: object, value: str, name: str) -> None:
        draft = self._draft()
        if draft is not None and draft["rows"]:
            draft["rows"][draft["selected"]][name] = value
            self._estimate(draft)  # a longer description is a longer prompt

    def _select(self, _sender: object, value: str, _u: object) -> None:
        draft = self._draft()
        if draft is None:
            return
        choices = self._choices(draft)
        draft["selected"] = choices.index(value) if value in choices else 0
        row = draft["rows"][draft["selected"]]
        dpg.set_value(tags.TICKETS_DESCRIPTION, row["description"])
        dpg.set_value(tags.TICKETS_CRITERIA, row["criteria"])

    def _add(self, *_: object) -> None:
        draft = self._draft()
        if draft is None or self.request is None:
            return
        self.save_draft()
        n = len(draft["rows"]) + 1
        draft["rows"].append({"id": f"T{n}", "title": "", "description": "", "deps": "", "files": "",
                              "criteria": "", "step": False, "model": AUTO, "drop": False})
        draft["selected"] = n - 1
        self.open(self.request)

    def save_draft(self) -> None:
        draft = self._draft()
        if draft is None:
            return
        for i, row in enumerate(draft["rows"]):
            for name in FIELDS:
                tag = tags.ticket_field(i, name)
                if dpg.does_item_exist(tag):
                    row[name] = dpg.get_value(tag)

    # ---------------- validation and payload

    def problems(self, draft: dict[str, Any]) -> list[str]:
        """Field problems (bad ids, empty titles) and graph problems (unknown, duplicate, cyclic), each
        naming the ticket ids involved."""
        kept = [r for r in draft["rows"] if not r["drop"]]
        if not kept:
            return ["keep at least one ticket, or reject"]
        out = []
        for r in kept:
            try:
                TicketSpec(id=r["id"].strip(), title=r["title"].strip() or "-")
            except ValueError as exc:
                out.append(f"ticket {r['id']!r}: {_first_error(exc)}")
            if not r["title"].strip():
                out.append(f"ticket {r['id']!r} has no title")
        nodes = [SimpleNamespace(id=r["id"].strip(), depends_on=split_ids(r["deps"])) for r in kept]
        return out + dag.problems(nodes)

    def validate(self) -> None:
        draft = self._draft()
        if draft is None or not dpg.does_item_exist(tags.TICKETS_PROBLEMS):
            return
        problems = self.problems(draft)
        if problems:
            text = "Cannot approve yet:\n" + "\n".join(f"  • {p}" for p in problems)
            dpg.configure_item(tags.TICKETS_PROBLEMS, color=ERROR)
        else:
            kept = [r for r in draft["rows"] if not r["drop"]]
            text = f"✓ The graph is a valid DAG: {len(kept)} tickets."
            dpg.configure_item(tags.TICKETS_PROBLEMS, color=OK)
        dpg.set_value(tags.TICKETS_PROBLEMS, text)
        dpg.configure_item(self.part("approve"), enabled=not problems)
        self._estimate(draft)

    def estimates(self, draft: dict[str, Any]) -> list[tuple[int, TicketEstimate]]:
        """(row, estimate) for each ticket kept, as the rows read now."""
        est = self.c.cost_estimator()
        out = []
        for i, r in enumerate(draft["rows"]):
            if r["drop"]:
                continue
            files = split_ids(r["files"])
            text = TicketText(r["id"].strip(), r["title"], r["description"], r["criteria"],
                              None if r["model"] in (AUTO, "") else r["model"], est.context_chars(files))
            out.append((i, est.estimate(text, self.c.cfg)))
        return out

    def _estimate(self, draft: dict[str, Any]) -> None:
        found = self.estimates(draft)
        for i, e in found:
            tag = tags.ticket_field(i, "estimate")
            if dpg.does_item_exist(tag):
                dpg.set_value(tag, e.label())
        for i, r in enumerate(draft["rows"]):
            if r["drop"] and dpg.does_item_exist(tag := tags.ticket_field(i, "estimate")):
                dpg.set_value(tag, "dropped")
        dpg.set_value(tags.TICKETS_ESTIMATE, summary([e for _, e in found]))

    def payload(self, req: ApprovalRequest, draft: dict[str, Any]) -> TicketsPayload:
        problems = self.problems(draft)
        if problems:
            raise ValueError("Cannot approve: " + "; ".join(problems))
        tickets = tuple(TicketSpec(id=r["id"].strip(), title=r["title"].strip(), description=r["description"],
                                   depends_on=split_ids(r["deps"]), target_files=split_ids(r["files"]),
                                   acceptance_criteria=split_lines(r["criteria"]), step_mode=bool(r["step"]),
                                   model_override=None if r["model"] in (AUTO, "") else r["model"])
                        for r in draft["rows"] if not r["drop"])
        return self.typed(req).model_copy(update={"tickets": tickets})


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        errs = errors()
        if errs:
            msg = str(errs[0].get("msg", exc))
            return msg.removeprefix("Value error, ")
    return str(exc)
