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

from ..models import AdReelInputError
from .files import is_inside

DEFAULT_FAMILY = "Noto Sans CJK KR"  # the family text and subtitles use when no font is given
# Tried after the requested font, in order; missing ones are skipped.
FALLBACK_PATTERNS = (
    f"{DEFAULT_FAMILY}:style=Bold",
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


FONT_EXTS = (".ttf", ".otf", ".ttc", ".otc")
PACK_FONT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "assets", "fonts")
FONT_DIRS_ENV = "ADREEL_FONT_DIRS"
_registered_dirs: list[str] = []


def register_font_dir(path: str) -> None:
    """Allow font files under ``path`` (the node layer registers ComfyUI's ``models/fonts``)."""
    real = os.path.realpath(path)
    if real not in _registered_dirs:
        _registered_dirs.append(real)
        resolve_font.cache_clear()


def font_dirs() -> list[str]:
    """Folders whose font files a workflow may name: the pack's ``assets/fonts``, registered folders
    (ComfyUI's ``models/fonts``) and ``ADREEL_FONT_DIRS`` (os.pathsep-separated). Never ComfyUI's
    input/output/temp: anyone can upload files there."""
    env = [d for d in (os.environ.get(FONT_DIRS_ENV) or "").split(os.pathsep) if d.strip()]
    return list(dict.fromkeys(os.path.realpath(d) for d in [PACK_FONT_DIR, *_registered_dirs, *env]))


@functools.lru_cache(maxsize=1)
def _fontconfig_files() -> frozenset[str]:
    """Every font file fontconfig knows (system and user font folders), resolved."""
    if shutil.which("fc-list") is None:
        return frozenset()
    try:
        out = subprocess.run(["fc-list", "-f", "%{file}\n"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(os.path.realpath(line) for line in out.splitlines() if line.strip())


def _allowed_font_file(spec: str) -> str:
    """The resolved path of a font file a workflow may name, or an AdReelInputError saying why not."""
    dirs = font_dirs()
    for attempt in range(2):
        known = _fontconfig_files()
        candidates = [spec] if os.path.isabs(spec) else [os.path.join(d, spec) for d in dirs]
        for cand in candidates:
            real = os.path.realpath(cand)
            if os.path.isfile(real) and (real in known or is_inside(real, *dirs)):
                return real
        if not os.path.isabs(spec) and os.sep not in spec:  # a bare name of a file fontconfig knows
            for real in sorted(known):
                if os.path.basename(real) == spec:
                    return real
        _fontconfig_files.cache_clear()  # a font installed since the last look: ask fontconfig once more
    raise AdReelInputError("font", f"names a font file AdReel may not read: name a font family fontconfig "
                                   f"knows (fc-list), a font file fontconfig knows, or put the file in "
                                   f"{' or '.join(dirs)}")


def _face_index(spec: str, idx: str) -> int:
    if not idx:
        return 0
    if not idx.isdigit() or len(idx) > 4:
        raise AdReelInputError("font", "the face number after '#' must be a whole number (e.g. x.ttc#1)")
    return int(idx)


@functools.lru_cache(maxsize=64)
def resolve_font(spec: str) -> FontFace:
    """A font file (``.ttf/.otf/.ttc``, optional ``#index``) fontconfig knows or inside ``font_dirs()``,
    or a fontconfig pattern (which only ever matches fonts fontconfig knows)."""
    spec = spec.strip()
    path, _, idx = spec.partition("#")
    if os.path.splitext(path)[1].lower() in FONT_EXTS:
        index = _face_index(spec, idx)
        real = _allowed_font_file(path)
        count = _face_count(real)
        if index >= count:
            raise AdReelInputError("font", f"the file has {count} face{'s' if count != 1 else ''} "
                                           f"(#0{f'..#{count - 1}' if count > 1 else ''})")
        return FontFace(real, index)
    face = _fc_match(spec)
    if face is None:
        raise AdReelInputError("font", "fontconfig found no such font (is fontconfig installed?)")
    return face


def _face_count(path: str) -> int:
    from fontTools.ttLib import TTCollection, TTFont
    try:
        if path.lower().endswith((".ttc", ".otc")):
            return len(TTCollection(path, lazy=True).fonts)
        TTFont(path, lazy=True)
        return 1
    except Exception as e:
        raise AdReelInputError("font", f"{os.path.basename(path)!r} is not a readable font: {e}") from None


def clean_family(name: str | None) -> str:
    """A family name safe for an ASS ``Style:`` line: no control characters (a ``\n`` would end the
    line), no commas (the field separator), at most 200 characters."""
    text = "".join(" " if (unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") or c == ",") else c
                   for c in (name or ""))
    return " ".join(text.split())[:200]


def font_family_name(face: FontFace) -> str:
    """The family name in the font's name table (cleaned: ``clean_family``), or ''."""
    from fontTools.ttLib import TTCollection, TTFont
    try:
        tt = TTCollection(face.path, lazy=True).fonts[face.index] if face.path.lower().endswith((".ttc", ".otc")) \
            else TTFont(face.path, lazy=True)
        return clean_family(tt["name"].getDebugName(1))
    except Exception:
        return ""


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
