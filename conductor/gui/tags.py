"""String tags of every widget the app, its tests and the pilot refer to. One place, so a test that clicks
`tags.PLAN_BUTTON` clicks what the user clicks. Per-row widgets get functions of their row's id."""

from __future__ import annotations


def _safe(ident: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in ident)


# --- main window
MAIN_WINDOW = "main_window"
TOOLBAR = "toolbar"
TOOLBAR_LINE = "toolbar_line"
TOOLBAR_MAIN = "toolbar_main"
TOOLBAR_MORE = "toolbar_more"
WORKSPACE_INPUT = "workspace_input"
WORKSPACE_OPEN = "workspace_open"
PROVIDER_COMBO = "provider_combo"
STEP_MODE = "step_mode"
AUTO_RUN = "auto_run"
PAUSE = "pause_button"
RESUME = "resume_button"
CANCEL = "cancel_button"
SETTINGS_BUTTON = "settings_button"
DEMO_BUTTON = "demo_button"
DEMO_LABEL = "demo_label"
BANNER = "banner"
BANNER_TEXT = "banner_text"
BANNER_CLOSE = "banner_close"
LEFT_PANEL = "left_panel"
RIGHT_PANEL = "right_panel"
V_SPLITTER = "v_splitter"
H_SPLITTER = "h_splitter"

# --- left panel
EPIC_INPUT = "epic_input"
PLAN_BUTTON = "plan_button"
APPROVAL_LIST = "approval_list"
APPROVAL_HEADER = "approval_header"
APPROVAL_EMPTY = "approval_empty"
TRACK_TABLE = "track_table"


def approval_item(request_id: str) -> str:
    return f"approval_item:{_safe(request_id)}"


def track_load(track_id: str) -> str:
    return f"track_load:{_safe(track_id)}"


def track_resume(track_id: str) -> str:
    return f"track_resume:{_safe(track_id)}"


def track_archive(track_id: str) -> str:
    return f"track_archive:{_safe(track_id)}"


def track_status(track_id: str) -> str:
    return f"track_status:{_safe(track_id)}"


def track_progress(track_id: str) -> str:
    return f"track_progress:{_safe(track_id)}"


def model_combo(tier: int) -> str:
    return f"model_tier{tier}"


def model_tooltip(where: str) -> str:
    """The tooltip text holding a model's full name (where: 'tier3' or 'ticket:T4')."""
    return f"model_tooltip:{_safe(where)}"


# --- tickets of the active track
ACTIVE_TRACK_LABEL = "active_track_label"
TICKET_TABLE = "ticket_table"
TICKETS_PANEL = "tickets_panel"


def ticket_cell(ticket_id: str, column: str) -> str:
    return f"ticket_{column}:{_safe(ticket_id)}"


def ticket_action(ticket_id: str, action: str) -> str:
    """action: retry | skip | edit | cancel | model"""
    return f"ticket_{action}:{_safe(ticket_id)}"


# --- streams
MAIN_TABS = "main_tabs"
STREAMS_TAB = "streams_tab"
DASHBOARD_TAB = "dashboard_tab"
LOG_TAB = "log_tab"
GRAPH_TAB = "graph_tab"
GRAPH_NOTE = "graph_note"
GRAPH_SCROLL = "graph_scroll"
GRAPH_DRAWING = "graph_drawing"
GRAPH_HANDLERS = "graph_handlers"


def graph_node(ticket_id: str) -> str:
    return f"graph_node:{_safe(ticket_id)}"
TIER3_TABS = "tier3_tabs"
TIER3_PICK = "tier3_pick"


def pane_text(key: str) -> str:
    return f"pane_text:{_safe(key)}"


def pane_scroll(key: str) -> str:
    return f"pane_scroll:{_safe(key)}"


def pane_note(key: str) -> str:
    return f"pane_note:{_safe(key)}"


def pane_box(key: str) -> str:
    return f"pane_box:{_safe(key)}"


def tier3_tab(key: str) -> str:
    return f"tier3_tab:{_safe(key)}"


# --- dashboard
USAGE_TIER_TABLE = "usage_tier_table"
USAGE_TICKET_TABLE = "usage_ticket_table"
USAGE_MODEL_TABLE = "usage_model_table"
USAGE_TOTAL = "usage_total"
BUDGET_BAR = "budget_bar"
BUDGET_LABEL = "budget_label"


def budget_line(scope: str) -> str:
    """scope: lifetime | day | track"""
    return f"budget_line:{scope}"


def budget_text(scope: str) -> str:
    return f"budget_text:{scope}"


def budget_reset(scope: str) -> str:
    return f"budget_reset:{scope}"
USAGE_PLOT = "usage_plot"
PLOT_X = "plot_x"
PLOT_Y_TOKENS = "plot_y_tokens"
PLOT_Y_COST = "plot_y_cost"
SERIES_TOKENS = "series_tokens"
SERIES_COST = "series_cost"


def usage_cell(table: str, row: int, col: int) -> str:
    return f"{table}:r{row}c{col}"


# --- log
LOG_TEXT = "log_text"
LOG_SCROLL = "log_scroll"
LOG_TIER_FILTER = "log_tier_filter"
LOG_TICKET_FILTER = "log_ticket_filter"
LOG_COUNT = "log_count"

# --- status bar
STATUS_COUNTS = "status_counts"
STATUS_MESSAGE = "status_message"
STATUS_PROVIDER = "status_provider"
STATUS_FPS = "status_fps"

# --- approval dialogs (one window per kind)
PLAN_DIALOG = "plan_dialog"
TICKETS_DIALOG = "tickets_dialog"
SPAWN_DIALOG = "spawn_dialog"
TOOL_DIALOG = "tool_dialog"


def dialog_part(dialog: str, part: str) -> str:
    """Shared parts of every approval dialog: body, error, reason, approve, reject, kind, prov."""
    return f"{dialog}:{part}"


def plan_field(index: int, name: str) -> str:
    """name: title | goal | scope | criteria | drop"""
    return f"plan_track{index}:{name}"


PLAN_ADD = "plan_add_track"


def ticket_field(index: int, name: str) -> str:
    """name: id | title | deps | files | step | model | drop | estimate (shown, not typed)"""
    return f"review_ticket{index}:{name}"


TICKETS_ADD = "review_add_ticket"
TICKETS_DETAIL_SELECT = "review_detail_select"
TICKETS_DESCRIPTION = "review_description"
TICKETS_CRITERIA = "review_criteria"
TICKETS_PROBLEMS = "review_problems"
TICKETS_ESTIMATE = "review_estimate"

SPAWN_MODEL = "spawn_model"
SPAWN_PROMPT = "spawn_prompt"
SPAWN_CONTEXT = "spawn_context"
SPAWN_SYSTEM = "spawn_system"
SPAWN_FILES = "spawn_files"
SPAWN_BUDGET = "spawn_budget"

TOOL_PREVIEW = "tool_preview"
TOOL_ALWAYS = "tool_always"
TOOL_MCP = "tool_mcp"


def tool_arg(name: str) -> str:
    return f"tool_arg:{_safe(name)}"


# --- other dialogs
SETTINGS_DIALOG = "settings_dialog"
SETTINGS_SAVE = "settings_save"
SETTINGS_CANCEL = "settings_cancel"
SETTINGS_ERROR = "settings_error"


def setting(key: str) -> str:
    """A settings field by its config key, e.g. setting('engine.max_workers')."""
    return f"setting:{key}"


CONFIRM_CLOSE = "confirm_close"
CONFIRM_CLOSE_TEXT = "confirm_close_text"
CONFIRM_CLOSE_YES = "confirm_close_yes"
CONFIRM_CLOSE_NO = "confirm_close_no"

EDIT_TICKET = "edit_ticket_dialog"
EDIT_TICKET_SAVE = "edit_ticket_save"
EDIT_TICKET_CANCEL = "edit_ticket_cancel"
EDIT_TICKET_ERROR = "edit_ticket_error"
EDIT_TICKET_NOTE = "edit_ticket_note"


def edit_field(name: str) -> str:
    """name: title | description | deps | files | criteria | step"""
    return f"edit_ticket:{name}"


SHUTDOWN_NOTE = "shutdown_note"

# --- keyboard: the key handler registry, the command palette (Ctrl+P), the shortcut sheet (F1)
KEY_HANDLERS = "key_handlers"
PALETTE = "command_palette"
PALETTE_FILTER = "command_palette_filter"
HELP = "shortcuts_help"
HELP_TABLE = "shortcuts_help_table"
HELP_CLOSE = "shortcuts_help_close"
LOG_SEARCH = "log_search"
DIALOG_SHORTCUTS = "dialog_shortcuts"


def palette_item(action: str) -> str:
    return f"palette_item:{_safe(action)}"


def palette_keys(action: str) -> str:
    return f"palette_keys:{_safe(action)}"

# --- the end-of-run summary
RUN_SUMMARY = "run_summary"
RUN_SUMMARY_HEADING = "run_summary_heading"
RUN_SUMMARY_TEXT = "run_summary_text"
RUN_SUMMARY_CLOSE = "run_summary_close"

# --- the find bar over the stream panes
STREAM_FIND = "stream_find"
STREAM_FIND_NEXT = "stream_find_next"
STREAM_FIND_PREV = "stream_find_prev"
STREAM_FIND_RESULT = "stream_find_result"

# --- git: diffs, revert / rewind / merge into base, git init (conductor/gui/diff_view.py, dialogs/git_actions.py)
DIFF_WINDOW = "diff_window"
DIFF_TITLE = "diff_title"
DIFF_NOTE = "diff_note"
DIFF_BODY = "diff_body"
DIFF_CLOSE = "diff_close"
TRACK_GIT_BAR = "track_git_bar"
TRACK_DIFF_BUTTON = "track_diff_button"
MERGE_BASE_BUTTON = "merge_base_button"
GIT_CONFIRM = "git_confirm"
GIT_CONFIRM_HEADING = "git_confirm_heading"
GIT_CONFIRM_TEXT = "git_confirm_text"
GIT_CONFIRM_CHOICE = "git_confirm_choice"
GIT_CONFIRM_ERROR = "git_confirm_error"
GIT_CONFIRM_YES = "git_confirm_yes"
GIT_CONFIRM_NO = "git_confirm_no"
RUN_SUMMARY_DIFF = "run_summary_diff"
RUN_SUMMARY_MERGE = "run_summary_merge"
TOOL_PREVIEW_NOTE = "tool_preview_note"


def diff_file(index: int) -> str:
    return f"diff_file_{index}"


def diff_line(file_index: int, line: int) -> str:
    return f"diff_line_{file_index}_{line}"


# --- remote workers (the monitoring view)
WORKERS_TAB = "workers_tab"
CLUSTER_LOCAL = "cluster_local"
CLUSTER_BODY = "cluster_body"
CLUSTER_HEADER = "cluster_header"
CLUSTER_SUMMARY = "cluster_summary"
CLUSTER_PROBLEMS = "cluster_problems"
CLUSTER_WORKERS_TABLE = "cluster_workers_table"
CLUSTER_QUEUES_TABLE = "cluster_queues_table"
CLUSTER_DLQ_TABLE = "cluster_dlq_table"
DISCARD_CONFIRM = "discard_confirm"
DISCARD_CONFIRM_TEXT = "discard_confirm_text"
DISCARD_CONFIRM_YES = "discard_confirm_yes"
DISCARD_CONFIRM_NO = "discard_confirm_no"


def cluster_cell(table: str, row: int, col: int) -> str:
    return f"{table}:{row}:{col}"


def dlq_retry(row: int) -> str:
    return f"dlq_retry:{row}"


def dlq_discard(row: int) -> str:
    return f"dlq_discard:{row}"
