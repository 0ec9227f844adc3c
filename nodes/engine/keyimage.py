"""The key-image stage without a model: a scene's key image composed from the
brand palette, the product photo (when given) and the scene itself.

Each scene gets its own gradient angle, palette rotation and decoration, so cuts
read as new shots; the headline zone is left calm for the on-screen text.
"""
from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from .layout import Box, frame_layout
from .models import AdReelInputError, StoryboardScene
from .text_render import TextLayout, hex_rgb, readable_on, render_text_card, wrap_text
from .fonts import font_chain

MAX_INPUT_PIXELS = 64_000_000


def _mix(a, b, t):
    return tuple(int(round(a[i] + (b[i] - a[i]) * t)) for i in range(3))


def _shade(c, k):
    """k<0 darkens, k>0 lightens."""
    return _mix(c, (0, 0, 0) if k < 0 else (255, 255, 255), abs(k))


def _gradient(w: int, h: int, c0, c1, angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    proj = (xs - w / 2) * math.cos(a) + (ys - h / 2) * math.sin(a)
    half = abs(w / 2 * math.cos(a)) + abs(h / 2 * math.sin(a))
    t = np.clip((proj / max(half, 1) + 1) / 2, 0, 1)[..., None]
    t = t * t * (3 - 2 * t)  # smooth
    img = np.array(c0, np.float32) * (1 - t) + np.array(c1, np.float32) * t
    # soft vignette
    r = np.sqrt(((xs - w / 2) / (w / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2)[..., None]
    img *= (1 - 0.28 * np.clip(r - 0.55, 0, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def load_image_file(path: str, field: str) -> Image.Image:
    """Open a user image safely: any Pillow format, size-checked, EXIF-rotated."""
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_INPUT_PIXELS:
                raise AdReelInputError(field, f"image is {im.width}x{im.height}, more than {MAX_INPUT_PIXELS // 1_000_000} MP")
            im = ImageOps.exif_transpose(im)
            return im.convert("RGBA")
    except AdReelInputError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise AdReelInputError(field, f"cannot read image {path!r}: {exc}") from None


def _fit(im: Image.Image, box: Box) -> Image.Image:
    k = min(box.w / im.width, box.h / im.height)
    return im.resize((max(1, round(im.width * k)), max(1, round(im.height * k))), Image.LANCZOS)


def _has_transparency(im: Image.Image) -> bool:
    return im.mode == "RGBA" and im.getchannel("A").getextrema()[0] < 250


def _paste_with_shadow(canvas: Image.Image, im: Image.Image, xy, radius: int):
    alpha = im.getchannel("A")
    shadow = Image.new("RGBA", (im.width + 4 * radius, im.height + 4 * radius), (0, 0, 0, 0))
    sh_alpha = Image.new("L", shadow.size, 0)
    sh_alpha.paste(alpha.point(lambda v: int(v * 0.55)), (2 * radius, 2 * radius))
    shadow.putalpha(sh_alpha.filter(ImageFilter.GaussianBlur(radius)))
    canvas.alpha_composite(shadow, (xy[0] - 2 * radius, xy[1] - 2 * radius + radius // 2))
    canvas.alpha_composite(im, xy)


def _rounded(im: Image.Image, r: int) -> Image.Image:
    mask = Image.new("L", im.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, im.width - 1, im.height - 1), radius=r, fill=255)
    out = im.copy()
    out.putalpha(Image.composite(im.getchannel("A"), mask, mask))
    return out


def _star(cx, cy, r):
    pts = []
    for i in range(10):
        rr = r if i % 2 == 0 else r * 0.42
        a = -math.pi / 2 + i * math.pi / 5
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def compose_key_image(scene: StoryboardScene, width: int, height: int, brand: str, product: str,
                      product_image: Image.Image | None = None, logo: Image.Image | None = None,
                      seed: int = 0, font: str | None = None) -> Image.Image:
    """The composed key image of ``scene`` at ``width``×``height`` (RGB)."""
    rng = random.Random(f"{seed}:{scene.index}:{scene.segment}")
    lay = frame_layout(width, height)
    pal = [hex_rgb(c) for c in (scene.palette or ["#1E3A8A", "#F59E0B"])]
    c0, c1 = pal[0], pal[1 % len(pal)]
    if scene.segment == "problem":  # a muted, darker take on the palette
        c0, c1 = _shade(_mix(c0, (90, 90, 90), 0.5), -0.35), _shade(_mix(c1, (90, 90, 90), 0.5), -0.2)
    else:
        c0 = _shade(c0, -0.15)
    angle = (scene.index * 67 + rng.uniform(-15, 15)) % 360
    canvas = Image.fromarray(_gradient(width, height, c0, c1, angle)).convert("RGBA")

    # decoration: large soft circles and a light band
    deco = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    d = ImageDraw.Draw(deco)
    for i in range(3):
        col = pal[(i + 1) % len(pal)] if i else _shade(c1, 0.35)
        r = int(lay.short * rng.uniform(0.25, 0.5))
        cx, cy = int(width * rng.uniform(-0.1, 1.1)), int(height * rng.uniform(0.0, 1.0))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=col + (int(rng.uniform(50, 95)),))
    band_y = int(height * rng.uniform(0.2, 0.8))
    d.polygon([(0, band_y), (width, band_y - int(height * 0.25)), (width, band_y - int(height * 0.17)),
               (0, band_y + int(height * 0.08))], fill=(255, 255, 255, 22))
    canvas.alpha_composite(deco.filter(ImageFilter.GaussianBlur(lay.short // 40)))

    # hero: the product photo, or the product name set large
    hero = lay.hero
    if scene.segment == "cta":
        hero = Box(hero.x + hero.w // 8, hero.y + hero.h // 6, hero.w * 3 // 4, hero.h * 2 // 3)
    if product_image is not None:
        im = product_image if _has_transparency(product_image) else _rounded(product_image, lay.short // 30)
        im = _fit(im, hero)
        _paste_with_shadow(canvas, im, (hero.x + (hero.w - im.width) // 2, hero.y + (hero.h - im.height) // 2),
                           max(4, lay.short // 45))
    else:
        chain = font_chain(font)
        size = int(lay.short * 0.14)
        while size > 24:
            tl = TextLayout(chain, size, "brief.product")
            lines = wrap_text(product, tl, hero.w, 3)
            words_fit = all(tl.line_width(w) <= hero.w for w in product.split())
            if lines and words_fit:
                break
            size = int(size * 0.88)
        lines = lines or [product]
        txt = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        line_h = int(size * 1.15)
        y = hero.y + (hero.h - line_h * len(lines)) // 2 + int(size * 0.95)
        fill = readable_on(_mix(c0, c1, 0.5)) + (255,)
        for ln in lines:
            lw = tl.line_width(ln)
            tl.draw_line(txt, hero.cx - lw / 2, y, ln, fill)
            y += line_h
        shadow = txt.getchannel("A").filter(ImageFilter.GaussianBlur(size // 10))
        sh = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        sh.putalpha(shadow.point(lambda v: int(v * 0.45)))
        canvas.alpha_composite(sh, (0, size // 20))
        canvas.alpha_composite(txt)

    if scene.segment == "proof":
        d = ImageDraw.Draw(canvas)
        r = lay.short * 0.035
        y = hero.y + hero.h + r * 0.2
        for i in range(5):
            d.polygon(_star(hero.cx + (i - 2) * r * 2.4, y, r), fill=(255, 200, 40, 255))

    # brand bar: logo + wordmark
    bar = lay.brand_bar
    x = bar.x
    if logo is not None:
        lg = _fit(logo, Box(0, 0, bar.h * 3, bar.h))
        canvas.alpha_composite(lg, (x, bar.y + (bar.h - lg.height) // 2))
        x += lg.width + bar.h // 3
    card = render_text_card(brand.upper(), bar.w - (x - bar.x), int(bar.h * 0.55), box_rgb=c0, box_alpha=0,
                            font=font, field="brief.brand", max_lines=1)
    canvas.alpha_composite(card, (x - max(8, int(bar.h * 0.55)) // 2 if logo is None else x,
                                  bar.y + (bar.h - card.height) // 2))
    return canvas.convert("RGB")
