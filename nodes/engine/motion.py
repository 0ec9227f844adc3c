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

from .limits import require_finite
from .models import CAMERA_MOVES, AdReelInputError

MAX_STRENGTH = 3.0

cv2.setNumThreads(1)  # the encoder owns the cores; one warp per frame is ~3 ms

# BT.709, limited range ("tv"): what the encoder tags the output as.
_KR, _KB = 0.2126, 0.0722
_KG = 1 - _KR - _KB


# RGB → limited-range Y'CbCr as one 3x4 matrix (cv2.transform: fast, rounded, saturated)
_RGB2YUV = np.array([
    [_KR * 219 / 255, _KG * 219 / 255, _KB * 219 / 255, 16.0],
    [-_KR / (2 * (1 - _KB)) * 224 / 255, -_KG / (2 * (1 - _KB)) * 224 / 255, 0.5 * 224 / 255, 128.0],
    [0.5 * 224 / 255, -_KG / (2 * (1 - _KR)) * 224 / 255, -_KB / (2 * (1 - _KR)) * 224 / 255, 128.0],
], dtype=np.float32)


def rgb_to_yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 RGB (H, W, 3), even sides → BT.709 limited-range Y, U, V planes."""
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"frame size {w}x{h} must be even")
    yuv = cv2.transform(np.ascontiguousarray(rgb), _RGB2YUV)
    Y = np.ascontiguousarray(yuv[..., 0])
    U = cv2.resize(yuv[..., 1], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    V = cv2.resize(yuv[..., 2], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return Y, U, V


def pack_yuv420(planes, out: np.ndarray | None = None) -> np.ndarray:
    """Y, U, V planes → one planar yuv420p frame buffer."""
    Y, U, V = planes
    n = Y.size
    if out is None:
        out = np.empty(n * 3 // 2, np.uint8)
    out[:n] = Y.reshape(-1)
    out[n:n + U.size] = U.reshape(-1)
    out[n + U.size:] = V.reshape(-1)
    return out


def cover_crop(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """The centred part of ``rgb`` with the aspect of ``width``×``height`` (what a cover fit shows).

    Cropping before scaling keeps every resize at most the output size, whatever the source's
    aspect: a 1×100000 px frame is cropped to 1×2, never scaled to 1080×108000000."""
    h, w = rgb.shape[:2]
    if w * height > h * width:      # wider than the frame: keep the middle columns
        cw = max(1, min(w, round(h * width / height)))
        x = (w - cw) // 2
        return rgb[:, x:x + cw]
    ch = max(1, min(h, round(w * height / width)))
    y = (h - ch) // 2
    return rgb[y:y + ch, :]


def cover_fit(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover ``width``×``height`` and centre-crop (no borders, no distortion)."""
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb
    crop = np.ascontiguousarray(cover_crop(rgb, width, height))
    ch, cw = crop.shape[:2]
    if (cw, ch) == (width, height):
        return crop
    interp = cv2.INTER_AREA if cw >= width and ch >= height else cv2.INTER_CUBIC
    return cv2.resize(crop, (width, height), interpolation=interp)


def yuv420_to_rgb(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """A planar yuv420p frame (bytes-shaped array) → uint8 RGB, BT.709 limited."""
    flat = frame.reshape(-1)
    ysz, csz = width * height, (width // 2) * (height // 2)
    Y = flat[:ysz].reshape(height, width).astype(np.float32)
    U = flat[ysz:ysz + csz].reshape(height // 2, width // 2).astype(np.float32)
    V = flat[ysz + csz:ysz + 2 * csz].reshape(height // 2, width // 2).astype(np.float32)
    U = cv2.resize(U, (width, height), interpolation=cv2.INTER_LINEAR) - 128
    V = cv2.resize(V, (width, height), interpolation=cv2.INTER_LINEAR) - 128
    y = (Y - 16) * (255 / 219)
    u = U * (255 / 224)
    v = V * (255 / 224)
    r = y + 2 * (1 - _KR) * v
    b = y + 2 * (1 - _KB) * u
    g = (y - _KR * r - _KB * b) / _KG
    return np.clip(np.stack([r, g, b], axis=-1) + 0.5, 0, 255).astype(np.uint8)


def ease_in_out(p: float) -> float:
    """Cubic ease-in-out on [0, 1]: starts and ends at rest, no jumps in speed."""
    p = min(1.0, max(0.0, p))
    return 4 * p ** 3 if p < 0.5 else 1 - (-2 * p + 2) ** 3 / 2


def camera_transform(move: str, p: float, width: int, height: int, strength: float = 1.0) -> tuple[float, float, float, float]:
    """(zoom, offset_x, offset_y, angle_deg) of the virtual camera at progress ``p``.

    zoom ≥ the value that keeps the frame covered, so no border ever shows.
    Offsets are in output pixels, relative to the centred crop.
    """
    if move not in CAMERA_MOVES:
        raise AdReelInputError("camera", f"{move!r} is not one of {', '.join(CAMERA_MOVES)}")
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


def inverse_affine(zoom, dx, dy, angle_deg, width, height, src_w, src_h, contain=False) -> np.ndarray:
    """Matrix mapping output pixel centres → source coordinates."""
    # cover-fit the source into the frame (or contain it, with bars)
    cover = min(width / src_w, height / src_h) if contain else max(width / src_w, height / src_h)
    k = 1.0 / (zoom * cover)
    a = math.radians(angle_deg)
    ca, sa = math.cos(a) * k, math.sin(a) * k
    # out (x, y) → centred → rotate/scale → source centre + shift
    cx, cy = (width - 1) / 2 + dx, (height - 1) / 2 + dy
    sx, sy = (src_w - 1) / 2, (src_h - 1) / 2
    return np.array([[ca, -sa, sx - ca * cx + sa * cy],
                     [sa, ca, sy - sa * cx - ca * cy]], dtype=np.float64)


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
        z, dx, dy, ang = camera_transform(self.move, p, self.width, self.height, self.strength)
        h, w = self.image.shape[:2]
        return inverse_affine(z, dx, dy, ang, self.width, self.height, w - w % 2, h - h % 2,
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
