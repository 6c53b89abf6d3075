"""When each budget was last reset (lifetime, today, per track): `<tracks>/_budget.json`, machine-written and
kept apart from the hand-written config.toml. Written on a background thread (the GUI thread does no I/O);
a damaged file is moved aside and reported, and the budgets then count from the beginning (fail closed)."""

from __future__ import annotations

import json
from pathlib import Path

from conductor.app.drafts import BackgroundFile
from conductor.usage import BudgetResets

BUDGET_FILE = "_budget.json"


class BudgetResetFile(BackgroundFile):
    what = "budget resets"
    thread_name = "conductor-budget-resets"

    def __init__(self, root: Path) -> None:
        super().__init__(root / BUDGET_FILE)

    def load(self) -> BudgetResets:
        text = self.read_or_set_aside()
        if text is None:
            return BudgetResets()
        try:
            resets = BudgetResets.from_json(json.loads(text), str(self.path))
        except json.JSONDecodeError as exc:
            self.set_aside(f"{self.path}: not JSON ({exc.msg} at line {exc.lineno})")
            return BudgetResets()
        except ValueError as exc:
            self.set_aside(str(exc))
            return BudgetResets()
        self.loaded(_dump(resets))
        return resets

    def submit(self, resets: BudgetResets) -> None:
        self.submit_text(_dump(resets))


def _dump(resets: BudgetResets) -> str:
    return json.dumps(resets.to_json(), sort_keys=True)
