"""Brand elements: the corner logo (the brand's own, or a wordmark made from its
name), the end card with the call to action, and an optional intro card.

The corner logo is the one brand mark on screen while the scenes play (the key
images carry none, so the brand never shows twice); it is laid over the
moving picture, still, inside the platforms' safe zone. The end card replaces
it at the close: logo, the product photo when the brief has one, the
product's name and the CTA button, all inside the safe zone."""
from __future__ import annotations

from PIL import Image, ImageDraw

from ..media.imaging import fit_into, gradient, mix, shade
from ..keyimage.composed import framed_product, load_image_file, paste_product
from ..channels import brief_layout
from ..media.layout import Box
from ..models import Brief
from ..media.text import CardLook, hex_rgb, render_text_card

LOGO_POSITIONS = ("top-right", "top-left", "bottom-right", "bottom-left")


def wordmark(brand: str, colour: str, height: int, font: str | None = None) -> Image.Image:
    """A logo made from the brand name: white type on a rounded brand-colour badge."""
    card = render_text_card(brand.upper(), height * 12, int(height * 0.55),
                            CardLook(hex_rgb(colour), box_alpha=235), font=font, field="brief.brand", max_lines=1)
    return card


def logo_overlay(brief: Brief, logo: Image.Image | None, width: int, height: int, size: float, opacity: float,
                 position: str, font: str | None = None) -> tuple[Image.Image, int, int]:
    """The corner logo as RGBA (opacity baked into alpha) and its top-left corner."""
    lay = brief_layout(brief, width, height)
    short, safe, band = lay.short, lay.safe, lay.brand_bar
    target_w = max(8, min(int(width * size), safe.w // 2))
    max_h = max(8, band.h)  # never taller than the brand band: it stays clear of the product and the headline
    if logo is None:
        img = wordmark(brief.brand, brief.brand_colors[0], max(16, int(short * 0.06)), font)
        if img.width > target_w or img.height > max_h:
            img = fit_into(img, Box(0, 0, target_w, max_h))
    else:
        img = fit_into(logo, Box(0, 0, target_w, max_h))
    if opacity < 1:
        a = img.getchannel("A").point(lambda v: int(v * max(0.0, opacity)))
        img.putalpha(a)
    # inside the safe zone: under 9:16 apps' top bar, clear of their bottom UI
    x = safe.right - img.width if position.endswith("right") else safe.x
    y = band.y if position.startswith("top") else lay.subtitles.y - img.height - int(short * 0.02)
    return img, x, y


def end_card(brief: Brief, width: int, height: int, logo: Image.Image | None, font: str | None = None) -> Image.Image:
    """Brand colours, the logo (or wordmark), the product photo (when the brief
    has one), the product's name and the call-to-action button, inside the safe
    zone: the button at the same height in every aspect (a little below the
    middle), everything else stacked above it."""
    pal = [hex_rgb(c) for c in brief.brand_colors]
    c0, c1 = shade(pal[0], -0.1), pal[1 % len(pal)]
    canvas = Image.fromarray(gradient(width, height, c0, mix(c0, c1, 0.35), 120)).convert("RGBA")
    lay = brief_layout(brief, width, height)
    short, safe = lay.short, lay.safe
    gap = int(short * 0.035)
    scale = 1.2 if lay.portrait else 1.0
    button = render_text_card(brief.cta, int(safe.w * 0.95), int(short * 0.07 * scale), CardLook(c1, box_alpha=255),
                              font=font, field="brief.cta", max_lines=2)
    by = min(int(height * 0.62), lay.subtitles.y - gap - button.height)

    def left(w: int) -> int:  # centred in the frame, or in a channel's (maybe lopsided) safe zone
        return (width - w) // 2 if lay.zone is None else safe.x + (safe.w - w) // 2

    top, room = safe.y + int(short * 0.02), by - gap - (safe.y + int(short * 0.02))
    photo = load_image_file(brief.product_image_path, "brief.product_image") if brief.product_image_path else None
    mark_h = int(min(short * (0.12 if photo is not None else 0.2) * scale, room * (0.2 if photo is not None else 0.4)))
    mark = fit_into(logo, Box(0, 0, int(safe.w * 0.7), mark_h)) if logo is not None else \
        wordmark(brief.brand, brief.brand_colors[0], int(mark_h * 0.8), font)
    if mark.width > safe.w:
        mark = fit_into(mark, Box(0, 0, safe.w, mark.height))
    product = render_text_card(brief.product, int(safe.w * 0.95), int(short * 0.055 * scale),
                               CardLook(c0, box_alpha=0), font=font, field="brief.product", max_lines=2)
    fixed = mark.height + product.height + gap
    ph = 0
    if photo is not None and room - fixed - gap > short * 0.12:
        slot_w, slot_h = int(safe.w * 0.86), room - fixed - gap
        ph = fit_into(framed_product(photo, short), Box(0, 0, slot_w, slot_h)).height
    # the group above the button, centred in the room it has
    y = top + max(0, (room - fixed - (ph + gap if ph else 0)) // 2)
    canvas.alpha_composite(mark, (left(mark.width), y))
    y += mark.height + gap
    if ph:
        placed = paste_product(canvas, photo, Box(left(slot_w), y, slot_w, ph), short,
                               glow=shade(c1, 0.4))
        y = placed.bottom + gap
    canvas.alpha_composite(product, (left(product.width), y))
    shadow = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    ImageDraw.Draw(shadow).rounded_rectangle(
        (left(button.width) + 6, by + 10, left(button.width) + button.width + 6, by + button.height + 10),
        radius=short // 40, fill=(0, 0, 0, 70))
    canvas.alpha_composite(shadow)
    canvas.alpha_composite(button, (left(button.width), by))
    return canvas.convert("RGB")


def intro_card(brief: Brief, width: int, height: int, logo: Image.Image | None, font: str | None = None) -> Image.Image:
    pal = [hex_rgb(c) for c in brief.brand_colors]
    canvas = Image.fromarray(gradient(width, height, pal[0], shade(pal[0], -0.35), 60)).convert("RGBA")
    short = min(width, height)
    mark = fit_into(logo, Box(0, 0, int(width * 0.55), int(short * 0.25))) if logo is not None else \
        wordmark(brief.brand, brief.brand_colors[1 % len(brief.brand_colors)], int(short * 0.14), font)
    lay = brief_layout(brief, width, height)
    if lay.zone is None:
        canvas.alpha_composite(mark, ((width - mark.width) // 2, (height - mark.height) // 2))
    else:  # a channel's safe zone: inside it, centred in it
        safe = lay.safe
        if mark.width > safe.w or mark.height > safe.h:
            mark = fit_into(mark, Box(0, 0, safe.w, safe.h))
        canvas.alpha_composite(mark, (safe.x + (safe.w - mark.width) // 2, safe.y + (safe.h - mark.height) // 2))
    return canvas.convert("RGB")
