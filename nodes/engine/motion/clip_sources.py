"""Frame sources other than camera moves: video files from any pack or provider,
decoded to the scene's size and fps and streamed as yuv420p, never held whole.
(Frame batches from video models are fitted in frame_batch.)

``refit`` is the one place a scene's clip — a camera move, a frame batch or a
video file — is fitted to the storyboard the assembler renders (its length after
the narration, its fps, an extra aspect's size and framing).
"""
from __future__ import annotations

import copy
import os
import subprocess
from typing import Iterator

import numpy as np

from .. import limits
from ..media.ffmpeg import find_ffmpeg, open_media
from ..models import AdReelInputError
from ..media.frames import check_framing
from ..media.text import hex_rgb


def refit(clip, scene, sb, framing: str | None = None):
    """``clip`` (CameraMoveClip, FittedFrameBatch or VideoFileSource) fitted to ``scene`` of storyboard
    ``sb``: its frame count, the storyboard's fps and size. ``framing`` ("cover" or "contain", bars in the
    brief's first colour) replaces the clip's own; None keeps it."""
    if framing is not None:
        check_framing(framing)
    fill = hex_rgb(sb.brief.brand_colors[0]) if framing is not None else None
    return clip.refit(scene.frame_count, sb.fps, sb.width, sb.height, framing=framing, fill_rgb=fill)

class VideoFileSource:
    """A video file decoded by ffmpeg straight to yuv420p at the output size and fps.

    Plays at its own speed from its start; shorter files hold their last frame,
    frames before the start repeat the first (for transitions). Framing: cover
    (fill, crop the overflow) or contain (the whole picture, bars of ``fill_rgb``).
    """

    def __init__(self, path: str, frame_count: int, fps: float, width: int, height: int, field: str = "clips",
                 framing: str = "cover", fill_rgb: tuple[int, int, int] = (0, 0, 0)):
        if not os.path.isfile(path):
            raise AdReelInputError(field, "names a video file that does not exist")
        check_framing(framing)
        # probed first: only a known video container with a video stream (an HLS playlist named
        # .mp4 that lists a private file is refused), and decoded with that demuxer only
        self.media = open_media(path, field, "video")
        self.field = field
        self.path, self.frame_count, self.fps, self.width, self.height = path, frame_count, fps, width, height
        self.framing, self.fill_rgb = framing, tuple(int(c) for c in fill_rgb)

    def refit(self, frame_count: int, fps: float, width: int, height: int, framing: str | None = None,
              fill_rgb: tuple[int, int, int] | None = None) -> "VideoFileSource":
        """The same (already probed) file for another length, rate or frame size; ``framing`` None keeps
        this source's own."""
        if framing is None:
            framing, fill_rgb = self.framing, self.fill_rgb
        check_framing(framing)
        clip = copy.copy(self)
        clip.frame_count, clip.fps, clip.width, clip.height = frame_count, fps, width, height
        clip.framing, clip.fill_rgb = framing, tuple(int(c) for c in (fill_rgb or (0, 0, 0)))
        return clip

    def _filter(self) -> str:
        W, H = self.width, self.height
        if self.framing == "contain":  # bars padded in RGB, so their colour is exact after the BT.709 conversion
            r, g, b = self.fill_rgb
            return (f"fps={self.fps},scale={W}:{H}:force_original_aspect_ratio=decrease:force_divisible_by=2"
                    f":flags=bicubic,format=rgb24,pad={W}:{H}:(ow-iw)/2:(oh-ih)/2:color=0x{r:02X}{g:02X}{b:02X},"
                    "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p")
        return (f"fps={self.fps},scale={W}:{H}:force_original_aspect_ratio=increase:flags=bicubic"
                f":out_color_matrix=bt709:out_range=tv,crop={W}:{H},format=yuv420p")

    def _decoder(self, seconds: float) -> subprocess.Popen:
        vf = self._filter()
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
                raise AdReelInputError(self.field, "the video file decoded to no frames")
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
