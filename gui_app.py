"""Conductor's desktop app.

    python gui_app.py [--workspace DIR] [--config FILE] [--demo] [--provider scripted|gemini]

With no API key the app still opens, says so in the status bar and offers the offline demo. `--demo` runs
the scripted provider, labelled OFFLINE DEMO, in `--workspace` or the demo's own small project; the demo's
tracks live in ~/.local/share/conductor/demo and survive a restart (`--fresh-demo` starts afresh). The config is
the user's ($XDG_CONFIG_HOME/conductor/config.toml, see conductor.launch), never one in the current folder or the
workspace; `--config` names another. The window size and split are saved there on exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIRST_FRAME_ENV = "CONDUCTOR_EXIT_AFTER_FIRST_FRAME"
"""Set to 1 (or pass --exit-after-first-frame): print 'FIRST_FRAME <unix time>' at the first rendered frame
and exit. bench/first_frame.py uses it."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gui_app.py", description="Conductor: plan, run and check work with a "
                                                                "tiered team of LLM agents.")
    p.add_argument("--workspace", type=Path, help="the folder the agents work in (default: the current folder)")
    p.add_argument("--config", type=Path, help="config file (default: $XDG_CONFIG_HOME/conductor/config.toml)")
    p.add_argument("--tracks-dir", type=Path, help="tracks folder (default: the config's, else "
                                                   "$XDG_DATA_HOME/conductor/tracks)")
    p.add_argument("--gemini-base-url", help="send Gemini requests (and the API key) to this endpoint")
    p.add_argument("--demo", action="store_true", help="offline demo: scripted provider; its own small project "
                                                        "(or --workspace), tracks kept across starts")
    p.add_argument("--fresh-demo", action="store_true", help="with --demo: set the previous demo folder aside "
                                                              "and start afresh")
    p.add_argument("--provider", help="model provider: scripted, gemini, openai, anthropic or an endpoint named in "
                                      "config.toml (default: gemini, or scripted with --demo)")
    p.add_argument("--exit-after-first-frame", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from conductor import redact
    from conductor.config import ConfigError
    from conductor.launch import resolve_launch

    redact.install_log_filter()
    try:  # a missing default file: the defaults, saved there on exit
        launch = resolve_launch(config=args.config, tracks_dir=args.tracks_dir, base_url=args.gemini_base_url,
                                named_must_exist=False)
    except ConfigError as exc:
        print(f"conductor: {exc}", file=sys.stderr)
        return 2
    cfg, config_path = launch.cfg, launch.config_path
    from conductor.gui.display import NO_DISPLAY_HELP, display_available
    if not display_available():  # show_viewport() would abort the process: say what to do instead
        print(f"conductor: {NO_DISPLAY_HELP}", file=sys.stderr)
        return 1
    from conductor.gui.display import HeldDisplay
    from conductor.gui.hidpi import ScaleProbe
    held = HeldDisplay()  # until the viewport has its own connection (see HeldDisplay)
    probe = ScaleProbe(os.environ)  # xrdb / xdpyinfo on their own thread while the session opens

    from conductor.app import AppController, demo_folders, demo_home, open_session
    provider = args.provider or ("scripted" if args.demo else "gemini")
    demo = args.demo and provider == "scripted"
    if demo:
        workspace, tracks = demo_folders(demo_home(), args.workspace, fresh=args.fresh_demo)
    else:
        workspace, tracks = (args.workspace or Path.cwd()).resolve(), launch.tracks_dir
    if not workspace.is_dir():
        print(f"conductor: workspace {workspace} is not a folder", file=sys.stderr)
        return 2
    session, note = open_session(cfg, workspace=workspace, tracks_dir=tracks, provider_name=provider, demo=demo,
                                 base_url=launch.base_url)
    controller = AppController(session, config_path=config_path, demo=demo, provider_name=provider,
                               provider_note=note)
    return run(controller, first_frame_exit=args.exit_after_first_frame or os.environ.get(FIRST_FRAME_ENV) == "1",
               scale_probe=probe, held=held)


def run(controller: object, *, first_frame_exit: bool, scale_probe: object = None, held: object = None) -> int:
    from conductor.gui.loop import GuiApp

    app = GuiApp(controller, render=True, scale_probe=scale_probe).build()  # type: ignore[arg-type]
    app.show()
    if held is not None:
        held.close()  # type: ignore[attr-defined]  # the viewport holds its own X connection now
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or a kill: leave the loop, then shut down in order
        signal.signal(sig, lambda *_: app.quit())
    if first_frame_exit:
        def first(gui: GuiApp, _events: object) -> None:
            sdk = int(any(m in sys.modules for m in ("google.genai", "openai", "anthropic")))  # must stay 0: lazy SDKs
            print(f"FIRST_FRAME {time.time():.6f} sdk_loaded={sdk}", flush=True)
            gui.quit()
        app.after_frame.append(first)
    else:
        app.c.recover()
    try:
        app.run()
    finally:
        problems = app.close()
    for p in problems:
        print(f"conductor: {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
