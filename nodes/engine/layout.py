"""Where things go in a frame, per aspect: one source for the key-image composer
and the assembler, inside the platforms' safe zones (9:16 apps cover the top
~12 % and bottom ~20 % with their own UI)."""
from __future__ import annotations

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


@dataclass(frozen=True)
class FrameLayout:
    width: int
    height: int
    brand_bar: Box      # brand wordmark / logo
    hero: Box           # product image or hero type
    headline: Box       # on-screen text (top of box = where the card sits)
    subtitles: Box      # burned-in subtitles
    font_px: int        # headline size

    @property
    def short(self) -> int:
        return min(self.width, self.height)


def frame_layout(width: int, height: int) -> FrameLayout:
    W, H = width, height
    s = min(W, H)

    def box(x0, y0, x1, y1):
        return Box(int(W * x0), int(H * y0), int(W * (x1 - x0)), int(H * (y1 - y0)))

    if H > W * 1.3:  # portrait 9:16
        return FrameLayout(W, H, box(0.08, 0.075, 0.92, 0.13), box(0.14, 0.17, 0.86, 0.56),
                           box(0.07, 0.585, 0.93, 0.74), box(0.07, 0.755, 0.93, 0.84), round(s * 0.072))
    if W > H * 1.3:  # landscape 16:9
        return FrameLayout(W, H, box(0.05, 0.06, 0.6, 0.14), box(0.52, 0.14, 0.94, 0.84),
                           box(0.05, 0.36, 0.5, 0.7), box(0.1, 0.8, 0.9, 0.92), round(s * 0.075))
    return FrameLayout(W, H, box(0.07, 0.06, 0.93, 0.13), box(0.2, 0.15, 0.8, 0.56),
                       box(0.07, 0.6, 0.93, 0.77), box(0.08, 0.8, 0.92, 0.9), round(s * 0.066))
