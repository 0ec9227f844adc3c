"""Text as pixels: on-screen headlines rendered with Pillow into RGBA cards.

Text never enters an ffmpeg filter string: it is laid out here, with per-glyph
font fallback (Latin, Hangul, CJK, colour emoji), and reaches ffmpeg as an image.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from .fonts import FontFace, font_chain, is_emoji_face, split_runs

_EMOJI_STRIKE = 109  # Noto Color Emoji carries one bitmap strike at 109 ppem


@functools.lru_cache(maxsize=64)
def _pil_font(face: FontFace, size: int) -> ImageFont.FreeTypeFont:
    if is_emoji_face(face):
        return ImageFont.truetype(face.path, _EMOJI_STRIKE, index=face.index)
    return ImageFont.truetype(face.path, size, index=face.index)


def hex_rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def luminance(rgb: tuple[int, int, int]) -> float:
    def ch(v):
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = rgb
    return 0.2126 * ch(r) + 0.7152 * ch(g) + 0.0722 * ch(b)


def readable_on(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """White or near-black, whichever contrasts more with ``background``."""
    lum = luminance(background)
    return (255, 255, 255) if (1.05 / (lum + 0.05)) >= ((lum + 0.05) / 0.05) else (17, 17, 17)


class TextLayout:
    """Runs of one line measured and drawn with their own fonts."""

    def __init__(self, chain: tuple[FontFace, ...], size: int, field: str):
        self.chain, self.size, self.field = chain, size, field

    def run_width(self, face: FontFace, s: str) -> float:
        font = _pil_font(face, self.size)
        w = font.getlength(s)
        return w * self.size / _EMOJI_STRIKE if is_emoji_face(face) else w

    def line_width(self, line: str) -> float:
        return sum(self.run_width(f, s) for f, s in split_runs(line, self.chain, self.field))

    def draw_line(self, img: Image.Image, x: float, y: float, line: str, fill, stroke=None) -> None:
        draw = ImageDraw.Draw(img)
        for face, s in split_runs(line, self.chain, self.field):
            font = _pil_font(face, self.size)
            if is_emoji_face(face):
                box = font.getbbox(s, anchor="ls")
                tile = Image.new("RGBA", (max(1, box[2] - box[0]), max(1, box[3] - box[1])), (0, 0, 0, 0))
                ImageDraw.Draw(tile).text((-box[0], -box[1]), s, font=font, anchor="ls", embedded_color=True)
                k = self.size / _EMOJI_STRIKE
                tile = tile.resize((max(1, round(tile.width * k)), max(1, round(tile.height * k))), Image.LANCZOS)
                img.alpha_composite(tile, (round(x + box[0] * k), round(y + box[1] * k)))
            else:
                kw = {}
                if stroke:
                    kw = dict(stroke_width=stroke[0], stroke_fill=stroke[1])
                draw.text((x, y), s, font=font, fill=fill, anchor="ls", **kw)
            x += self.run_width(face, s)


def wrap_text(text: str, layout: TextLayout, max_width: float, max_lines: int) -> list[str] | None:
    """Greedy wrap at spaces (and between CJK characters); None if it does not fit."""
    lines: list[str] = []
    for para in text.replace("\r\n", "\n").split("\n"):
        tokens = re.findall(r"\s+|\S+", para)
        line = ""
        for tok in tokens:
            cand = line + tok
            if layout.line_width(cand.strip()) <= max_width or not line.strip():
                if layout.line_width(cand.strip()) > max_width:  # one token wider than a line
                    for ch in tok:
                        if layout.line_width((line + ch).strip()) > max_width and line.strip():
                            lines.append(line.strip())
                            line = ch
                        else:
                            line += ch
                else:
                    line = cand
            else:
                lines.append(line.strip())
                line = tok.lstrip()
        lines.append(line.strip())
    lines = [ln for ln in lines if ln] or [""]
    return lines if len(lines) <= max_lines else None


def _card_height(size: int, lines: int, pad: int) -> int:
    return int(round(size * 1.28) * lines + pad * 1.4)


MIN_CARD_FONT_PX = 18  # a headline card's font never shrinks below this


@dataclass(frozen=True)
class CardLook:
    """A text card's box: its colour (the brand's), opacity, and an optional accent bar's colour."""
    box_rgb: tuple = (0, 0, 0)
    box_alpha: int = 215
    accent_rgb: tuple | None = None


def render_text_card(text: str, max_width: int, font_px: int, look: CardLook = CardLook(), font: str | None = None,
                     field: str = "on_screen_text", max_lines: int = 3, max_height: int | None = None) -> Image.Image:
    """A headline card: text on a rounded box in ``look.box_rgb`` (brand colour), RGBA.

    The font shrinks (not below ``MIN_CARD_FONT_PX``) until the text fits ``max_lines`` lines of
    ``max_width`` and the card is at most ``max_height`` tall (its zone: it never reaches into the
    subtitles below).
    """
    box_rgb, box_alpha, accent_rgb, min_font_px = look.box_rgb, look.box_alpha, look.accent_rgb, MIN_CARD_FONT_PX
    chain = font_chain(font)
    size = font_px
    while True:
        layout = TextLayout(chain, size, field)
        pad = max(8, size // 2)
        lines = wrap_text(text, layout, max_width - 2 * pad, max_lines)
        fits = lines is not None and (max_height is None or _card_height(size, len(lines), pad) <= max_height)
        if fits or size <= min_font_px:
            break
        size = max(min_font_px, int(size * 0.88))
    if lines is None:
        lines = wrap_text(text, layout, max_width - 2 * pad, 99) or [text]
    ascent = size * 0.95
    line_h = round(size * 1.28)
    text_w = max(layout.line_width(ln) for ln in lines)
    accent_w = max(6, size // 6) if accent_rgb else 0
    w = int(min(max_width, text_w + 2 * pad + accent_w)) + 1
    h = _card_height(size, len(lines), pad)
    card = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(card)
    d.rounded_rectangle((0, 0, w - 1, h - 1), radius=max(6, size // 3), fill=tuple(box_rgb) + (box_alpha,))
    if accent_rgb:
        d.rounded_rectangle((0, 0, accent_w, h - 1), radius=max(3, accent_w // 2), fill=tuple(accent_rgb) + (255,))
    fill = readable_on(tuple(box_rgb))
    y = pad * 0.7 + ascent
    for ln in lines:
        lw = layout.line_width(ln)
        layout.draw_line(card, accent_w + (w - accent_w - lw) / 2, y, ln, fill + (255,))
        y += line_h
    return card
