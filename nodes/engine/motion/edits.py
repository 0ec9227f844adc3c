"""Edits of a lazy clip that render nothing until frames are asked for: a frame window (a trim),
then a crop or a resize of every frame.

``EditedClip(root, first, count, ops)`` shows frames ``first … first + count - 1`` of
``root`` (a CameraMoveClip, FittedFrameBatch or any clip with ``rgb_frames`` /
``yuv_frames`` / ``refit``), each passed through ``ops`` in order. Trims compose by
adding offsets; crops and resizes append ops; the window and the ops commute, so
an edited clip is always (root, window, ops): what a caller that reads the root's
encoded stream needs to know (``window_seconds``, ``has_frame_ops``).

As a scene's clip (the assembler ``refit``\\ s it to the scene's length and each
aspect's size), a plain window refits its root so the same stretch of the move
fills the new length; a clip with crops or resizes refits its root's timing at the
root's own size, applies the ops and fits the result to the frame (cover or contain).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterator

import numpy as np

from ..media.frames import check_framing, frame_to, pack_yuv420, rgb_to_yuv420


def even_crop_rect(x: int, y: int, width: int, height: int, frame_w: int, frame_h: int):
    """``(x, y, w, h)`` clamped inside a ``frame_w``×``frame_h`` frame, its corner and size on even
    pixels (4:2:0 encoders need them); None for an empty rectangle or the whole frame (no crop)."""
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        return None
    x0 = min(max(int(x), 0), frame_w - 1) // 2 * 2
    y0 = min(max(int(y), 0), frame_h - 1) // 2 * 2
    w = min(width, frame_w - x0)
    h = min(height, frame_h - y0)
    if (x0, y0, w, h) == (0, 0, frame_w, frame_h):
        return None
    w, h = w // 2 * 2, h // 2 * 2
    return (x0, y0, w, h) if w > 0 and h > 0 else None


@dataclass(frozen=True)
class Crop:
    x: int
    y: int
    width: int
    height: int

    def size(self, w: int, h: int) -> tuple[int, int]:
        return self.width, self.height

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        return rgb[self.y:self.y + self.height, self.x:self.x + self.width]


@dataclass(frozen=True)
class Resize:
    """Every frame scaled to ``width``×``height`` by ``scale`` (uint8 RGB → uint8 RGB of that size):
    the caller's resampler, e.g. the one ComfyUI's Resize Image node uses."""
    width: int
    height: int
    scale: Callable[[np.ndarray], np.ndarray]

    def size(self, w: int, h: int) -> tuple[int, int]:
        return self.width, self.height

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        out = np.ascontiguousarray(self.scale(rgb))
        if out.shape[:2] != (self.height, self.width):
            raise ValueError(f"the resize gave {out.shape[1]}×{out.shape[0]} px, not {self.width}×{self.height}")
        return out


@dataclass(frozen=True)
class Fit:
    """Fitted to the frame of a scene (the assembler's refit): cover or contain."""
    width: int
    height: int
    framing: str = "cover"
    fill_rgb: tuple[int, int, int] | None = None

    def size(self, w: int, h: int) -> tuple[int, int]:
        return self.width, self.height

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        if rgb.shape[:2] == (self.height, self.width):
            return rgb
        return frame_to(np.ascontiguousarray(rgb), self.width, self.height, self.framing, self.fill_rgb)


@dataclass(frozen=True)
class EditedClip:
    root: object
    first: int = 0
    count: int | None = None
    ops: tuple = ()

    def __post_init__(self):
        if self.count is None:
            object.__setattr__(self, "count", int(self.root.frame_count) - self.first)
        if self.count < 1:
            raise ValueError("an edited clip needs at least one frame")

    # what a clip is -------------------------------------------------------------------------
    @property
    def frame_count(self) -> int:
        return int(self.count)

    @property
    def fps(self) -> float:
        return self.root.fps

    @property
    def width(self) -> int:
        return self.size()[0]

    @property
    def height(self) -> int:
        return self.size()[1]

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps

    def size(self) -> tuple[int, int]:
        w, h = int(self.root.width), int(self.root.height)
        for op in self.ops:
            w, h = op.size(w, h)
        return w, h

    @property
    def has_frame_ops(self) -> bool:
        return bool(self.ops)

    def window_seconds(self) -> tuple[float, float]:
        """(start, duration) of the window in the root's time, in seconds; (0, 0): the whole root."""
        if self.first == 0 and self.count == int(self.root.frame_count):
            return 0.0, 0.0
        return self.first / self.fps, self.count / self.fps

    # edits (nothing is rendered) --------------------------------------------------------------
    def window(self, first: int, count: int) -> "EditedClip":
        """Frames ``first … first + count - 1`` of this clip (already checked by the caller)."""
        return replace(self, first=self.first + int(first), count=int(count))

    def with_op(self, op) -> "EditedClip":
        return replace(self, ops=self.ops + (op,))

    # frames ---------------------------------------------------------------------------------
    def rgb_frames(self, first: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
        n = self.frame_count if count is None else count
        for rgb in self.root.rgb_frames(self.first + first, n):
            for op in self.ops:
                rgb = op.apply(rgb)
            yield rgb

    def yuv_frames(self, first: int, count: int) -> Iterator[np.ndarray]:
        if not self.ops:
            yield from self.root.yuv_frames(self.first + first, count)
            return
        w, h = self.size()
        out = np.empty(w * h * 3 // 2, np.uint8)
        for rgb in self.rgb_frames(first, count):
            yield pack_yuv420(rgb_to_yuv420(np.ascontiguousarray(rgb)), out)

    def refit(self, frame_count: int, fps: float, width: int, height: int, framing: str | None = None,
              fill_rgb: tuple[int, int, int] | None = None) -> "EditedClip":
        """The same stretch of the root over ``frame_count`` frames at ``fps``, ``width``×``height``."""
        n_root = int(self.root.frame_count)
        scale = frame_count / self.count
        total = max(frame_count, round(n_root * scale))
        first = min(round(self.first * scale), total - frame_count)
        if not self.ops:
            return EditedClip(self.root.refit(total, fps, width, height, framing=framing, fill_rgb=fill_rgb),
                              first, frame_count)
        root = self.root.refit(total, fps, int(self.root.width), int(self.root.height))
        fit = Fit(width, height, check_framing(framing or "cover"), fill_rgb)
        return EditedClip(root, first, frame_count, self.ops + (fit,))
