"""Where things go in a frame, per aspect: one source for the key-image composer,
the brand cards and the assembler.

``safe`` is the platforms' safe zone: 9:16 apps cover about the top 10 % and
the bottom 16 % (and a strip at each side) with their own UI; feeds (1:1, 4:5)
and players keep a 5 % title-safe margin. Every box a viewer must read (brand
mark, headline, CTA, subtitles) lies inside it.

The camera moves over the key image, the overlays do not: text that must stay
whole (headline, CTA, corner logo) is laid over the moving picture by the
assembler, and whatever the key image itself carries (the product photo, or
the product's name when there is no photo) is placed inside the
``steady_box`` (the motion stage's): the part of the image that stays inside its zone through the
whole camera move.

A channel (``nodes/engine/channels.py``) may name its own safe zone, as the
margins its app's UI covers (``SafeZone``): ``frame_layout(w, h, zone)`` then
fits the aspect's layout into that zone, every box moved and scaled with it,
so the design is the same and every element lies inside the channel's zone.
Without a zone the layout is the aspect's own (the one above).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


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
class SafeZone:
    """A channel's safe zone as the fractions of the frame its UI covers at each edge."""
    top: float
    right: float
    bottom: float
    left: float

    def __post_init__(self):
        for name in ("top", "right", "bottom", "left"):
            if not 0 <= getattr(self, name) < 0.5:
                raise ValueError(f"SafeZone.{name} must be a fraction in [0, 0.5)")

    def box(self, width: int, height: int) -> Box:
        """The part of a ``width``×``height`` frame no UI covers (whole pixels, rounded inwards)."""
        x0, y0 = math.ceil(width * self.left - 1e-6), math.ceil(height * self.top - 1e-6)
        x1, y1 = math.floor(width * (1 - self.right) + 1e-6), math.floor(height * (1 - self.bottom) + 1e-6)
        return Box(x0, y0, x1 - x0, y1 - y0)

    def union(self, other: "SafeZone") -> "SafeZone":
        """The zone clear of both UIs: the larger margin at each edge."""
        return SafeZone(max(self.top, other.top), max(self.right, other.right),
                        max(self.bottom, other.bottom), max(self.left, other.left))


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
    zone: SafeZone | None = None  # the channel's zone the layout was fitted into (None: the aspect's own)

    @property
    def short(self) -> int:
        return min(self.width, self.height)

    @property
    def portrait(self) -> bool:
        return self.height > self.width * 1.3

    @property
    def landscape(self) -> bool:
        return self.width > self.height * 1.3


def frame_layout(width: int, height: int, zone: SafeZone | None = None) -> FrameLayout:
    """Where things go in a ``width``×``height`` frame: the aspect's own layout, or, given a
    channel's ``zone``, that layout fitted into the zone."""
    own = _aspect_layout(width, height)
    return own if zone is None else _fit_into(own, zone)


def _fit_into(lay: FrameLayout, zone: SafeZone) -> FrameLayout:
    """``lay`` moved and scaled so that its safe box becomes ``zone``'s: every box keeps its place
    relative to the safe box, the headline type shrinks with the zone (never grows)."""
    old, new = lay.safe, zone.box(lay.width, lay.height)
    sx, sy = new.w / old.w, new.h / old.h

    def fit(b: Box) -> Box:
        x0 = new.x + round((b.x - old.x) * sx)
        y0 = new.y + round((b.y - old.y) * sy)
        x1 = min(new.right, new.x + round((b.right - old.x) * sx))
        y1 = min(new.bottom, new.y + round((b.bottom - old.y) * sy))
        return Box(x0, y0, max(1, x1 - x0), max(1, y1 - y0))

    return FrameLayout(lay.width, lay.height, new, fit(lay.brand_bar), fit(lay.hero), fit(lay.headline),
                       fit(lay.subtitles), max(8, round(lay.font_px * min(1.0, sx, sy))), zone)


def _aspect_layout(width: int, height: int) -> FrameLayout:
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
    if H > W * 1.1:  # a feed's tall 4:5: the whole frame is seen (the caption sits below it), title-safe 5 %
        return FrameLayout(W, H, box(0.05, 0.05, 0.95, 0.95), box(0.07, 0.05, 0.93, 0.105),
                           box(0.08, 0.12, 0.92, 0.60), box(0.07, 0.62, 0.93, 0.775),
                           box(0.08, 0.80, 0.92, 0.90), round(s * 0.068))
    return FrameLayout(W, H, box(0.05, 0.05, 0.95, 0.95), box(0.07, 0.05, 0.93, 0.12),
                       box(0.08, 0.135, 0.92, 0.575), box(0.07, 0.6, 0.93, 0.77),
                       box(0.08, 0.8, 0.92, 0.9), round(s * 0.066))
