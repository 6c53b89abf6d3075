"""Colours, fonts and the global theme. Status and approval-kind colours are defined once, here."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import dearpygui.dearpygui as dpg

RGB = tuple[int, int, int]

STATUS_COLOURS: dict[str, RGB] = {
    "todo": (150, 150, 158),
    "ready": (120, 180, 255),
    "awaiting_approval": (255, 190, 70),
    "running": (250, 220, 90),
    "review": (190, 140, 255),
    "done": (110, 210, 120),
    "failed": (255, 95, 90),
    "blocked": (255, 140, 60),
    "skipped": (120, 120, 128),
    "cancelled": (200, 120, 120),
    "needs_merge": (255, 120, 200),
    # track statuses
    "planned": (150, 150, 158),
    "paused": (255, 190, 70),
    "stalled": (255, 140, 60),
    "archived": (110, 110, 118),
}

KIND_COLOURS: dict[str, RGB] = {
    "plan": (90, 150, 255),
    "tickets": (175, 120, 255),
    "spawn": (60, 200, 190),
    "tool": (255, 150, 50),
}
KIND_LABELS = {"plan": "PLAN REVIEW", "tickets": "TICKET REVIEW", "spawn": "SPAWN APPROVAL", "tool": "TOOL APPROVAL"}

ERROR: RGB = (255, 105, 97)
WARNING: RGB = (255, 190, 70)
OK: RGB = (120, 210, 130)
DIM: RGB = (150, 150, 160)
ACCENT: RGB = (90, 150, 255)
DEMO: RGB = (255, 200, 60)

_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
              Path("/usr/local/share/fonts"))


def status_colour(status: str) -> RGB:
    return STATUS_COLOURS.get(status, DIM)


def _find_font(name: str) -> Path | None:
    for d in _FONT_DIRS:
        p = d / name
        if p.is_file():
            return p
    return None


def _item(tag: object) -> int | str:
    """A Dear PyGui item tag (the library is untyped: it says Any)."""
    assert isinstance(tag, int | str)
    return tag


def _font(path: Path, size: int) -> int | str:
    # Dear PyGui 2.3 loads the glyphs a text needs on demand (arrows, box drawing, ...): no ranges to declare.
    return _item(dpg.add_font(str(path), size))


def load_fonts(scale: float = 1.0) -> dict[str, int | str | None]:
    """DejaVu Sans for the UI and DejaVu Sans Mono for streams and diffs, when installed, rasterised at the HiDPI
    `scale` (crisp, not a blown-up bitmap); else the built-in font (readable, just smaller)."""
    sans, mono = _find_font("DejaVuSans.ttf"), _find_font("DejaVuSansMono.ttf")
    fonts: dict[str, int | str | None] = {"ui": None, "mono": None, "big": None}
    with dpg.font_registry():
        if sans:
            fonts["ui"] = _font(sans, round(15 * scale))
            fonts["big"] = _font(sans, round(18 * scale))
        if mono:
            fonts["mono"] = _font(mono, round(14 * scale))
    return fonts


ThemeName = Literal["dark", "light"]
THEME_NAMES: tuple[ThemeName, ...] = ("dark", "light")

_DARK: dict[int, tuple[int, ...]] = {}
_LIGHT: dict[int, tuple[int, ...]] = {}


def palette(name: ThemeName) -> dict[int, tuple[int, ...]]:
    """The theme colours by `mvThemeCol_*` (filled on first use: the constants need Dear PyGui loaded)."""
    if not _DARK:
        d = dpg
        # Child windows draw no background of their own: on a software renderer (llvmpipe under Xvfb)
        # every nested fill costs a full pass over its pixels; borders alone separate the panes.
        _DARK.update({
            d.mvThemeCol_WindowBg: (24, 26, 31), d.mvThemeCol_ChildBg: (0, 0, 0, 0),
            d.mvThemeCol_PopupBg: (34, 37, 44), d.mvThemeCol_Border: (58, 62, 72),
            d.mvThemeCol_FrameBg: (44, 48, 57), d.mvThemeCol_FrameBgHovered: (56, 62, 74),
            d.mvThemeCol_FrameBgActive: (64, 72, 88), d.mvThemeCol_TitleBg: (36, 40, 50),
            d.mvThemeCol_TitleBgActive: (46, 60, 92), d.mvThemeCol_Button: (52, 70, 110),
            d.mvThemeCol_ButtonHovered: (68, 94, 150), d.mvThemeCol_ButtonActive: (80, 112, 180),
            d.mvThemeCol_Header: (48, 60, 86), d.mvThemeCol_HeaderHovered: (60, 78, 116),
            d.mvThemeCol_HeaderActive: (70, 92, 138), d.mvThemeCol_Tab: (40, 46, 58),
            d.mvThemeCol_TabHovered: (68, 94, 150), d.mvThemeCol_TabActive: (56, 78, 124),
            d.mvThemeCol_TableHeaderBg: (40, 44, 54), d.mvThemeCol_TableRowBgAlt: (34, 37, 44),
            d.mvThemeCol_PlotHistogram: (90, 150, 255), d.mvThemeCol_Text: (222, 224, 230),
            d.mvThemeCol_ScrollbarBg: (30, 32, 38), d.mvThemeCol_ScrollbarGrab: (70, 76, 90),
            d.mvThemeCol_TextSelectedBg: (60, 90, 150),
        })
        # Light: the same structure on paper-white; status and accent colours stay (they are read on both).
        _LIGHT.update({
            d.mvThemeCol_WindowBg: (244, 245, 248), d.mvThemeCol_ChildBg: (0, 0, 0, 0),
            d.mvThemeCol_PopupBg: (252, 252, 254), d.mvThemeCol_Border: (196, 200, 210),
            d.mvThemeCol_FrameBg: (228, 231, 238), d.mvThemeCol_FrameBgHovered: (214, 221, 234),
            d.mvThemeCol_FrameBgActive: (200, 212, 234), d.mvThemeCol_TitleBg: (222, 226, 234),
            d.mvThemeCol_TitleBgActive: (186, 204, 238), d.mvThemeCol_Button: (196, 210, 238),
            d.mvThemeCol_ButtonHovered: (172, 194, 238), d.mvThemeCol_ButtonActive: (148, 178, 234),
            d.mvThemeCol_Header: (206, 218, 242), d.mvThemeCol_HeaderHovered: (186, 204, 240),
            d.mvThemeCol_HeaderActive: (166, 190, 236), d.mvThemeCol_Tab: (218, 223, 233),
            d.mvThemeCol_TabHovered: (172, 194, 238), d.mvThemeCol_TabActive: (192, 208, 240),
            d.mvThemeCol_TableHeaderBg: (222, 226, 234), d.mvThemeCol_TableRowBgAlt: (236, 238, 243),
            d.mvThemeCol_PlotHistogram: (60, 120, 220), d.mvThemeCol_Text: (28, 30, 36),
            d.mvThemeCol_ScrollbarBg: (236, 238, 242), d.mvThemeCol_ScrollbarGrab: (184, 190, 202),
            d.mvThemeCol_TextSelectedBg: (170, 196, 240),
        })
    return _DARK if name == "dark" else _LIGHT


_active: list[ThemeName] = ["dark"]


def text_rgb() -> RGB:
    """The body text colour of the theme in use, for what is drawn rather than themed (graph labels)."""
    r, g, b = palette(_active[0])[dpg.mvThemeCol_Text][:3]
    return r, g, b


def window_colour(name: ThemeName) -> tuple[int, int, int, int]:
    """The theme's window colour, which the viewport's clear colour paints (the main window draws none)."""
    r, g, b = palette(name)[dpg.mvThemeCol_WindowBg][:3]
    return r, g, b, 255


THEMED = (-255, 0, 0, 255)
"""Dear PyGui's 'no colour of its own' for a text: it takes the theme's text colour (set back to it after a
highlight)."""


def global_theme(name: ThemeName = "dark", scale: float = 1.0) -> int | str:
    """A calm dark (or light) theme with rounded frames and clear focus colours; paddings, spacings, roundings
    and the scrollbar grow with the HiDPI `scale`, like the fonts."""
    with dpg.theme() as theme:
        with dpg.theme_component(dpg.mvAll):
            for target, rgb in palette(name).items():
                dpg.add_theme_color(target, rgb)

            def s(var: int, *values: float) -> None:
                dpg.add_theme_style(var, *(round(v * scale) for v in values))
            s(dpg.mvStyleVar_FrameRounding, 4)
            s(dpg.mvStyleVar_WindowRounding, 6)
            s(dpg.mvStyleVar_ChildRounding, 4)
            s(dpg.mvStyleVar_TabRounding, 4)
            s(dpg.mvStyleVar_FramePadding, 6, 4)
            s(dpg.mvStyleVar_ItemSpacing, 8, 6)
            s(dpg.mvStyleVar_CellPadding, 6, 3)
            s(dpg.mvStyleVar_WindowPadding, 10, 8)
            s(dpg.mvStyleVar_ScrollbarSize, 12)
            if scale != 1.0:  # Dear ImGui's own defaults, scaled (left alone at 1:1)
                s(dpg.mvStyleVar_ItemInnerSpacing, 4, 4)
                s(dpg.mvStyleVar_IndentSpacing, 21)
                s(dpg.mvStyleVar_TabBorderSize, 1)
    return _item(theme)


def button_theme(rgb: RGB) -> int | str:
    """A button (or badge) in one colour, e.g. the kind of an approval."""
    r, g, b = rgb
    with dpg.theme() as theme:
        with dpg.theme_component(dpg.mvAll):
            dpg.add_theme_color(dpg.mvThemeCol_Button, (r // 2, g // 2, b // 2))
            dpg.add_theme_color(dpg.mvThemeCol_ButtonHovered, (int(r * 0.65), int(g * 0.65), int(b * 0.65)))
            dpg.add_theme_color(dpg.mvThemeCol_ButtonActive, (int(r * 0.8), int(g * 0.8), int(b * 0.8)))
            dpg.add_theme_color(dpg.mvThemeCol_Text, (245, 245, 248))
    return _item(theme)


def left_aligned_theme() -> int | str:
    """Buttons whose label reads like a list entry (the command palette), not a centred caption."""
    with dpg.theme() as theme:
        with dpg.theme_component(dpg.mvButton):
            dpg.add_theme_style(dpg.mvStyleVar_ButtonTextAlign, 0.0, 0.5)
    return _item(theme)


def bar_theme(rgb: RGB) -> int | str:
    with dpg.theme() as theme:
        with dpg.theme_component(dpg.mvProgressBar):
            dpg.add_theme_color(dpg.mvThemeCol_PlotHistogram, rgb)
    return _item(theme)


def banner_theme(rgb: RGB, name: ThemeName = "dark") -> int | str:
    """A banner tinted by its level: a dark tint under light text, a pale one under dark text."""
    r, g, b = rgb
    with dpg.theme() as theme:
        with dpg.theme_component(dpg.mvAll):
            if name == "dark":
                dpg.add_theme_color(dpg.mvThemeCol_ChildBg, (r // 4, g // 5, b // 5))
                dpg.add_theme_color(dpg.mvThemeCol_Border, (r // 2, g // 3, b // 3))
            else:
                dpg.add_theme_color(dpg.mvThemeCol_ChildBg, tuple(255 - (255 - x) // 5 for x in rgb))
                dpg.add_theme_color(dpg.mvThemeCol_Border, tuple(int(x * 0.7) for x in rgb))
    return _item(theme)


class Themes:
    """Themes built once per context and reused (DPG themes are items; creating one per row would leak)."""

    def __init__(self) -> None:
        self.scale = 1.0
        self._fonts: dict[float, dict[str, int | str | None]] = {1.0: load_fonts()}
        self.fonts = self._fonts[1.0]
        self._bind_ui_font()
        self._mono_items: list[int | str] = []
        self._big_items: list[int | str] = []
        self.name: ThemeName = "dark"
        self._globals: dict[tuple[ThemeName, float], int | str] = {("dark", 1.0): global_theme("dark")}
        self.global_ = self._globals[("dark", 1.0)]
        dpg.bind_theme(self.global_)
        self.kind = {k: button_theme(v) for k, v in KIND_COLOURS.items()}
        self.danger = button_theme((200, 70, 70))
        self.approve = button_theme((70, 170, 90))
        self.neutral = button_theme((110, 115, 130))
        self.demo = button_theme(DEMO)
        self.left_button = left_aligned_theme()
        self.bar_ok = bar_theme(ACCENT)
        self.bar_spent = bar_theme(ERROR)
        self._banners: dict[ThemeName, dict[str, int | str]] = {"dark": self._banner_set("dark")}
        self.banner = self._banners["dark"]

    @staticmethod
    def _banner_set(name: ThemeName) -> dict[str, int | str]:
        return {"error": banner_theme(ERROR, name), "warning": banner_theme(WARNING, name),
                "info": banner_theme(ACCENT, name)}

    def apply(self, name: ThemeName) -> None:
        """Switch the whole window to the dark or the light theme (each built once per scale, then reused)."""
        key = (name, self.scale)
        if key not in self._globals:
            self._globals[key] = global_theme(name, self.scale)
        if name not in self._banners:
            self._banners[name] = self._banner_set(name)
        self.name, self.global_, self.banner = name, self._globals[key], self._banners[name]
        _active[0] = name
        dpg.bind_theme(self.global_)

    def set_scale(self, scale: float) -> None:
        """HiDPI: fonts rasterised at `scale` (loaded once per scale) and the theme's metrics scaled with them;
        items already bound to the mono or the big font get the new size too."""
        if scale == self.scale:
            return
        self.scale = scale
        if scale not in self._fonts:
            self._fonts[scale] = load_fonts(scale)
        self.fonts = self._fonts[scale]
        self._bind_ui_font()
        for items, font in ((self._mono_items, "mono"), (self._big_items, "big")):
            items[:] = [i for i in items if dpg.does_item_exist(i)]
            for item in items:
                if self.fonts.get(font) is not None:
                    dpg.bind_item_font(item, self.fonts[font])
        self.apply(self.name)

    def _bind_ui_font(self) -> None:
        if self.fonts["ui"] is not None:
            dpg.bind_font(self.fonts["ui"])

    def mono(self, item: int | str) -> None:
        if self.fonts.get("mono") is not None:
            dpg.bind_item_font(item, self.fonts["mono"])
            _remember(self._mono_items, item)

    def big(self, item: int | str) -> None:
        if self.fonts.get("big") is not None:
            dpg.bind_item_font(item, self.fonts["big"])
            _remember(self._big_items, item)


def _remember(items: list[int | str], item: int | str) -> None:
    """Keep `item` to re-bind on a scale change; deleted items are dropped as the list grows (ticket panes come
    and go with tracks)."""
    items.append(item)
    if len(items) >= 512 and len(items) & (len(items) - 1) == 0:  # at each power of two: O(1) amortised
        items[:] = [i for i in items if dpg.does_item_exist(i)]
