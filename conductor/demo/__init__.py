"""The offline demo: its own small project (a Python package with a real pytest suite, in git) and the scripted
team that works on it, so one short run shows every path a real run can take — approvals of each kind, a check
that fails and is fixed, a merge conflict resolved, a rejected call, escalation up the ladder, the failed shelf.

- `project`: the files of the demo project, its creation (one commit), and its check command.
- `script`: what each scripted tier answers, decided from what it is sent (tool results, check output).
"""

from conductor.demo.project import CHECK_COMMAND, DEMO_EPIC, create_project, own_pytest_path
from conductor.demo.script import demo_team_reply

__all__ = ["CHECK_COMMAND", "DEMO_EPIC", "create_project", "demo_team_reply", "own_pytest_path"]
