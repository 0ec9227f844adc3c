"""Fonts: resolve families through fontconfig, check glyph coverage, split text
into runs per font — so text renders with real glyphs or fails clearly, never
as boxes.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass

from .models import AdReelInputError

DEFAULT_FAMILY = "Noto Sans CJK KR:style=Bold"
# Tried after the requested font, in order; missing ones are skipped.
FALLBACK_PATTERNS = (
    "Noto Sans CJK KR:style=Bold",
    "sans:lang=ko:style=Bold",
    "sans:lang=ja:style=Bold",
    "sans:lang=zh-cn:style=Bold",
    "DejaVu Sans:style=Bold",
    "sans:style=Bold",
)
EMOJI_PATTERN = "Noto Color Emoji"
_IGNORABLE = {0x200D, 0xFE0E, 0xFE0F, 0x20E3}  # ZWJ, variation selectors, keycap


@dataclass(frozen=True)
class FontFace:
    path: str
    index: int = 0

    @property
    def name(self) -> str:
        return os.path.basename(self.path) + (f"#{self.index}" if self.index else "")


def _fc_match(pattern: str) -> FontFace | None:
    if shutil.which("fc-match") is None:
        return None
    try:
        out = subprocess.run(["fc-match", "-f", "%{file}\n%{index}\n%{family}", pattern],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.split("\n")
    if len(lines) < 2 or not lines[0] or not os.path.isfile(lines[0]):
        return None
    return FontFace(lines[0], int(lines[1] or 0))


@functools.lru_cache(maxsize=64)
def resolve_font(spec: str) -> FontFace:
    """A font file path (``.ttf/.otf/.ttc``, optional ``#index``) or a fontconfig pattern."""
    spec = spec.strip()
    path, _, idx = spec.partition("#")
    if os.path.splitext(path)[1].lower() in (".ttf", ".otf", ".ttc", ".otc"):
        if not os.path.isfile(path):
            raise AdReelInputError("font", f"font file {path!r} does not exist")
        return FontFace(path, int(idx or 0))
    face = _fc_match(spec)
    if face is None:
        raise AdReelInputError("font", f"fontconfig found no font for {spec!r} (is fontconfig installed?)")
    return face


@functools.lru_cache(maxsize=64)
def _cmap(face: FontFace) -> frozenset[int]:
    from fontTools.ttLib import TTCollection, TTFont

    if face.path.lower().endswith((".ttc", ".otc")):
        font = TTCollection(face.path, lazy=True).fonts[face.index]
    else:
        font = TTFont(face.path, lazy=True)
    cmap = font.getBestCmap() or {}
    return frozenset(cmap)


def covers(face: FontFace, ch: str) -> bool:
    return ord(ch) in _cmap(face)


def _needs_glyph(ch: str) -> bool:
    return not (ch.isspace() or ord(ch) in _IGNORABLE or unicodedata.category(ch) in ("Cc", "Cf"))


@functools.lru_cache(maxsize=16)
def font_chain(primary: str | None = None) -> tuple[FontFace, ...]:
    """The requested font first, then the fallbacks, then colour emoji; no duplicates."""
    chain: list[FontFace] = []
    if primary:
        chain.append(resolve_font(primary))
    for pattern in FALLBACK_PATTERNS + (EMOJI_PATTERN,):
        face = _fc_match(pattern)
        if face and face not in chain:
            chain.append(face)
    if not chain:
        raise AdReelInputError("font", "no fonts found: install fonts-noto-cjk (and fontconfig)")
    return tuple(chain)


def is_emoji_face(face: FontFace) -> bool:
    return "emoji" in os.path.basename(face.path).lower()


def split_runs(text: str, chain: tuple[FontFace, ...], field: str = "text") -> list[tuple[FontFace, str]]:
    """Split ``text`` into (font, substring) runs, each char in the first font that has it.

    Raises AdReelInputError naming ``field`` and the character when no font has it.
    """
    runs: list[tuple[FontFace, str]] = []
    current: FontFace | None = None
    for ch in text:
        if not _needs_glyph(ch):
            # spaces and joiners stay with the current text font (an emoji font's
            # space is far wider); joiners inside an emoji sequence stay with it
            face = current if current and (not is_emoji_face(current) or ord(ch) in _IGNORABLE) else chain[0]
        else:
            face = next((f for f in chain if covers(f, ch)), None)
            if face is None:
                name = unicodedata.name(ch, "unnamed character")
                raise AdReelInputError(
                    field, f"no installed font has a glyph for {ch!r} (U+{ord(ch):04X} {name}); "
                    "install a font that has it (e.g. fonts-noto-cjk, fonts-noto-color-emoji) "
                    "or choose a font file that does")
        if runs and runs[-1][0] == face:
            runs[-1] = (face, runs[-1][1] + ch)
        else:
            runs.append((face, ch))
        current = face
    return runs
