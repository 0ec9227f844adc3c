"""Frames as arrays: RGB ↔ limited-range BT.709 YUV 4:2:0, cover and contain fits, easing, and the affine
that maps output pixels to a source picture. Plain numpy/OpenCV shared by the stages that make frames
(motion, frame batches, video files, the assembler's cards and transitions); no stage logic.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..models import AdReelInputError

FRAMINGS = ("cover", "contain")

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


def inverse_affine(transform: tuple[float, float, float, float], size: tuple[int, int], source: tuple[int, int],
                   contain: bool = False) -> np.ndarray:
    """Matrix mapping output pixel centres (a ``size`` frame) → coordinates in a ``source``-sized image, for
    ``transform`` = (zoom, dx, dy, angle in degrees), as ``camera_transform`` gives it."""
    zoom, dx, dy, angle_deg = transform
    width, height = size
    src_w, src_h = source
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


def contain_fit(rgb: np.ndarray, width: int, height: int,
                fill_rgb: tuple[int, int, int] | None = None) -> np.ndarray:
    """The whole frame, scaled to fit inside ``width``×``height``, over a blurred, dimmed cover-fit
    of itself (or over bars of ``fill_rgb``)."""
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb
    k = min(width / w, height / h)
    fw, fh = max(1, min(width, round(w * k))), max(1, min(height, round(h * k)))
    fg = cv2.resize(rgb, (fw, fh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
    if fill_rgb is not None:
        out = np.empty((height, width, 3), np.uint8)
        out[:] = fill_rgb
    else:
        small = cover_fit(rgb, max(2, width // 16), max(2, height // 16))
        small = cv2.GaussianBlur(np.ascontiguousarray(small), (0, 0), 2.0)
        out = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        cv2.convertScaleAbs(out, out, alpha=0.55)
    x, y = (width - fw) // 2, (height - fh) // 2
    out[y:y + fh, x:x + fw] = fg
    return out


def check_framing(framing: str) -> str:
    """``framing`` itself, or the specific error a user reads for any other value."""
    if framing not in FRAMINGS:
        raise AdReelInputError("framing", f"is not one of {', '.join(FRAMINGS)}")
    return framing


def frame_to(rgb: np.ndarray, width: int, height: int, framing: str = "cover",
             fill_rgb: tuple[int, int, int] | None = None) -> np.ndarray:
    if check_framing(framing) == "cover":
        return np.ascontiguousarray(cover_fit(rgb, width, height))
    return contain_fit(rgb, width, height, fill_rgb)
