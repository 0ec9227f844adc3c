"""The motion stage: camera moves over a still, rendered as eased, sub-pixel
affine warps (OpenCV, bilinear) straight into YUV 4:2:0 planes.

Nothing here encodes: a clip is a description (key image + move + frame count)
that yields frames on demand, so the assembler can stream it into its single
ffmpeg encode, and another pack can still ask for plain RGB frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import cv2
import numpy as np

from ..limits import require_finite
from ..media.frames import ease_in_out, inverse_affine, rgb_to_yuv420
from ..media.layout import Box
from ..models import CAMERA_MOVES, AdReelInputError

MAX_STRENGTH = 3.0

def camera_transform(move: str, p: float, width: int, height: int, strength: float = 1.0) -> tuple[float, float, float, float]:
    """(zoom, offset_x, offset_y, angle_deg) of the virtual camera at progress ``p``.

    zoom ≥ the value that keeps the frame covered, so no border ever shows.
    Offsets are in output pixels, relative to the centred crop.
    """
    if move not in CAMERA_MOVES:
        raise AdReelInputError("camera", f"is not one of {', '.join(CAMERA_MOVES)}")
    e = ease_in_out(p)
    s = 0.12 * strength
    if move == "zoom_in":
        return 1 + s * e, 0.0, 0.0, 0.0
    if move == "zoom_out":
        return 1 + s * (1 - e), 0.0, 0.0, 0.0
    if move in ("pan_left", "pan_right", "pan_up", "pan_down"):
        z = 1 + s
        span_x, span_y = width * (1 - 1 / z) / 2 * z, height * (1 - 1 / z) / 2 * z
        d = (2 * e - 1) * 0.95
        dx = {"pan_left": d * span_x, "pan_right": -d * span_x}.get(move, 0.0)
        dy = {"pan_up": d * span_y, "pan_down": -d * span_y}.get(move, 0.0)
        return z, dx, dy, 0.0
    if move == "drift":  # slow diagonal drift with a gentle push-in: parallax-like
        z = 1 + s * (0.6 + 0.4 * e)
        span_x, span_y = width * (1 - 1 / z) / 2 * z, height * (1 - 1 / z) / 2 * z
        return z, (0.5 - e) * span_x * 0.9, (0.5 - e) * span_y * 0.6, 0.0
    if move == "rotate":
        ang = (e - 0.5) * 3.0 * strength
        a = math.radians(1.5 * strength)  # cover for the widest angle: zoom stays smooth
        cover = max(math.cos(a) + (height / width) * math.sin(a), math.cos(a) + (width / height) * math.sin(a))
        return cover * (1 + 0.02 * strength) + s * 0.3 * e, 0.0, 0.0, ang
    if move == "pulse":
        return 1 + s * 0.35 * (0.5 - 0.5 * math.cos(2 * math.pi * 2 * p)) + s * 0.2 * e, 0.0, 0.0, 0.0
    return 1.0, 0.0, 0.0, 0.0  # static


@dataclass
class CameraMoveClip:
    """A still + a camera move + a length: a clip that is rendered, never stored."""

    image: np.ndarray            # uint8 RGB (h, w, 3), any size; cover-fitted to the frame — or a still
                                 # on disk (``.shape`` + ``.load()``, e.g. keyimage.StillImage), loaded
                                 # only while frames are made, so a clip holds no pixels between renders
    move: str
    frame_count: int
    fps: float
    width: int
    height: int
    strength: float = 1.0
    framing: str = "cover"                   # or "contain": the whole image, bars in fill_rgb
    fill_rgb: tuple[int, int, int] = (0, 0, 0)
    _planes: tuple | None = field(default=None, repr=False)

    def __post_init__(self):
        if not isinstance(self.image, np.ndarray):
            if not (callable(getattr(self.image, "load", None)) and len(getattr(self.image, "shape", ())) == 3
                    and self.image.shape[2] == 3):
                raise ValueError("image must be uint8 RGB (h, w, 3) or a still with .shape and .load()")
        elif self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError("image must be uint8 RGB (h, w, 3)")
        h, w = self.image.shape[:2]
        if h < 2 or w < 2:
            raise AdReelInputError("images", f"a {w}×{h} px key image is too small for a camera move: "
                                             "at least 2×2 px")
        if self.frame_count < 1:
            raise ValueError("frame_count must be at least 1")
        s = require_finite(self.strength, "strength")
        if not 0 <= s <= MAX_STRENGTH:
            raise AdReelInputError("strength", f"{s:g} is not within 0..{MAX_STRENGTH:g}")
        camera_transform(self.move, 0.0, self.width, self.height)  # validates the move

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps

    def refit(self, frame_count: int, fps: float, width: int, height: int, framing: str | None = None,
              fill_rgb: tuple[int, int, int] | None = None) -> "CameraMoveClip":
        """The same still and move over another length, rate or frame size (the assembler's
        storyboard, an extra aspect); ``framing`` None keeps this clip's own framing and fill.
        The decoded planes of the still are shared: they do not depend on the frame."""
        if framing is None:
            framing, fill_rgb = self.framing, self.fill_rgb
        clip = CameraMoveClip(self.image, self.move, frame_count, fps, width, height, strength=self.strength,
                              framing=framing, fill_rgb=self.fill_rgb if fill_rgb is None else fill_rgb)
        clip._planes = self._planes
        return clip

    def _pixels(self) -> np.ndarray:
        return self.image if isinstance(self.image, np.ndarray) else self.image.load()

    def _yuv_planes(self):
        if self._planes is not None:
            return self._planes
        img = self._pixels()
        h, w = img.shape[:2]
        if h % 2 or w % 2:
            img = img[: h - h % 2, : w - w % 2]
        planes = rgb_to_yuv420(img)
        if isinstance(self.image, np.ndarray):  # a still on disk is decoded per pass, never kept
            self._planes = planes
        return planes

    def matrix(self, k: float) -> np.ndarray:
        """Inverse affine for frame ``k`` (may lie outside the clip: progress is clamped)."""
        p = k / max(1, self.frame_count - 1)
        transform = camera_transform(self.move, p, self.width, self.height, self.strength)
        h, w = self.image.shape[:2]
        return inverse_affine(transform, (self.width, self.height), (w - w % 2, h - h % 2),
                              contain=self.framing == "contain")

    def _border(self):
        if self.framing != "contain":
            return cv2.BORDER_REFLECT, (0, 0, 0)
        y, u, v = rgb_to_yuv420(np.full((2, 2, 3), self.fill_rgb, np.uint8))
        return cv2.BORDER_CONSTANT, (int(y[0, 0]), int(u[0, 0]), int(v[0, 0]))

    def yuv_frames(self, first: int, count: int) -> Iterator[np.ndarray]:
        """``count`` yuv420p frames from frame ``first`` on (one reused buffer)."""
        Y, U, V = self._yuv_planes()
        W, H = self.width, self.height
        out = np.empty(W * H * 3 // 2, np.uint8)
        oy = out[: W * H].reshape(H, W)
        ou = out[W * H: W * H * 5 // 4].reshape(H // 2, W // 2)
        ov = out[W * H * 5 // 4:].reshape(H // 2, W // 2)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        mode, (fy, fu, fv) = self._border()
        for k in range(first, first + count):
            M = self.matrix(k)
            cv2.warpAffine(Y, M, (W, H), dst=oy, flags=flags, borderMode=mode, borderValue=fy)
            Mc = M.copy()
            # chroma planes: half resolution, sample positions shifted by the 4:2:0 siting
            Mc[:, 2] = (M[:, 2] + M[:, 0] * 0.5 + M[:, 1] * 0.5 - 0.5) / 2
            cv2.warpAffine(U, Mc, (W // 2, H // 2), dst=ou, flags=flags, borderMode=mode, borderValue=fu)
            cv2.warpAffine(V, Mc, (W // 2, H // 2), dst=ov, flags=flags, borderMode=mode, borderValue=fv)
            yield out

    def rgb_frames(self, first: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
        """Plain RGB frames, for packs that want pixels rather than a stream."""
        img = self._pixels()
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        for k in range(first, first + (self.frame_count if count is None else count)):
            mode = cv2.BORDER_CONSTANT if self.framing == "contain" else cv2.BORDER_REFLECT
            yield cv2.warpAffine(img, self.matrix(k), (self.width, self.height), flags=flags,
                                 borderMode=mode, borderValue=tuple(int(c) for c in self.fill_rgb))


def _move_matrices(move: str, width: int, height: int, strength: float, steps: int = 33):
    """(output → source) affine of every sampled instant of ``move`` over a frame-sized image."""
    for p in np.linspace(0.0, 1.0, steps):
        yield inverse_affine(camera_transform(move, float(p), width, height, strength), (width, height),
                             (width, height))


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
