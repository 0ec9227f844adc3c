"""Where things go in a frame, per aspect: one source for the key-image composer,
the brand cards and the assembler.

``safe`` is the platforms' safe zone: 9:16 apps cover about the top 10 % and
the bottom 16 % (and a strip at each side) with their own UI; feeds and
players keep a 5 % title-safe margin. Every box a viewer must read (brand
mark, headline, CTA, subtitles) lies inside it.

The camera moves over the key image, the overlays do not: text that must stay
whole (headline, CTA, corner logo) is laid over the moving picture by the
assembler, and whatever the key image itself carries (the product photo, or
the product's name when there is no photo) is placed inside the
``steady_box``: the part of the image that stays inside its zone through the
whole camera move.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def cx(self) -> int:
        return self.x + self.w // 2

    @property
    def cy(self) -> int:
        return self.y + self.h // 2

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    def contains(self, other: "Box") -> bool:
        return (self.x <= other.x and self.y <= other.y and other.right <= self.right
                and other.bottom <= self.bottom)

    def inset(self, d: int) -> "Box":
        return Box(self.x + d, self.y + d, max(1, self.w - 2 * d), max(1, self.h - 2 * d))


@dataclass(frozen=True)
class FrameLayout:
    width: int
    height: int
    safe: Box           # the platforms' safe zone: everything a viewer must read lies inside
    brand_bar: Box      # the corner logo's band (the assembler's overlay; the key image leaves it calm)
    hero: Box           # product photo or hero type (on screen, through the camera move)
    headline: Box       # on-screen text (top of box = where the card sits)
    subtitles: Box      # burned-in subtitles
    font_px: int        # headline size

    @property
    def short(self) -> int:
        return min(self.width, self.height)

    @property
    def portrait(self) -> bool:
        return self.height > self.width * 1.3

    @property
    def landscape(self) -> bool:
        return self.width > self.height * 1.3


def frame_layout(width: int, height: int) -> FrameLayout:
    W, H = width, height
    s = min(W, H)

    def box(x0, y0, x1, y1):
        return Box(int(W * x0), int(H * y0), int(W * (x1 - x0)), int(H * (y1 - y0)))

    if H > W * 1.3:  # portrait 9:16
        return FrameLayout(W, H, box(0.06, 0.10, 0.94, 0.845), box(0.08, 0.10, 0.92, 0.155),
                           box(0.06, 0.165, 0.94, 0.565), box(0.07, 0.585, 0.93, 0.74),
                           box(0.07, 0.755, 0.93, 0.84), round(s * 0.072))
    if W > H * 1.3:  # landscape 16:9
        return FrameLayout(W, H, box(0.05, 0.05, 0.95, 0.95), box(0.05, 0.05, 0.95, 0.13),
                           box(0.5, 0.14, 0.95, 0.78), box(0.05, 0.36, 0.5, 0.7),
                           box(0.1, 0.8, 0.9, 0.92), round(s * 0.075))
    return FrameLayout(W, H, box(0.05, 0.05, 0.95, 0.95), box(0.07, 0.05, 0.93, 0.12),
                       box(0.08, 0.135, 0.92, 0.575), box(0.07, 0.6, 0.93, 0.77),
                       box(0.08, 0.8, 0.92, 0.9), round(s * 0.066))


def _move_matrices(move: str, width: int, height: int, strength: float, steps: int = 33):
    """(output → source) affine of every sampled instant of ``move`` over a frame-sized image."""
    from ..motion import inverse_affine, camera_transform  # the motion stage's own camera
    for p in np.linspace(0.0, 1.0, steps):
        z, dx, dy, ang = camera_transform(move, float(p), width, height, strength)
        yield inverse_affine(z, dx, dy, ang, width, height, width, height)


def _forwards(moves, width: int, height: int, strength: float) -> list[np.ndarray]:
    """(source → output) affines, 3x3, of every sampled instant of ``moves``."""
    return [np.linalg.inv(np.vstack([A, [0.0, 0.0, 1.0]]))
            for m in moves for A in _move_matrices(m, width, height, strength)]


def _corners_out(F: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    pts = np.array([[x0, x1, x1, x0], [y0, y0, y1, y1], [1.0, 1.0, 1.0, 1.0]])
    return (F @ pts)[:2]


def steady_box(zone: Box, width: int, height: int, moves=("static",), strength: float = 1.0) -> Box:
    """The largest box, centred on ``zone``'s centre, of a frame-sized key image
    whose picture stays inside ``zone`` (output pixels) at every instant of every
    camera move in ``moves``.

    Computed from the motion stage's own camera (``camera_transform``), so it
    follows whatever the moves do. Whatever the key image draws inside this box
    is never cut by the frame or pushed into the headline or subtitle zones.
    """
    Fs = np.stack(_forwards(moves, width, height, strength))
    cx, cy = zone.x + zone.w / 2, zone.y + zone.h / 2

    def inside(hw: float, hh: float) -> bool:
        pts = np.array([[cx - hw, cx + hw, cx + hw, cx - hw], [cy - hh, cy - hh, cy + hh, cy + hh], [1.0] * 4])
        out = Fs @ pts                                       # (instants, 3, 4)
        x, y = out[:, 0], out[:, 1]
        return bool((x >= zone.x - 0.5).all() and (x <= zone.right + 0.5).all()
                    and (y >= zone.y - 0.5).all() and (y <= zone.bottom + 0.5).all())

    # shrink the zone about its centre (keeping its proportions) until every corner stays inside:
    # the picture of a box under an affine map is a parallelogram, inside a convex zone when its corners are
    lo, hi = 0.0, 1.0
    if inside(zone.w / 2, zone.h / 2):
        lo = 1.0
    else:
        for _ in range(24):
            mid = (lo + hi) / 2
            if inside(zone.w / 2 * mid, zone.h / 2 * mid):
                lo = mid
            else:
                hi = mid
    # then widen each axis alone as far as it goes (a pan limits one axis only)
    kx = ky = lo
    for axis in ("x", "y"):
        a, b = (kx if axis == "x" else ky), 1.0
        for _ in range(20):
            mid = (a + b) / 2
            ok = inside(zone.w / 2 * (mid if axis == "x" else kx), zone.h / 2 * (mid if axis == "y" else ky))
            a, b = (mid, b) if ok else (a, mid)
        if axis == "x":
            kx = a
        else:
            ky = a
    w, h = max(2, int(math.floor(zone.w * kx)) - 1), max(2, int(math.floor(zone.h * ky)) - 1)
    return Box(int(round(cx - w / 2)), int(round(cy - h / 2)), w, h)


def on_screen_extent(box: Box, width: int, height: int, moves=("static",), strength: float = 1.0) -> Box:
    """The bounding box, in output pixels, of everything ``box`` of the key image
    covers at any instant of ``moves`` (what the viewer may see of it)."""
    out = np.stack([_corners_out(F, box.x, box.y, box.right, box.bottom)
                    for F in _forwards(moves, width, height, strength)])
    xs, ys = out[:, 0], out[:, 1]
    x0, y0 = int(math.floor(xs.min())), int(math.floor(ys.min()))
    return Box(x0, y0, int(math.ceil(xs.max())) - x0, int(math.ceil(ys.max())) - y0)
