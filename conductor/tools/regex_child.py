"""The regex half of `search`, run as a child process (`python -I regex_child.py REQUEST.json`).

Python's `re` cannot be interrupted: a catastrophic pattern (`(a+)+$` on a long line of a's) runs for hours
holding the thread. Run here, it is bounded by the parent's time budget and cancellable: the parent kills the
child's process group (conductor.tools.process.run_captured). Hits are printed one JSON line each, flushed, so
what was found before a timeout is kept. Only the standard library is imported (and `-I` keeps the workspace's
modules out of sys.path).
"""

import json
import re
import sys


def main(request_path: str) -> int:
    with open(request_path, encoding="utf-8") as f:
        req = json.load(f)
    try:
        regex = re.compile(req["pattern"], re.IGNORECASE if req["ignore_case"] else 0)
    except re.error as exc:
        print(json.dumps({"error": f"invalid regex {req['pattern']!r}: {exc}"}), flush=True)
        return 0
    room, max_line = int(req["room"]), int(req["max_line_chars"])
    searched = skipped = found = 0
    for shown, real in req["files"]:
        try:
            with open(real, "rb") as fh:
                data = fh.read(int(req["max_file_bytes"]) + 1)
        except OSError:
            skipped += 1
            continue
        if len(data) > int(req["max_file_bytes"]) or b"\x00" in data[:8192]:
            skipped += 1
            continue
        searched += 1
        for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if regex.search(line[:10 * max_line]):
                text = line if len(line) <= max_line else line[:max_line] + "\u2026"
                print(json.dumps({"path": shown, "line": n, "text": text}, ensure_ascii=False), flush=True)
                found += 1
                if found >= room:
                    break
        if found >= room:
            break
    print(json.dumps({"done": True, "searched": searched, "skipped": skipped}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
