"""Frame sources other than camera moves: frame batches from video models and
video files from any pack or provider — fitted to a scene (length, fps,
framing) and streamed as yuv420p, never held whole.
"""
from __future__ import annotations

import os
import subprocess
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from .ffmpeg_tools import find_ffmpeg, probe
from .models import AdReelInputError
from .motion import cover_fit, pack_yuv420, rgb_to_yuv420

FIT_MODES = ("stretch", "native")


class FrameBatchClip:
    """N frames at ``source_fps`` → ``frame_count`` frames at ``fps``.

    Output frames between two source frames are linear blends of the two
    (motion-free interpolation), so 8 fps model output plays smoothly at 30.
    fit="stretch" retimes the batch to fill the scene; "native" keeps its speed
    and holds the last frame.
    """

    def __init__(self, get_frame: Callable[[int], np.ndarray], n_frames: int, source_fps: float,
                 frame_count: int, fps: float, width: int, height: int, fit: str = "stretch"):
        if n_frames < 1:
            raise AdReelInputError("images", "the frame batch is empty")
        if fit not in FIT_MODES:
            raise AdReelInputError("fit", f"{fit!r} is not one of {', '.join(FIT_MODES)}")
        if source_fps <= 0:
            raise AdReelInputError("source_fps", f"must be more than 0 (got {source_fps})")
        self.get_frame, self.n, self.source_fps = get_frame, n_frames, float(source_fps)
        self.frame_count, self.fps, self.width, self.height, self.fit = frame_count, fps, width, height, fit
        self._cache: dict[int, np.ndarray] = {}

    @classmethod
    def from_array(cls, frames: Sequence[np.ndarray], **kw) -> "FrameBatchClip":
        return cls(lambda i: frames[i], len(frames), **kw)

    def source_position(self, k: int) -> float:
        """Fractional source-frame index shown at output frame ``k``."""
        if self.fit == "stretch" and self.frame_count > 1:
            pos = k * (self.n - 1) / (self.frame_count - 1)
        else:
            pos = k / self.fps * self.source_fps
        return min(max(pos, 0.0), self.n - 1)

    def _fitted(self, i: int) -> np.ndarray:
        f = self._cache.get(i)
        if f is None:
            if len(self._cache) > 3:
                self._cache.pop(min(self._cache))
            src = np.ascontiguousarray(self.get_frame(i)[..., :3])
            f = self._cache[i] = np.ascontiguousarray(cover_fit(src, self.width, self.height))
        return f

    def rgb_frames(self, first: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
        for k in range(first, first + (self.frame_count if count is None else count)):
            pos = self.source_position(k)
            i = int(pos)
            a = pos - i
            if a < 1e-6 or i + 1 >= self.n:
                yield self._fitted(i)
            else:
                yield cv2.addWeighted(self._fitted(i), 1 - a, self._fitted(i + 1), a, 0)

    def yuv_frames(self, first: int, count: int) -> Iterator[np.ndarray]:
        out = np.empty(self.width * self.height * 3 // 2, np.uint8)
        for rgb in self.rgb_frames(first, count):
            yield pack_yuv420(rgb_to_yuv420(rgb), out)


class VideoFileSource:
    """A video file decoded by ffmpeg straight to yuv420p at the output size and fps.

    Plays at its own speed from its start; shorter files hold their last frame,
    frames before the start repeat the first (for transitions).
    """

    def __init__(self, path: str, frame_count: int, fps: float, width: int, height: int):
        if not os.path.isfile(path):
            raise AdReelInputError("clips", f"video file {path!r} does not exist")
        info = probe(path)
        if not any(s.get("codec_type") == "video" for s in info.get("streams", [])):
            raise AdReelInputError("clips", f"{os.path.basename(path)!r} has no video stream")
        self.path, self.frame_count, self.fps, self.width, self.height = path, frame_count, fps, width, height

    def _decoder(self) -> subprocess.Popen:
        W, H = self.width, self.height
        vf = (f"fps={self.fps},scale={W}:{H}:force_original_aspect_ratio=increase:flags=bicubic"
              f":out_color_matrix=bt709:out_range=tv,crop={W}:{H},format=yuv420p")
        return subprocess.Popen([find_ffmpeg(), "-v", "error", "-nostdin", "-i", self.path, "-an", "-vf", vf,
                                 "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def yuv_frames(self, first: int, count: int) -> Iterator[np.ndarray]:
        size = self.width * self.height * 3 // 2
        proc = self._decoder()

        def read():
            data = proc.stdout.read(size)
            return np.frombuffer(data, np.uint8) if len(data) == size else None

        try:
            cur, pos, ended = read(), 0, False
            if cur is None:
                raise AdReelInputError("clips", f"{os.path.basename(self.path)!r} decoded to no frames")
            for k in range(first, first + count):
                while pos < k and not ended:
                    nxt = read()
                    if nxt is None:
                        ended = True
                    else:
                        cur, pos = nxt, pos + 1
                yield cur
        finally:
            proc.kill()
            proc.wait()
