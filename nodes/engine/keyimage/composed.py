"""The key-image stage without a model: a scene's key image composed from the
brand palette, the product photo (when given) and the scene itself.

Each scene gets its own gradient angle, palette rotation and decoration, so cuts
read as new shots; the headline zone is left calm for the on-screen text.

The key image carries no brand mark and no headline: the camera moves over
it, so text drawn into it would be cut at the frame's edge mid-move, and the
assembler already lays the corner logo, the headline and the CTA over the
moving picture, still and inside the safe zone. What the key image does hold
(the framed product photo, or the product's name set large when there is no
photo) sits in the part of the image that stays inside the hero zone through
the scene's whole camera move (``motion.steady_box``).

A key image travels between nodes as a lossless PNG on disk
(``StillImage``): a clip loads its pixels only while it renders, so memory
does not grow with the number of scenes.
"""
from __future__ import annotations

import hashlib
import math
import os
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from ..media.layout import Box, SafeZone, frame_layout
from ..models import AdReelInputError, StoryboardScene
from ..media.text import TextLayout, hex_rgb, readable_on, wrap_text
from ..media.files import write_atomic
from ..media.fonts import font_chain
from ..limits import MAX_INPUT_PIXELS
from ..media.imaging import fit_into, gradient, mix, shade
from ..motion.camera import steady_box



def load_image_file(path, field: str, formats: tuple[str, ...] | None = None) -> Image.Image:
    """Open a user image safely: any Pillow format (or only ``formats``), size-checked, EXIF-rotated.
    ``path`` may also be a binary file object (a downloaded image held in memory)."""
    try:
        with Image.open(path, formats=formats) as im:
            limit = MAX_INPUT_PIXELS.read()
            if im.width * im.height > limit:
                raise AdReelInputError(field, f"image is {im.width}x{im.height}, more than {limit / 1e6:g} MP "
                                       f"({MAX_INPUT_PIXELS.env})")
            im = ImageOps.exif_transpose(im)
            return im.convert("RGBA")
    except AdReelInputError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        what = repr(path) if isinstance(path, (str, os.PathLike)) else "the downloaded image"
        raise AdReelInputError(field, f"cannot read image {what}: {exc}") from None


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


def framed_product(photo: Image.Image, short: int) -> Image.Image:
    """A product photo as a brand would show it: a cut-out (transparent) stays as
    it is; an opaque photograph gets a print's white border and rounded corners.
    Never stretched: only ever scaled with its own proportions."""
    if _has_transparency(photo):
        return photo
    border = max(2, short // 60)
    rgb = photo.convert("RGBA")
    card = Image.new("RGBA", (rgb.width + 2 * border, rgb.height + 2 * border), (255, 255, 255, 255))
    card.alpha_composite(_rounded(rgb, max(1, short // 90)), (border, border))
    return _rounded(card, max(2, short // 45))


def product_slot(scene: StoryboardScene, width: int, height: int, strength: float = 1.0,
                 zone: SafeZone | None = None) -> Box:
    """Where the product goes in a frame-sized key image: inside the hero zone (of the layout fitted
    into the channels' safe ``zone``, when they chose it) and steady through the scene's own camera
    move (at ``strength``, MotionClip's default 1)."""
    lay = frame_layout(width, height, zone)
    slot = steady_box(lay.hero, width, height, (scene.camera,), strength)
    pad = max(4, lay.short // 45) * 2  # room for the soft shadow
    return slot.inset(min(pad, slot.w // 6, slot.h // 6))


def paste_product(canvas: Image.Image, photo: Image.Image, slot: Box, short: int, glow=None) -> Box:
    """The framed product photo fitted (never stretched) and centred in ``slot``; its box.
    ``glow`` (RGB) lays a soft pool of light behind it, as a studio packshot has."""
    im = fit_into(framed_product(photo, short), slot)
    x, y = slot.x + (slot.w - im.width) // 2, slot.y + (slot.h - im.height) // 2
    if glow is not None:
        light = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        rx, ry = im.width * 0.62, im.height * 0.75
        cx, cy = x + im.width / 2, y + im.height / 2
        ImageDraw.Draw(light).ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=tuple(glow) + (120,))
        canvas.alpha_composite(light.filter(ImageFilter.GaussianBlur(short // 14)))
    _paste_with_shadow(canvas, im, (x, y), max(4, short // 45))
    return Box(x, y, im.width, im.height)


def compose_key_image(scene: StoryboardScene, width: int, height: int, product: str,
                      product_image: Image.Image | None = None, seed: int = 0, font: str | None = None,
                      zone: SafeZone | None = None) -> Image.Image:
    """The composed key image of ``scene`` at ``width``×``height`` (RGB).

    It takes no brand name and no logo: the assembler shows the brand once, as the
    corner logo over the moving picture, where the camera cannot cut it. ``zone``: the channels' safe
    zone (``SceneSpec.zone()``), None for the aspect's own layout.
    """
    rng = random.Random(f"{seed}:{scene.index}:{scene.segment}")
    lay = frame_layout(width, height, zone)
    pal = [hex_rgb(c) for c in (scene.palette or ["#1E3A8A", "#F59E0B"])]
    c0, c1 = pal[0], pal[1 % len(pal)]
    if scene.segment == "problem":  # a muted, darker take on the palette
        c0, c1 = shade(mix(c0, (90, 90, 90), 0.5), -0.35), shade(mix(c1, (90, 90, 90), 0.5), -0.2)
    else:
        c0 = shade(c0, -0.15)
    angle = (scene.index * 67 + rng.uniform(-15, 15)) % 360
    canvas = Image.fromarray(gradient(width, height, c0, c1, angle)).convert("RGBA")

    # decoration: large soft circles and a light band
    deco = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    d = ImageDraw.Draw(deco)
    for i in range(3):
        col = pal[(i + 1) % len(pal)] if i else shade(c1, 0.35)
        r = int(lay.short * rng.uniform(0.25, 0.5))
        cx, cy = int(width * rng.uniform(-0.1, 1.1)), int(height * rng.uniform(0.0, 1.0))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=col + (int(rng.uniform(50, 95)),))
    band_y = int(height * rng.uniform(0.2, 0.8))
    d.polygon([(0, band_y), (width, band_y - int(height * 0.25)), (width, band_y - int(height * 0.17)),
               (0, band_y + int(height * 0.08))], fill=(255, 255, 255, 22))
    canvas.alpha_composite(deco.filter(ImageFilter.GaussianBlur(lay.short // 40)))

    # hero: the product photo, or the product name set large — steady through the camera move
    slot = product_slot(scene, width, height, zone=zone)
    stars_r = lay.short * 0.035
    if scene.segment == "proof":  # five stars under the product, inside the same steady slot
        row = int(stars_r * 2.6)
        hero_slot = Box(slot.x, slot.y, slot.w, max(2, slot.h - row))
    else:
        hero_slot = slot
    if product_image is not None:
        placed = paste_product(canvas, product_image, hero_slot, lay.short, glow=shade(c1, 0.45))
    else:
        placed = _hero_type(canvas, product, hero_slot, lay.short, mix(c0, c1, 0.5), font)
    if scene.segment == "proof":
        d = ImageDraw.Draw(canvas)
        y = min(placed.bottom + stars_r * 1.3, slot.bottom - stars_r)
        for i in range(5):
            d.polygon(_star(slot.cx + (i - 2) * stars_r * 2.4, y, stars_r), fill=(255, 200, 40, 255))
    return canvas.convert("RGB")


def _hero_type(canvas: Image.Image, product: str, slot: Box, short: int, background, font: str | None) -> Box:
    """The product's name set large, wrapped to ``slot`` (every word whole), with a soft shadow."""
    chain = font_chain(font)
    size = int(short * 0.14)
    lines = None
    while True:
        tl = TextLayout(chain, size, "brief.product")
        lines = wrap_text(product, tl, slot.w, 3)
        words_fit = all(tl.line_width(w) <= slot.w for w in product.split())
        line_h = int(size * 1.15)
        if lines and words_fit and line_h * len(lines) <= slot.h:
            break
        if size <= 16:
            raise AdReelInputError("brief.product", "does not fit the key image's hero zone "
                                   "even at the smallest size: shorten it or give a product photo")
        size = max(16, int(size * 0.9))
    txt = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    top = slot.y + (slot.h - line_h * len(lines)) // 2
    y = top + int(size * 0.95)
    fill = readable_on(background) + (255,)
    widest = 0
    for ln in lines:
        lw = tl.line_width(ln)
        widest = max(widest, lw)
        tl.draw_line(txt, slot.cx - lw / 2, y, ln, fill)
        y += line_h
    shadow = txt.getchannel("A").filter(ImageFilter.GaussianBlur(size // 10))
    sh = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    sh.putalpha(shadow.point(lambda v: int(v * 0.45)))
    canvas.alpha_composite(sh, (0, size // 20))
    canvas.alpha_composite(txt)
    return Box(int(slot.cx - widest / 2), top, int(widest), line_h * len(lines))


@dataclass(frozen=True)
class StillImage:
    """A key image kept as a lossless PNG on disk: what a camera move needs from
    it, loaded only while the clip renders. ``shape`` is (height, width, 3)."""

    path: str
    width: int
    height: int
    sha256: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    @classmethod
    def save(cls, image: Image.Image, folder: str) -> "StillImage":
        """Store ``image`` (RGB) under a name made of its content; the same image is stored once."""
        rgb = image.convert("RGB")
        digest = hashlib.sha256(rgb.tobytes()).hexdigest()
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"still_{digest[:24]}_{rgb.width}x{rgb.height}.png")  # not key_…: a key's shape
        still = cls(path, rgb.width, rgb.height, digest)
        if not still.intact():  # missing, or not these pixels: (re)written, atomically (a cache: no fsync)
            write_atomic(path, lambda fh: rgb.save(fh, format="PNG", compress_level=1), durable=False)
        return still

    def intact(self) -> bool:
        """The file is a regular file holding exactly these pixels."""
        try:
            return not os.path.islink(self.path) and os.path.isfile(self.path) and self.load() is not None
        except AdReelInputError:
            return False

    def load(self) -> np.ndarray:
        """The pixels, uint8 RGB (height, width, 3); a clear error if the file went away or was replaced."""
        try:
            with Image.open(self.path) as im:
                if im.size != (self.width, self.height):
                    raise AdReelInputError("image", f"the key image file {os.path.basename(self.path)!r} is "
                                           f"{im.width}x{im.height}, expected {self.width}x{self.height}")
                rgb = np.array(im.convert("RGB"))
        except FileNotFoundError:
            raise AdReelInputError("image", f"the key image file {os.path.basename(self.path)!r} is gone (was "
                                   "ComfyUI's temp folder cleared?): queue the prompt again to remake it") from None
        except (OSError, ValueError, Image.DecompressionBombError):
            raise AdReelInputError("image", f"the key image file {os.path.basename(self.path)!r} was replaced by "
                                   "something that is not its PNG: queue the prompt again to remake it") from None
        # temp/ takes uploads from anyone (/upload/image?type=temp, overwrite allowed): a file replaced there
        # must never put another picture into someone's ad
        if hashlib.sha256(rgb.tobytes()).hexdigest() != self.sha256:
            raise AdReelInputError("image", f"the key image file {os.path.basename(self.path)!r} was changed "
                                   "after SceneKeyImage made it: queue the prompt again to remake it")
        return rgb
