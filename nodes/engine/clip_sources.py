"""Frame sources other than camera moves: video files from any pack or provider,
decoded to the scene's size and fps and streamed as yuv420p, never held whole.
(Frame batches from video models are fitted in frame_batch.)
"""
from __future__ import annotations

import os
import subprocess
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from .ffmpeg_tools import find_ffmpeg, probe
from .models import AdReelInputError
from .frame_batch import FIT_MODES, FrameBatchClip  # noqa: F401  (frame batches are fitted there)

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
