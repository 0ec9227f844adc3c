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

from . import limits
from .ffmpeg_tools import find_ffmpeg, open_media
from .models import AdReelInputError
from .frame_batch import FIT_MODES, FrameBatchClip  # noqa: F401  (frame batches are fitted there)

class VideoFileSource:
    """A video file decoded by ffmpeg straight to yuv420p at the output size and fps.

    Plays at its own speed from its start; shorter files hold their last frame,
    frames before the start repeat the first (for transitions).
    """

    def __init__(self, path: str, frame_count: int, fps: float, width: int, height: int, field: str = "clips"):
        if not os.path.isfile(path):
            raise AdReelInputError(field, f"video file {os.path.basename(path)!r} does not exist")
        # probed first: only a known video container with a video stream (an HLS playlist named
        # .mp4 that lists a private file is refused), and decoded with that demuxer only
        self.media = open_media(path, field, "video")
        self.field = field
        self.path, self.frame_count, self.fps, self.width, self.height = path, frame_count, fps, width, height

    def _decoder(self, seconds: float) -> subprocess.Popen:
        W, H = self.width, self.height
        vf = (f"fps={self.fps},scale={W}:{H}:force_original_aspect_ratio=increase:flags=bicubic"
              f":out_color_matrix=bt709:out_range=tv,crop={W}:{H},format=yuv420p")
        return subprocess.Popen([find_ffmpeg(), "-v", "error", "-nostdin", *self.media.args(seconds),
                                 "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", vf,
                                 "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def yuv_frames(self, first: int, count: int) -> Iterator[np.ndarray]:
        size = self.width * self.height * 3 // 2
        # decode only what the scene can show (it plays from its start), never past the server's cap
        seconds = min(max(1, first + count) / self.fps + 1.0, limits.MAX_MEDIA_SECONDS.read())
        proc = self._decoder(seconds)

        def read():
            data = proc.stdout.read(size)
            return np.frombuffer(data, np.uint8) if len(data) == size else None

        try:
            cur, pos, ended = read(), 0, False
            if cur is None:
                raise AdReelInputError(self.field, f"{os.path.basename(self.path)!r} decoded to no frames")
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
