"""A video model's frame batch fitted to a scene: length, frame rate, framing.

Models give a few seconds at their own rate and size (SVD 25 frames at 6 fps,
1024×576; WAN 81 at 16 fps; AnimateDiff 16 at 8 fps). A scene wants exactly
``frame_count`` frames at the ad's fps and size. Output frames are made one at a
time, on demand, from the two source frames around them:

* ``motion`` interpolation estimates the optical flow between the two (OpenCV
  DIS, both directions, at ≤ 512 px) and warps both towards the in-between
  time, so moving things move rather than cross-fade (no double images);
* ``blend`` mixes the two linearly; ``nearest`` repeats frames.

Framing is ``cover`` (fill the frame, crop the overflow) or ``contain`` (the
whole model frame, on a blurred, dimmed copy of itself — or on bars of one
colour when ``fill_rgb`` is given, as the assembler's extra aspects are).

Nothing is held but the source batch the model already made, the current pair
of frames and their flows: the scene is streamed frame by frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import cv2
import numpy as np

from .. import limits
from ..models import AdReelInputError, WidgetValues
from ..media.frames import FRAMINGS, frame_to, pack_yuv420, rgb_to_yuv420

FIT_MODES = ("stretch", "native")
INTERPOLATIONS = ("motion", "blend", "nearest")
FLOW_MAX_SIDE = 512


def _flow(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Forward and backward optical flow of two RGB frames, at ≤ FLOW_MAX_SIDE px; (f01, f10, scale)."""
    h, w = a.shape[:2]
    s = min(1.0, FLOW_MAX_SIDE / max(h, w))
    size = (max(8, round(w * s)), max(8, round(h * s)))
    ga = cv2.cvtColor(cv2.resize(a, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(cv2.resize(b, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(ga, gb, None), dis.calc(gb, ga, None), size[0] / w


def _warp(img: np.ndarray, flow_small: np.ndarray, scale: float, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    h, w = img.shape[:2]
    f = cv2.resize(flow_small, (w, h), interpolation=cv2.INTER_LINEAR) * (1.0 / scale)
    return cv2.remap(img, grid[0] + f[..., 0], grid[1] + f[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class BatchFit:
    """How a frame batch is fitted to its scene: its length (``fit``), the frames between two model frames
    (``interpolation``) and the frame (``framing``; "contain" with ``fill_rgb`` gives bars of that colour)."""

    fit: str = "stretch"
    interpolation: str = "motion"
    framing: str = "cover"
    fill_rgb: tuple[int, int, int] | None = None

    def __post_init__(self):
        if self.fit not in FIT_MODES:
            raise AdReelInputError("fit", f"is not one of {', '.join(FIT_MODES)}")
        if self.interpolation not in INTERPOLATIONS:
            raise AdReelInputError("interpolation", f"is not one of {', '.join(INTERPOLATIONS)}")
        if self.framing not in FRAMINGS:
            raise AdReelInputError("framing", f"is not one of {', '.join(FRAMINGS)}")


class FittedFrameBatch:
    """``n_frames`` at ``source_fps`` → ``frame_count`` frames at ``fps``, ``width``×``height``.

    fit="stretch" spreads the batch over the whole scene (slow motion for short
    batches); "native" plays it at its own speed and holds the last frame.
    """

    DEFAULT_FIT = BatchFit()

    def __init__(self, get_frame: Callable[[int], np.ndarray], n_frames: int, source_fps: float,
                 frame_count: int, fps: float, width: int, height: int, how: BatchFit | None = None):
        how = self.DEFAULT_FIT if how is None else how
        if n_frames < 1:
            raise AdReelInputError("images", "the frame batch is empty")
        if not (math.isfinite(float(source_fps)) and source_fps > 0):
            raise AdReelInputError("source_fps", f"must be a finite number more than 0 (got {source_fps})")
        if frame_count < 1 or not (math.isfinite(float(fps)) and fps > 0):
            raise AdReelInputError("scene", f"{frame_count} frames at {fps} fps is no scene")
        cap = limits.MAX_MEDIA_FRAMES.read()
        if n_frames > cap or frame_count > cap:
            raise AdReelInputError("images", f"{max(n_frames, frame_count)} frames is more than one clip may hold "
                                             f"on this server ({cap}, ADREEL_MAX_MEDIA_FRAMES)")
        self.get_frame, self.n, self.source_fps = get_frame, int(n_frames), float(source_fps)
        self.frame_count, self.fps, self.width, self.height = int(frame_count), float(fps), int(width), int(height)
        self.how = how
        self.fit, self.interpolation, self.framing = how.fit, how.interpolation, how.framing
        self.fill_rgb = None if how.fill_rgb is None else tuple(int(c) for c in how.fill_rgb)
        self._frames: dict[int, np.ndarray] = {}
        self._flows: dict[int, tuple] = {}
        self._grid = None

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps

    def source_position(self, k: int) -> float:
        """Fractional source-frame index shown at output frame ``k``."""
        if self.fit == "stretch" and self.frame_count > 1:
            pos = k * (self.n - 1) / (self.frame_count - 1)
        else:
            pos = k / self.fps * self.source_fps
        return min(max(pos, 0.0), self.n - 1.0)

    def _source(self, i: int) -> np.ndarray:
        f = self._frames.get(i)
        if f is None:
            if len(self._frames) >= 3:
                self._frames.pop(min(self._frames))  # frames are asked for in order
            f = np.ascontiguousarray(np.asarray(self.get_frame(i))[..., :3])
            if f.dtype != np.uint8 or f.ndim != 3:
                raise AdReelInputError("images", f"frame {i} is {f.dtype} {f.shape}, not uint8 RGB")
            self._frames[i] = f
        return f

    def _pair_flow(self, i: int):
        fl = self._flows.get(i)
        if fl is None:
            if len(self._flows) >= 2:
                self._flows.pop(min(self._flows))
            fl = self._flows[i] = _flow(self._source(i), self._source(i + 1))
        return fl

    def source_frame_at(self, pos: float) -> np.ndarray:
        """The picture at fractional source index ``pos`` (source size)."""
        i = int(pos)
        t = pos - i
        if t < 1e-6 or i + 1 >= self.n:
            return self._source(min(i, self.n - 1))
        if t > 1 - 1e-6:
            return self._source(i + 1)
        if self.interpolation == "nearest":
            return self._source(i if t < 0.5 else i + 1)
        a, b = self._source(i), self._source(i + 1)
        if self.interpolation == "blend":
            return cv2.addWeighted(a, 1 - t, b, t, 0)
        f01, f10, s = self._pair_flow(i)
        h, w = a.shape[:2]
        if self._grid is None or self._grid[0].shape != (h, w):
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = (xs, ys)
        ft0 = f01 * (-(1 - t) * t) + f10 * (t * t)            # where x at time t was in frame i
        ft1 = f01 * ((1 - t) * (1 - t)) + f10 * (-t * (1 - t))  # … and will be in frame i + 1
        return cv2.addWeighted(_warp(a, ft0, s, self._grid), 1 - t, _warp(b, ft1, s, self._grid), t, 0)

    def frame(self, k: int) -> np.ndarray:
        """Output frame ``k``: uint8 RGB at width×height."""
        return frame_to(self.source_frame_at(self.source_position(k)), self.width, self.height, self.framing,
                        self.fill_rgb)

    def rgb_frames(self, first: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
        for k in range(first, first + (self.frame_count if count is None else count)):
            yield self.frame(k)

    def yuv_frames(self, first: int, count: int) -> Iterator[np.ndarray]:
        """yuv420p frames for the assembler's stream (one reused buffer)."""
        out = np.empty(self.width * self.height * 3 // 2, np.uint8)
        for rgb in self.rgb_frames(first, count):
            yield pack_yuv420(rgb_to_yuv420(rgb), out)

    def refit(self, frame_count: int, fps: float, width: int, height: int, framing: str | None = None,
              fill_rgb: tuple[int, int, int] | None = None) -> "FittedFrameBatch":
        """The same model frames and settings fitted to another scene length, rate or size
        (the assembler's storyboard, an extra aspect): fitted from the source frames, not re-cropped.
        ``framing`` None keeps this batch's own framing (and fill); "contain" with ``fill_rgb`` gives bars."""
        if framing is None:
            framing, fill_rgb = self.framing, self.fill_rgb
        return type(self)(self.get_frame, self.n, self.source_fps, frame_count, fps, width, height,
                          replace(self.how, framing=framing, fill_rgb=fill_rgb))


class FrameBatchClip(FittedFrameBatch):
    """A frame batch fitted by linear blending (no optical flow): frames between two
    source frames are weighted mixes of them, so 8 fps plays smoothly at 30."""

    DEFAULT_FIT = BatchFit(interpolation="blend")

    @classmethod
    def from_array(cls, frames, **kw) -> "FrameBatchClip":
        return cls(lambda i: frames[i], len(frames), **kw)


@dataclass(frozen=True)
class MotionWidgets(WidgetValues):
    """MotionClip's widget values, one value each (the images, scene and key image are inputs, not widgets)."""

    camera: str = "from scene"
    strength: float = 1.0
    source_fps: float = 8.0
    fit: str = "stretch"
    interpolation: str = "motion"
    framing: str = "cover"
    fallback: str = "stop with the error"
