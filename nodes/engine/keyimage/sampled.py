"""The key-image stage with a model: prompts, per-scene seeds and the finishing
of a sampled image (framing to the output, the product photo and logo on top).

The sampling itself is ComfyUI's (the node layer calls it); everything here is
plain Python so it can be tested without a model.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..media.layout import SafeZone, frame_layout
from .composed import paste_product, product_slot
from ..models import AdReelInputError, StoryboardScene, WidgetValues
from ..media.frames import cover_fit
from ..media.text import hex_rgb

PRODUCT_MODES = ("composite", "img2img", "ignore")
ON_MODEL_ERROR = ("stop with the error", "composed key image")
DEFAULT_STYLE = "professional advertising photograph, clean composition, sharp focus, high detail"
DEFAULT_NEGATIVE = "text, letters, watermark, signature, logo, frame, border, blurry, low quality, jpeg artifacts"

# Names image models know, for the brand palette (they do not read hex codes).
_NAMED = {
    "black": (10, 10, 10), "charcoal grey": (54, 69, 79), "grey": (128, 128, 128), "silver": (192, 192, 192),
    "white": (250, 250, 250), "cream": (255, 250, 225), "beige": (225, 205, 170), "tan": (210, 180, 140),
    "brown": (120, 72, 36), "maroon": (128, 0, 32), "red": (220, 30, 40), "crimson": (180, 20, 60),
    "coral": (255, 127, 80), "orange": (250, 130, 20), "amber": (245, 158, 11), "gold": (212, 175, 55),
    "yellow": (250, 220, 40), "olive green": (110, 120, 40), "lime green": (132, 204, 22),
    "green": (34, 160, 60), "emerald green": (16, 185, 129), "forest green": (34, 90, 50),
    "teal": (15, 118, 110), "turquoise": (64, 210, 200), "cyan": (0, 200, 230), "sky blue": (110, 190, 240),
    "blue": (40, 90, 220), "royal blue": (50, 70, 200), "navy blue": (30, 58, 138), "midnight blue": (20, 24, 60),
    "indigo": (75, 50, 160), "purple": (128, 50, 160), "violet": (160, 100, 230), "lavender": (200, 180, 240),
    "magenta": (220, 40, 180), "hot pink": (250, 80, 160), "pink": (250, 180, 200), "peach": (255, 205, 170),
}
_HEX_IN_TEXT = re.compile(r"#[0-9a-fA-F]{6}\b")


def _lab(rgb) -> np.ndarray:
    c = np.asarray(rgb, np.float64) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ c
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


_NAMED_LAB = {name: _lab(rgb) for name, rgb in _NAMED.items()}


def colour_name(hex_colour: str) -> str:
    """The nearest colour name (CIELAB distance) for ``#RRGGBB``."""
    lab = _lab(hex_rgb(hex_colour))
    return min(_NAMED_LAB, key=lambda n: float(np.sum((_NAMED_LAB[n] - lab) ** 2)))


def palette_phrase(colours: list[str]) -> str:
    names = list(dict.fromkeys(colour_name(c) for c in colours))
    if not names:
        return ""
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"colour palette of {listed}"


def name_hex_colours(text: str) -> str:
    """``palette #1E3A8A #F59E0B`` → ``palette navy blue amber``: models read names, not codes."""
    return _HEX_IN_TEXT.sub(lambda m: colour_name(m.group(0)), text)


def _join(*parts: str) -> str:
    return ", ".join(p.strip().strip(",").strip() for p in parts if p and p.strip().strip(","))


def scene_prompts(scene: StoryboardScene, style: str = DEFAULT_STYLE,
                  negative: str = DEFAULT_NEGATIVE) -> tuple[str, str]:
    """(positive, negative) for a scene: shared style + brand palette, then the scene's own prompt.

    The shared parts come first so every scene of the ad shares one look; the
    scene's image prompt (or its visual direction) says what this shot shows.
    """
    own = scene.image_prompt or scene.visual_direction or f"{scene.segment} shot"
    positive = _join(style, palette_phrase(scene.palette), name_hex_colours(own))
    return positive, _join(negative, scene.negative_prompt)


def scene_seed(seed: int, index: int) -> int:
    """Scene ``index``'s sampling seed, derived from the node's one seed (splitmix64).

    A hash rather than ``seed + index``: with ComfyUI's "increment" seed control,
    the next run must not repeat this run's scene 1 as its scene 0.
    """
    z = (int(seed) * 0x9E3779B97F4A7C15 + (int(index) + 1) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0xFFFFFFFFFFFFFFFF


def sampled_problem(image: np.ndarray) -> str | None:
    """Why a decoded image (float, 0..1) is no key image, or None: NaN/inf, or one flat colour."""
    if image.size == 0:
        return "the model returned an empty image"
    if not np.isfinite(image).all():
        return "the model returned NaN/inf pixels (try another VAE or a float32 VAE)"
    if float(image.std()) < 0.5 / 255:
        return "the model returned a blank, single-colour image"
    return None


def finish_sampled(sampled: np.ndarray, scene: StoryboardScene, width: int, height: int,
                   product_image: Image.Image | None = None, logo: Image.Image | None = None,
                   composite_product: bool = True, zone: SafeZone | None = None) -> Image.Image:
    """The sampled image cover-fitted to the output frame, with the product photo
    on top (exact pixels, framed, soft shadow), in the same steady slot of the
    hero zone as the composed key image.

    ``logo`` is not drawn: the assembler shows the brand once, as the corner logo
    over the moving picture, where the camera move cannot cut it.
    """
    if sampled.ndim != 3 or sampled.shape[2] < 3 or sampled.dtype != np.uint8:
        raise AdReelInputError("image", f"expected uint8 RGB, got {sampled.dtype} {sampled.shape}")
    canvas = Image.fromarray(np.ascontiguousarray(cover_fit(np.ascontiguousarray(sampled[..., :3]), width, height)))
    canvas = canvas.convert("RGBA")
    if product_image is not None and composite_product:
        paste_product(canvas, product_image, product_slot(scene, width, height, zone=zone),
                      frame_layout(width, height).short)
    return canvas.convert("RGB")


@dataclass(frozen=True)
class SamplingWidgets(WidgetValues):
    """SceneKeyImage's widget values, one value each (the scene and the checkpoint are inputs, not widgets)."""

    seed: int = 0
    font: str = ""
    steps: int = 20
    cfg: float = 7.0
    sampler_name: str = "euler"
    scheduler: str = "normal"
    denoise: float = 1.0
    style: str = DEFAULT_STYLE
    negative: str = DEFAULT_NEGATIVE
    sample_size: int = 0
    product_image: str = "composite"
    fallback: str = ON_MODEL_ERROR[0]


def sampling_note(index: int, size: tuple[int, int], family: str, seed: int, w: SamplingWidgets,
                  framed_to: tuple[int, int], product_mode: str | None, prompts: tuple[str, str]) -> str:
    """What the node says of a sampled key image: its size, model family and sampling (``seed``: the scene's
    own, derived from ``w.seed``), and the prompts."""
    return (f"scene {index}: sampled {size[0]}x{size[1]} ({family}), seed {seed}, {w.steps} steps "
            f"{w.sampler_name}/{w.scheduler}, cfg {w.cfg:g}, denoise {w.denoise:g} → framed to "
            f"{framed_to[0]}x{framed_to[1]}"
            + (f"; product image {product_mode}" if product_mode else "")
            + f"\nprompt: {prompts[0]}\nnegative: {prompts[1]}")
