"""The assembly stage: storyboard + one frame source per scene → the finished ad,
in ONE ffmpeg encode.

Frames are produced here (camera moves, decoded clips, transitions) as raw
yuv420p and streamed through a pipe into ffmpeg, which overlays the on-screen
text cards (rendered to PNG by text_render: text never enters filter syntax),
adds the audio and encodes once. Memory holds a few frames, whatever the length.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

import cv2
import numpy as np

from .ffmpeg_tools import find_ffmpeg
from .layout import frame_layout
from .models import AdReelInputError, OutputFile, Storyboard
from .text_render import hex_rgb, render_text_card

TRANSITION_SECONDS = {"cut": 0.0, "fade": 0.5, "crossfade": 0.5}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower")
ENTRANCE_SECONDS = 0.45


class FrameSource(Protocol):
    """Anything that yields yuv420p frames of the output size for a scene.

    ``first`` may be negative or run past the scene: sources extend their first
    and last frames (camera moves simply continue) so transitions can overlap.
    """

    def yuv_frames(self, first: int, count: int) -> Iterator[np.ndarray]: ...


@dataclass
class EncodeSettings:
    preset: str = "medium"
    crf: int = 20
    audio_bitrate: str = "192k"

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise AdReelInputError("preset", f"{self.preset!r} is not one of {', '.join(PRESETS)}")
        if not 0 <= int(self.crf) <= 51:
            raise AdReelInputError("crf", f"{self.crf} is not within 0..51")

    def video_args(self) -> list[str]:
        # 8x8dct is on in every preset but ultrafast; keeping it on keeps the stream High profile
        return ["-c:v", "libx264", "-preset", self.preset, "-crf", str(int(self.crf)), "-profile:v", "high",
                "-x264-params", "8x8dct=1",
                "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709",
                "-color_trc", "bt709", "-color_range", "tv"]


@dataclass
class TextOverlay:
    path: str
    x: int
    y: int
    start: float
    end: float


@dataclass
class AssembleResult:
    path: str
    width: int
    height: int
    fps: int
    frames: int
    duration: float
    seconds: float
    overlays: list[TextOverlay] = field(default_factory=list)


def transition_half_widths(sb: Storyboard) -> list[int]:
    """Half-width in frames of the transition INTO scene j+1, for each boundary j.

    A transition is centred on the boundary, so scene times stay where the
    storyboard put them and the total length never changes.
    """
    out = []
    for a, b in zip(sb.scenes, sb.scenes[1:]):
        h = round(TRANSITION_SECONDS.get(b.transition, 0.0) * sb.fps / 2)
        out.append(max(0, min(h, a.frame_count // 3, b.frame_count // 3)))
    return out


def frame_stream(sb: Storyboard, sources: list[FrameSource]) -> Iterator[np.ndarray]:
    """Exactly ``sb.total_frames`` yuv420p frames: scenes in order, transitions blended."""
    if len(sources) != len(sb.scenes):
        raise AdReelInputError("clips", f"{len(sources)} clips for {len(sb.scenes)} storyboard scenes")
    hw = transition_half_widths(sb)
    n = len(sb.scenes)
    fsize = sb.width * sb.height * 3 // 2
    black = np.empty(fsize, np.uint8)
    black[: sb.width * sb.height] = 16
    black[sb.width * sb.height:] = 128
    out = np.empty(fsize, np.uint8)

    def window(j):
        lead = hw[j - 1] if j > 0 else 0
        tail = hw[j] if j < n - 1 else 0
        return iter(sources[j].yuv_frames(-lead, sb.scenes[j].frame_count + lead + tail))

    it = window(0)
    for j, sc in enumerate(sb.scenes):
        lead = hw[j - 1] if j > 0 else 0
        tail = hw[j] if j < n - 1 else 0
        for _ in range(sc.frame_count - lead - tail):
            yield next(it)
        if j == n - 1:
            break
        nxt = window(j + 1)
        span = 2 * tail
        kind = sb.scenes[j + 1].transition
        for m in range(span):
            a, b = next(it), next(nxt)
            alpha = (m + 0.5) / span
            if kind == "fade":
                if alpha < 0.5:
                    cv2.addWeighted(a, 1 - 2 * alpha, black, 2 * alpha, 0, dst=out)
                else:
                    cv2.addWeighted(black, 2 - 2 * alpha, b, 2 * alpha - 1, 0, dst=out)
            else:
                cv2.addWeighted(a, 1 - alpha, b, alpha, 0, dst=out)
            yield out
        it = nxt


def render_text_overlays(sb: Storyboard, work_dir: str, font: str | None = None) -> list[TextOverlay]:
    """One PNG card per scene with on-screen text, placed in the headline zone."""
    lay = frame_layout(sb.width, sb.height)
    box = lay.headline
    overlays = []
    for sc in sb.scenes:
        text = sc.on_screen_text.strip()
        if not text:
            continue
        pal = sc.palette or sb.brief.brand_colors
        card = render_text_card(text, box.w, lay.font_px, box_rgb=hex_rgb(pal[0]),
                                accent_rgb=hex_rgb(pal[1 % len(pal)]), font=font,
                                field=f"scenes[{sc.index}].on_screen_text", max_lines=3)
        path = os.path.join(work_dir, f"text_{sc.index:03d}.png")
        card.save(path, compress_level=1)
        x = box.x + (box.w - card.width) // 2
        y = box.y + max(0, (box.h - card.height) // 2)
        start = sc.start_frame / sb.fps
        overlays.append(TextOverlay(path, x, y, start, (sc.start_frame + sc.frame_count) / sb.fps))
    return overlays


def filter_graph(overlays: list[TextOverlay], slide_px: int) -> tuple[str, str]:
    """The filter_complex script (numbers only, no user text) and its output label."""
    parts, last = [], "0:v"
    for i, ov in enumerate(overlays, start=1):
        s, e = f"{ov.start:.4f}", f"{ov.end:.4f}"
        parts.append(f"[{i}:v]format=rgba,scale=out_color_matrix=bt709:out_range=tv,format=yuva420p[t{i}]")
        y = f"{ov.y}+{slide_px}*pow(max(0\\,1-(t-{s})/{ENTRANCE_SECONDS})\\,3)"
        parts.append(f"[{last}][t{i}]overlay=x={ov.x}:y='{y}':enable='between(t\\,{s}\\,{e})'"
                     f":format=yuv420:eof_action=repeat[v{i}]")
        last = f"v{i}"
    parts.append(f"[{last}]format=yuv420p[vout]")
    return ";\n".join(parts), "vout"


def assemble(sb: Storyboard, sources: list[FrameSource], out_path: str, work_dir: str,
             encode: EncodeSettings | None = None, font: str | None = None,
             progress: Callable[[int, int], None] | None = None,
             cancelled: Callable[[], bool] | None = None) -> AssembleResult:
    """Render the ad to ``out_path`` (MP4) in one encode; returns what was made."""
    encode = encode or EncodeSettings()
    ffmpeg = find_ffmpeg()
    os.makedirs(work_dir, exist_ok=True)
    t0 = time.monotonic()
    overlays = render_text_overlays(sb, work_dir, font)
    graph, vout = filter_graph(overlays, slide_px=max(20, sb.height // 24))
    graph_path = os.path.join(work_dir, "graph.txt")
    with open(graph_path, "w", encoding="utf-8") as f:
        f.write(graph)
    tmp_out = out_path + ".part.mp4"
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
           "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{sb.width}x{sb.height}",
           "-framerate", str(sb.fps), "-i", "pipe:0"]
    for ov in overlays:
        cmd += ["-i", ov.path]
    audio_index = len(overlays) + 1
    cmd += ["-f", "lavfi", "-t", f"{sb.total_duration:.6f}", "-i", "anullsrc=r=48000:cl=stereo"]
    cmd += ["-filter_complex_script", graph_path, "-map", f"[{vout}]", "-map", f"{audio_index}:a"]
    cmd += encode.video_args() + ["-r", str(sb.fps), "-frames:v", str(sb.total_frames),
                                  "-c:a", "aac", "-b:a", encode.audio_bitrate, "-ar", "48000", "-ac", "2",
                                  "-movflags", "+faststart", "-f", "mp4", tmp_out]
    log_path = os.path.join(work_dir, "ffmpeg.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
    _widen_pipe(proc.stdin)
    done = 0
    try:
        # ffmpeg's input thread queues packets, so writing straight into the pipe
        # keeps the encoder fed without another copy of each frame
        for frame in frame_stream(sb, sources):
            if cancelled and cancelled():
                raise InterruptedError("assembly cancelled")
            try:
                proc.stdin.write(frame.data)
            except BrokenPipeError:
                break
            done += 1
            if progress and (done % 15 == 0 or done == sb.total_frames):
                progress(done, sb.total_frames)
        proc.stdin.close()
    except BaseException:
        proc.kill()
        proc.wait()
        _remove(tmp_out)
        raise
    rc = proc.wait()
    if rc != 0 or done != sb.total_frames:
        _remove(tmp_out)
        with open(log_path, "r", encoding="utf-8", errors="replace") as f:
            tail = f.read()[-1500:]
        raise RuntimeError(f"ffmpeg failed (exit {rc}) after {done}/{sb.total_frames} frames: {tail.strip()}")
    os.replace(tmp_out, out_path)
    return AssembleResult(out_path, sb.width, sb.height, sb.fps, sb.total_frames, sb.total_duration,
                          time.monotonic() - t0, overlays)


def _widen_pipe(pipe) -> None:
    """Ask Linux for a 1 MiB pipe (default 64 KiB): fewer wake-ups per frame."""
    try:
        import fcntl
        fcntl.fcntl(pipe.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
    except (ImportError, OSError, ValueError):
        pass


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def describe_file(kind: str, path: str) -> OutputFile:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return OutputFile(kind=kind, path=path, bytes=os.path.getsize(path), sha256=h.hexdigest())


def write_clip(source: FrameSource, frame_count: int, width: int, height: int, fps: float, out_path: str,
               encode: EncodeSettings | None = None) -> None:
    """Encode one clip on its own (for packs that ask a lazy clip to save itself)."""
    encode = encode or EncodeSettings()
    cmd = [find_ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-f", "rawvideo",
           "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-framerate", str(fps), "-i", "pipe:0",
           *encode.video_args(), "-movflags", "+faststart", "-f", "mp4", out_path]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for frame in source.yuv_frames(0, frame_count):
            proc.stdin.write(frame.data)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg could not write the clip: {err.strip()[-800:]}")
