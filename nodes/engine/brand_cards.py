"""Brand elements: the corner logo (the brand's own, or a wordmark made from its
name), the end card with the call to action, and an optional intro card."""
from __future__ import annotations

from PIL import Image, ImageDraw

from .keyimage import _fit, _gradient, _mix, _shade
from .layout import Box
from .models import Brief
from .text_render import hex_rgb, render_text_card

LOGO_POSITIONS = ("top-right", "top-left", "bottom-right", "bottom-left")


def wordmark(brand: str, colour: str, height: int, font: str | None = None) -> Image.Image:
    """A logo made from the brand name: white type on a rounded brand-colour badge."""
    card = render_text_card(brand.upper(), height * 12, int(height * 0.55), box_rgb=hex_rgb(colour),
                            box_alpha=235, font=font, field="brief.brand", max_lines=1)
    return card


def logo_overlay(brief: Brief, logo: Image.Image | None, width: int, height: int, size: float, opacity: float,
                 position: str, font: str | None = None) -> tuple[Image.Image, int, int]:
    """The corner logo as RGBA (opacity baked into alpha) and its top-left corner."""
    short = min(width, height)
    target_w = max(8, int(width * size))
    if logo is None:
        img = wordmark(brief.brand, brief.brand_colors[0], max(16, int(short * 0.06)), font)
        if img.width > target_w:
            img = _fit(img, Box(0, 0, target_w, img.height))
    else:
        img = _fit(logo, Box(0, 0, target_w, int(short * 0.2)))
    if opacity < 1:
        a = img.getchannel("A").point(lambda v: int(v * max(0.0, opacity)))
        img.putalpha(a)
    margin = int(short * 0.04)
    top = int(height * 0.06) if height > width * 1.3 else margin  # below 9:16 apps' top bar
    x = width - img.width - margin if position.endswith("right") else margin
    y = top if position.startswith("top") else height - img.height - int(height * 0.22 if height > width * 1.3 else margin)
    return img, x, y


def end_card(brief: Brief, width: int, height: int, logo: Image.Image | None, font: str | None = None) -> Image.Image:
    """Brand colours, the logo (or wordmark), the product and the call to action."""
    pal = [hex_rgb(c) for c in brief.brand_colors]
    c0, c1 = _shade(pal[0], -0.1), pal[1 % len(pal)]
    canvas = Image.fromarray(_gradient(width, height, c0, _mix(c0, c1, 0.35), 120)).convert("RGBA")
    short = min(width, height)
    cy = int(height * 0.36)
    mark = _fit(logo, Box(0, 0, int(width * 0.5), int(short * 0.22))) if logo is not None else \
        wordmark(brief.brand, brief.brand_colors[0], int(short * 0.12), font)
    canvas.alpha_composite(mark, ((width - mark.width) // 2, cy - mark.height // 2))
    product = render_text_card(brief.product, int(width * 0.84), int(short * 0.055), box_rgb=c0, box_alpha=0,
                               font=font, field="brief.product", max_lines=2)
    canvas.alpha_composite(product, ((width - product.width) // 2, cy + mark.height // 2 + int(short * 0.04)))
    button = render_text_card(brief.cta, int(width * 0.86), int(short * 0.07), box_rgb=c1, box_alpha=255,
                              font=font, field="brief.cta", max_lines=2)
    by = int(height * 0.62)
    shadow = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    ImageDraw.Draw(shadow).rounded_rectangle(
        ((width - button.width) // 2 + 6, by + 10, (width + button.width) // 2 + 6, by + button.height + 10),
        radius=short // 40, fill=(0, 0, 0, 70))
    canvas.alpha_composite(shadow)
    canvas.alpha_composite(button, ((width - button.width) // 2, by))
    return canvas.convert("RGB")


def intro_card(brief: Brief, width: int, height: int, logo: Image.Image | None, font: str | None = None) -> Image.Image:
    pal = [hex_rgb(c) for c in brief.brand_colors]
    canvas = Image.fromarray(_gradient(width, height, pal[0], _shade(pal[0], -0.35), 60)).convert("RGBA")
    short = min(width, height)
    mark = _fit(logo, Box(0, 0, int(width * 0.55), int(short * 0.25))) if logo is not None else \
        wordmark(brief.brand, brief.brand_colors[1 % len(brief.brand_colors)], int(short * 0.14), font)
    canvas.alpha_composite(mark, ((width - mark.width) // 2, (height - mark.height) // 2))
    return canvas.convert("RGB")
