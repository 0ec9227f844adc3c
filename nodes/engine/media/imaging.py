"""Picture helpers shared by the stages that draw (key images, brand cards): colour mixing, gradients,
fitting an image into a box. Plain functions, no stage logic."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .layout import Box


def mix(a, b, t):
    """The RGB colour ``t`` of the way from ``a`` to ``b``."""
    return tuple(int(round(a[i] + (b[i] - a[i]) * t)) for i in range(3))


def shade(c, k):
    """k<0 darkens, k>0 lightens."""
    return mix(c, (0, 0, 0) if k < 0 else (255, 255, 255), abs(k))


def gradient(w: int, h: int, c0, c1, angle_deg: float) -> np.ndarray:
    """A smooth ``c0`` → ``c1`` gradient at ``angle_deg``, softly vignetted, uint8 RGB (h, w, 3)."""
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


def fit_into(im: Image.Image, box: Box) -> Image.Image:
    """``im`` scaled (Lanczos, aspect kept) to the largest size inside ``box``."""
    k = min(box.w / im.width, box.h / im.height)
    return im.resize((max(1, round(im.width * k)), max(1, round(im.height * k))), Image.LANCZOS)
