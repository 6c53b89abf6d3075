"""GUI pilot on a git workspace: the person reviews and undoes work where they see it.

  * a tool approval's diff is coloured and follows an edit of the arguments (recomputed off the GUI thread);
  * a ticket's diff and the track's "changes so far" open in the diff window, coloured, file by file;
  * revert is asked first (the dialog names the tickets that depend on it), "no" changes nothing, "yes" puts a
    revert commit on the track branch;
  * "merge into base" always asks with the diff stat, merges only on "yes", and is refused with the files when
    the base moved in a conflicting way;
  * a plain folder is offered `git init` before the track runs; "yes" initialises it and the run uses git.
Each checks git itself and the person's checkout. With a display, screenshots are written to the test's tmp
folder (looked at by hand, never committed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dearpygui.dearpygui as dpg
from gui_support import answer_until, app_factory, display_ok, done, make_controller, make_session, plan  # noqa: F401

from conductor.config import Config
from conductor.gui import tags
from conductor.gui.pilot import Pilot
from conductor.gui.theme import ERROR, OK
from conductor.messages import ToolCall
from conductor.providers.base import ProviderRequest
from conductor.providers.scripted import Reply, ScriptedProvider, demo_reply
from tests.git_support import person_state, sh_git


def _repo(root: Path) -> Path:
    ws = root / "workspace"
    ws.mkdir(parents=True)
    (ws / "a.py").write_text("A = 1\n")
    (ws / "b.py").write_text("B = 1\n")
    sh_git(ws, "init", "-q")
    sh_git(ws, "add", "-A")
    sh_git(ws, "commit", "-q", "-m", "initial")
    return ws


def _writer(path: str, content: str):  # type: ignore[no-untyped-def]
    def respond(req: ProviderRequest, n: int) -> Reply:
        if sum(1 for m in req.messages if m.role == "model") == 0:
            call = ToolCall(f"w{req.prov.ticket_id}", "write_file", {"path": path, "content": content})
            return Reply(text=f"writing {path}", tool_calls=(call,))
        return Reply(text=f"Work on {req.prov.ticket_id} is complete.")
    return respond


def _provider() -> ScriptedProvider:
    tickets = {"tickets": [
        {"id": "A", "title": "A edits a.py", "description": "Edit a.py.", "depends_on": [], "target_files": ["a.py"],
         "acceptance_criteria": ["done"], "step_mode": False, "model_override": None},
        {"id": "B", "title": "B edits b.py", "description": "Edit b.py.", "depends_on": ["A"],
         "target_files": ["b.py"], "acceptance_criteria": ["done"], "step_mode": False, "model_override": None}]}
    return ScriptedProvider({1: demo_reply, 4: demo_reply, 2: [Reply(text=json.dumps(tickets))],
                             (3, "A"): _writer("a.py", "A = 'asked'\n"), (3, "B"): _writer("b.py", "B = 'by B'\n")})


def _cfg(tmp: Path) -> Config:
    return Config().updated({"engine": {"max_workers": 2}, "git": {"worktrees_root": str(tmp / "worktrees")}})


def _texts(parent: str) -> list[tuple[str, Any]]:
    """(text, colour) of every text item below `parent`, in order."""
    out: list[tuple[str, Any]] = []
    stack = list(reversed(dpg.get_item_children(parent, 1) or []))
    while stack:
        item = stack.pop()
        kind = str(dpg.get_item_type(item))
        if kind.endswith("mvText"):
            out.append((str(dpg.get_value(item)), dpg.get_item_configuration(item).get("color")))
        stack.extend(reversed(dpg.get_item_children(item, 1) or []))
    return out


def _rgb(colour: Any) -> tuple[int, int, int]:
    values = [float(c) for c in colour[:3]]
    scale = 255.0 if max(values) <= 1.0 else 1.0
    return tuple(round(v * scale) for v in values)  # type: ignore[return-value]


def _shot(p: Pilot, tmp: Path, name: str) -> None:
    if p.app.render:
        p.screenshot(tmp / "shots" / f"{name}.png")


def _edit_the_write(tmp: Path):  # type: ignore[no-untyped-def]
    def decide(p: Pilot, req: Any) -> None:
        dialog = p.open_approval("tool", req.id)
        lines = _texts(tags.TOOL_PREVIEW)
        assert ("+A = 'asked'", OK) in [(t, _rgb(c)) for t, c in lines], lines
        assert ("-A = 1", ERROR) in [(t, _rgb(c)) for t, c in lines], lines
        p.type(tags.tool_arg("content"), "A = 'edited by the person'\n")
        p.wait_until(lambda: "diff of your edit" in p.value(tags.TOOL_PREVIEW_NOTE), what="the recomputed diff")
        shown = [t for t, _ in _texts(tags.TOOL_PREVIEW)]
        assert "+A = 'edited by the person'" in shown and "+A = 'asked'" not in shown, shown
        _shot(p, tmp, "tool-approval-recomputed")
        p.click(tags.dialog_part(dialog.tag, "approve"))
    return decide


def test_diffs_revert_asked_and_done_and_merge_into_base_asked(tmp_path: Path, app_factory) -> None:  # noqa: F811
    ws = _repo(tmp_path)
    c = make_controller(make_session(tmp_path, _provider(), _cfg(tmp_path)))
    p = app_factory(c, render=display_ok()).pilot
    plan(p)
    answer_until(p, lambda: done(c), decide={("tool", "A"): _edit_the_write(tmp_path)}, timeout=60)
    (track,) = list(c.session.engines)
    branch = f"conductor/{track}"
    assert sh_git(ws, "show", f"{branch}:a.py") == "A = 'edited by the person'\n", "the edited call ran"
    before = person_state(ws)
    # the end-of-run summary names the branch, its commits and files, and the checks
    p.wait_until(lambda: "Branch: " + branch in p.value(tags.RUN_SUMMARY_TEXT), what="the git summary")
    summary = p.value(tags.RUN_SUMMARY_TEXT)
    assert "Commits: 2 on the branch" in summary and "Files changed against the base: 2" in summary
    assert "Checks run: 0, passed 0" in summary and p.shown(tags.RUN_SUMMARY_MERGE)

    # a ticket's diff, coloured, per file
    p.wait_until(lambda: p.shown(tags.ticket_action("A", "diff")), what="the Diff action")
    p.click(tags.ticket_action("A", "diff"))
    p.wait_until(lambda: c.diff is not None and p.value(tags.DIFF_TITLE).startswith("ticket A"), what="A's diff")
    assert p.shown(tags.DIFF_WINDOW) and "attempt 1 (merged)" in p.value(tags.DIFF_TITLE)
    lines = [(t, _rgb(col)) for t, col in _texts(tags.DIFF_BODY) if col is not None]
    assert ("-A = 1", ERROR) in lines and ("+A = 'edited by the person'", OK) in lines, lines
    assert dpg.get_item_label(tags.diff_file(0)).split() == ["modified", "a.py", "+1", "-1"]
    _shot(p, tmp_path, "ticket-diff")
    p.press("Escape")
    assert not p.shown(tags.DIFF_WINDOW)

    # the track's changes so far, by keyboard
    assert p.press("Ctrl+D") == "track_diff"
    p.wait_until(lambda: "changes so far against its base" in p.value(tags.DIFF_TITLE), what="the track's diff")
    assert [dpg.get_item_label(tags.diff_file(i)).split()[1] for i in range(2)] == ["a.py", "b.py"]
    assert "2 files changed, +2 -2" in p.value(tags.DIFF_NOTE)
    _shot(p, tmp_path, "track-diff")
    p.click(tags.DIFF_CLOSE)

    # revert: asked first, naming the dependent; "no" changes nothing
    tip = sh_git(ws, "rev-parse", branch).strip()
    p.click(tags.ticket_action("A", "revert"))
    assert p.shown(tags.GIT_CONFIRM) and p.value(tags.GIT_CONFIRM_HEADING) == "Revert ticket A?"
    assert "These tickets depend on A" in p.value(tags.GIT_CONFIRM_TEXT) and ": B." in p.value(tags.GIT_CONFIRM_TEXT)
    _shot(p, tmp_path, "revert-asked")
    p.click(tags.GIT_CONFIRM_NO)
    p.frame(5)
    assert sh_git(ws, "rev-parse", branch).strip() == tip and not p.shown(tags.GIT_CONFIRM)
    p.click(tags.ticket_action("A", "revert"))
    p.click(tags.GIT_CONFIRM_YES)
    p.wait_until(lambda: p.value(tags.ticket_cell("A", "status")) == "skipped", what="A reverted")
    assert p.value(tags.ticket_cell("A", "reason")).startswith("reverted by you: revert commit")
    assert sh_git(ws, "show", f"{branch}:a.py") == "A = 1\n" and sh_git(ws, "show", f"{branch}:b.py") == "B = 'by B'\n"
    assert sh_git(ws, "rev-parse", f"{branch}^").strip() == tip, "one revert commit on the track branch"
    assert person_state(ws) == before

    # merge into base: asked, with the diff stat; nothing moves before "yes"
    main = sh_git(ws, "rev-parse", "main").strip()
    p.click(tags.MERGE_BASE_BUTTON)
    p.wait_until(lambda: "Diff stat" in p.value(tags.GIT_CONFIRM_TEXT), what="the merge plan")
    assert p.value(tags.GIT_CONFIRM_HEADING) == f"Merge {branch} into main?"
    assert "b.py  +1 -1" in p.value(tags.GIT_CONFIRM_TEXT) and p.enabled(tags.GIT_CONFIRM_YES)
    _shot(p, tmp_path, "merge-into-base-asked")
    assert sh_git(ws, "rev-parse", "main").strip() == main
    p.click(tags.GIT_CONFIRM_YES)
    p.wait_until(lambda: sh_git(ws, "rev-parse", "main").strip() != main, what="main merged")
    assert sh_git(ws, "show", "main:b.py") == "B = 'by B'\n" and (ws / "b.py").read_text() == "B = 'by B'\n"


def test_merge_into_base_is_refused_with_the_files_when_the_base_moved_in_a_conflicting_way(
        tmp_path: Path, app_factory) -> None:  # noqa: F811
    ws = _repo(tmp_path)
    c = make_controller(make_session(tmp_path, _provider(), _cfg(tmp_path)))
    p = app_factory(c, render=display_ok()).pilot
    plan(p)
    answer_until(p, lambda: done(c), timeout=60)
    (ws / "b.py").write_text("B = 'the person moved main'\n")
    sh_git(ws, "commit", "-q", "-am", "the person's own change")
    main = sh_git(ws, "rev-parse", "main").strip()
    assert p.press("Ctrl+Shift+M") == "merge_base"
    p.wait_until(lambda: p.value(tags.GIT_CONFIRM_ERROR).startswith("Cannot merge"), what="the refusal")
    assert "conflict" in p.value(tags.GIT_CONFIRM_ERROR) and "b.py" in p.value(tags.GIT_CONFIRM_ERROR)
    assert "Conflicting files:\nb.py" in p.value(tags.GIT_CONFIRM_TEXT)
    assert not p.enabled(tags.GIT_CONFIRM_YES), "a refused merge cannot be confirmed"
    _shot(p, tmp_path, "merge-into-base-refused")
    p.press("Escape")
    assert not p.shown(tags.GIT_CONFIRM) and sh_git(ws, "rev-parse", "main").strip() == main


def test_a_plain_folder_is_offered_git_init_and_yes_runs_the_track_on_a_branch(tmp_path: Path,
                                                                                app_factory) -> None:  # noqa: F811
    ws = tmp_path / "workspace"
    ws.mkdir()
    (ws / "a.py").write_text("A = 1\n")
    (ws / ".gitignore").write_text("*.log\n")
    (ws / "noise.log").write_text("ignored\n")
    c = make_controller(make_session(tmp_path, _provider(), _cfg(tmp_path)), offer_git_init=True)
    p = app_factory(c, render=display_ok()).pilot
    plan(p)
    answer_until(p, lambda: p.shown(tags.GIT_CONFIRM), timeout=30)
    assert p.value(tags.GIT_CONFIRM_HEADING) == "Initialise a git repository?"
    assert "2 files (what .gitignore leaves)" in p.value(tags.GIT_CONFIRM_TEXT)
    assert not (ws / ".git").exists() and not c.session.engines, "asked first: nothing initialised, nothing ran"
    _shot(p, tmp_path, "git-init-offered")
    p.click(tags.GIT_CONFIRM_YES)
    answer_until(p, lambda: done(c), timeout=60)
    assert sorted(sh_git(ws, "ls-files").split()) == [".gitignore", "a.py"]
    (track,) = list(c.session.engines)
    assert sh_git(ws, "show", f"conductor/{track}:b.py") == "B = 'by B'\n"
    assert not (ws / "b.py").exists(), "the work is on the track branch, the folder keeps its own files"


def test_a_big_diff_is_cut_with_a_marker_and_a_binary_file_is_named(tmp_path: Path, app_factory) -> None:  # noqa: F811
    from conductor.events import Provenance
    from conductor.git.diffs import Diff, DiffLine, FileDiff, Hunk
    from conductor.git_events import DiffReady, TrackDiffOf
    from conductor.gui.diff_view import MAX_LINES

    _repo(tmp_path)
    c = make_controller(make_session(tmp_path, _provider(), _cfg(tmp_path)))
    p = app_factory(c).pilot
    lines = tuple(DiffLine("add", f"row {i}", None, i + 1) for i in range(MAX_LINES + 250))
    big = FileDiff("big.txt", None, "added", hunks=(Hunk("@@ -0,0 +1,4250 @@", 0, 0, 1, len(lines), lines),),
                   added=len(lines))
    logo = FileDiff("logo.png", None, "added", binary=True)
    later = FileDiff("later.py", None, "modified")
    diff = Diff("a" * 40, "b" * 40, (logo, big, later), truncated=True)
    p.app.git.diff.open_waiting("the track")  # as Ctrl+D does; the answer below stands in for git's
    c.diff_wanted = TrackDiffOf().key
    c.session.events.post(DiffReady(prov=Provenance(track_id="t"), subject=TrackDiffOf(), title="synthetic", diff=diff))
    p.wait_until(lambda: p.value(tags.DIFF_TITLE) == "synthetic", what="the synthetic diff drawn")
    texts = [t for t, _ in _texts(tags.DIFF_BODY)]
    assert "binary file: its contents are not shown" in texts
    assert "not shown: the patch was cut before this file" in texts
    assert any(t.startswith("[… diff truncated here: 250 more lines") for t in texts), texts[-3:]
    assert p.app.git.diff.lines_drawn == MAX_LINES
    assert "the patch is larger than 2 MB" in p.value(tags.DIFF_NOTE)


def test_rewind_is_asked_with_the_earlier_attempts_and_done(tmp_path: Path, app_factory) -> None:  # noqa: F811
    ws = _repo(tmp_path)
    provider = _provider()

    def writer_by_attempt(req: ProviderRequest, n: int) -> Reply:
        if sum(1 for m in req.messages if m.role == "model") == 0:
            content = f"A = 'attempt {req.prov.attempt}'\n"
            call = ToolCall(f"wA{req.prov.attempt}", "write_file", {"path": "a.py", "content": content})
            return Reply(text="writing a.py", tool_calls=(call,))
        return Reply(text="Work on A is complete.")

    def qa(req: ProviderRequest, n: int) -> Reply:  # A's first attempt fails review, everything else passes
        fail = req.prov.ticket_id == "A" and req.prov.attempt == 1
        return Reply(text=json.dumps({"verdict": "fail" if fail else "pass", "hint": "do it again"}))
    provider.script[(3, "A")] = writer_by_attempt
    provider.script[4] = qa
    c = make_controller(make_session(tmp_path, provider, _cfg(tmp_path)))
    p = app_factory(c, render=display_ok()).pilot
    plan(p)
    answer_until(p, lambda: done(c), timeout=60)
    (track,) = list(c.session.engines)
    branch = f"conductor/{track}"
    assert sh_git(ws, "show", f"{branch}:a.py") == "A = 'attempt 2'\n"
    p.wait_until(lambda: p.shown(tags.ticket_action("A", "rewind")), what="Rewind offered for A (2 attempts)")
    assert not p.shown(tags.ticket_action("B", "rewind")), "B had one attempt: nothing to rewind to"
    p.click(tags.ticket_action("A", "rewind"))
    assert p.value(tags.GIT_CONFIRM_HEADING) == "Rewind ticket A to an earlier attempt?"
    assert p.value(tags.GIT_CONFIRM_CHOICE) == "1" and "reverted" not in p.value(tags.GIT_CONFIRM_ERROR)
    _shot(p, tmp_path, "rewind-asked")
    tip = sh_git(ws, "rev-parse", branch).strip()
    p.click(tags.GIT_CONFIRM_YES)
    p.wait_until(lambda: sh_git(ws, "show", f"{branch}:a.py") == "A = 'attempt 1'\n", what="A rewound")
    assert sh_git(ws, "show", f"{branch}:b.py") == "B = 'by B'\n"
    assert sh_git(ws, "merge-base", "--is-ancestor", tip, branch) == "", "the track moved forward, nothing rewritten"
    p.wait_until(lambda: p.value(tags.ticket_cell("A", "status")) == "done", what="A done again")
