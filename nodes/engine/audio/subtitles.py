"""Subtitles from the narration: cues timed to the voice, burned in through
libass (an .ass with PlayRes = the video size, so sizes are pixel-true and the
box sits inside the platform's safe zone), plus sidecar SRT and WebVTT.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ..media.fonts import DEFAULT_FAMILY, clean_family
from ..media.layout import SafeZone, frame_layout

WORD_JOINER = "\u2060"


@dataclass
class Cue:
    start: float
    end: float
    text: str  # lines separated by "\n"


def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def text_width_units(s: str) -> float:
    """Rough display width: a wide (CJK / Hangul) char counts as ~1.8 Latin chars."""
    return sum(1.8 if _is_wide(c) else 1.0 for c in s)


def wrap_words(text: str, max_units: float) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        cand = f"{line} {word}".strip()
        if line and text_width_units(cand) > max_units:
            lines.append(line)
            line = word
        else:
            line = cand
    if line:
        lines.append(line)
    return lines


def make_cues(text: str, start: float, end: float, max_units: float, max_lines: int = 2) -> list[Cue]:
    """Split one narration into cues of at most ``max_lines`` lines; each cue's
    time is in proportion to its share of the text."""
    text = " ".join(text.split())
    if not text or end <= start:
        return []
    sentences = [s for s in re.split(r"(?<=[.!?。？！])\s+", text) if s]
    groups: list[list[str]] = []
    for sentence in sentences:
        lines = wrap_words(sentence, max_units)
        for i in range(0, len(lines), max_lines):
            groups.append(lines[i:i + max_lines])
    weights = [sum(text_width_units(l) for l in g) for g in groups]
    total = sum(weights) or 1
    cues, t = [], start
    for g, w in zip(groups, weights):
        d = (end - start) * w / total
        cues.append(Cue(round(t, 3), round(t + d, 3), "\n".join(g)))
        t += d
    cues[-1].end = round(end, 3)
    return cues


def _ts_ass(t: float) -> str:
    cs = int(round(t * 100))
    return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def _ts_srt(t: float, sep: str = ",") -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def ass_escape(text: str) -> str:
    """Literal text for libass: backslashes can't start escapes, braces can't open tags."""
    text = text.replace("\\", "\\" + WORD_JOINER).replace("{", "\\{").replace("}", "\\}")
    return text.replace("\n", "\\N")


def _ass_colour(hex_rgb: str, alpha: int = 0) -> str:
    c = hex_rgb.lstrip("#")
    return f"&H{alpha:02X}{c[4:6]}{c[2:4]}{c[0:2]}".upper()


def subtitle_font_px(width: int, height: int) -> int:
    return round(min(width, height) * 0.05)


def max_line_units(width: int, height: int, zone: SafeZone | None = None) -> float:
    lay = frame_layout(width, height, zone)
    return lay.subtitles.w / (subtitle_font_px(width, height) * 0.55)


TEXT_COLOUR, BOX_COLOUR = "#FFFFFF", "#000000"  # white words on a translucent black box (or outline)


def write_ass(cues: list[Cue], width: int, height: int, path: str, font: str = DEFAULT_FAMILY,
              style: str = "box", zone: SafeZone | None = None) -> None:
    """``zone``: the channels' safe zone the subtitles keep inside (None: the aspect's own layout)."""
    text_colour, box_colour = TEXT_COLOUR, BOX_COLOUR
    lay = frame_layout(width, height, zone)
    size = subtitle_font_px(width, height)
    margin_v = height - (lay.subtitles.y + lay.subtitles.h)
    margin_h = lay.subtitles.x
    margin_r = margin_h if zone is None else width - lay.subtitles.right  # a channel's zone may be lopsided
    border_style, outline, shadow = (3, max(4, size // 5), 0) if style == "box" else (1, max(2, size // 14), 1)
    back = _ass_colour(box_colour, 0x50) if style == "box" else _ass_colour("#000000", 0x80)
    outline_colour = _ass_colour(box_colour, 0x50) if style == "box" else _ass_colour("#000000")
    lines = [
        "[Script Info]", "ScriptType: v4.00+", f"PlayResX: {width}", f"PlayResY: {height}",
        "WrapStyle: 2", "ScaledBorderAndShadow: yes", "YCbCr Matrix: TV.709", "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
        "Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
        "MarginR, MarginV, Encoding",
        f"Style: Default,{clean_family(font) or DEFAULT_FAMILY},{size},{_ass_colour(text_colour)},{_ass_colour(text_colour)},"
        f"{outline_colour},{back},1,0,0,0,100,100,0,0,{border_style},{outline},{shadow},2,{margin_h},{margin_r},"
        f"{margin_v},1",
        "", "[Events]", "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    for c in cues:
        lines.append(f"Dialogue: 0,{_ts_ass(c.start)},{_ts_ass(c.end)},Default,,0,0,0,,{ass_escape(c.text)}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def write_srt(cues: list[Cue], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i, c in enumerate(cues, 1):
            f.write(f"{i}\n{_ts_srt(c.start)} --> {_ts_srt(c.end)}\n{c.text}\n\n")


def write_vtt(cues: list[Cue], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("WEBVTT\n\n")
        for c in cues:
            text = c.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            f.write(f"{_ts_srt(c.start, '.')} --> {_ts_srt(c.end, '.')}\n{text}\n\n")
