"""FFmpegAssemble's framing reaches every kind of clip: on an extra aspect, "contain" shows the whole
picture with bars in the brief's first colour, "cover" fills the frame — for a camera move, a model's
frame batch and a video file alike (measured on the encoded pixels)."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from media import frame_at
from nodes.engine.motion.clip_sources import VideoFileSource, refit
from nodes.engine.motion.frame_batch import BatchFit, FittedFrameBatch
from nodes.engine.models import Brief
from nodes.engine.motion.camera import CameraMoveClip
from nodes.engine.assembly.render import RenderOptions, render_ad
from nodes.engine.script import write_template_script
from nodes.engine.storyboard import build_storyboard

BRAND = (208, 32, 144)  # #D02090: far from the pictures' greens
W, H = 96, 160          # the main aspect, 9:16


def picture(w: int, h: int, shift: int = 0) -> np.ndarray:
    """A green picture with some texture (never the brand colour)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 1] = 150 + ((x + y + shift) % 40)
    img[..., 2] = 40
    return img


def storyboard():
    b = Brief(brand="Acme", product="X", cta="Buy", duration_seconds=6.0, aspect_ratio="9:16",
              brand_colors=["#D02090", "#FFFFFF"])
    sb = build_storyboard(b, write_template_script(b, 1), fps=24, resolution="720p")
    # three scenes of 2 s (48 frames each), no text, cut
    scenes = [sb.scenes[0].model_copy(update={"index": i, "on_screen_text": "", "transition": "cut", "camera": "static",
                                              "start": 2.0 * i, "duration": 2.0, "start_frame": 48 * i,
                                              "frame_count": 48})
              for i in range(3)]
    return sb.model_copy(update={"width": W, "height": H, "scenes": scenes, "total_frames": 144,
                                 "total_duration": 6.0})


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    """A 9:16 video file, as a provider or LoadVideo gives one."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    raw = np.stack([picture(W, H, k) for k in range(48)]).tobytes()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
                    "-r", "24", "-i", "pipe:0", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
                   input=raw, check=True)
    return str(path)


def clips(sb, video_file):
    a, b, c = sb.scenes
    frames = [picture(W, H, k) for k in range(6)]
    return [CameraMoveClip(picture(W, H), "static", a.frame_count, sb.fps, W, H),
            FittedFrameBatch(lambda i: frames[i], len(frames), 8.0, b.frame_count, sb.fps, W, H,
                             BatchFit(interpolation="blend")),
            VideoFileSource(video_file, c.frame_count, sb.fps, W, H)]


def render(tmp_path, video_file, framing):
    sb = storyboard()
    opts = RenderOptions(extra_aspects=("16:9",), framing=framing, subtitles="off", end_card_seconds=0.0,
                         logo_size=0.0, thumbnail=False)
    res = render_ad(sb, clips(sb, video_file), str(tmp_path / "ad.mp4"), str(tmp_path / "work"), opts)
    return res.aspects["16:9"]["mp4"]


def side_bars(frame: np.ndarray) -> np.ndarray:
    """Mean colour of the outer eighth of columns, both sides, away from the top and bottom rows."""
    h, w = frame.shape[:2]
    cols = np.concatenate([frame[h // 8: -h // 8, : w // 8], frame[h // 8: -h // 8, -(w // 8):]], axis=1)
    return cols.reshape(-1, 3).mean(axis=0)


@pytest.mark.parametrize("framing", ["contain", "cover"])
def test_framing_reaches_camera_moves_frame_batches_and_video_files(tmp_path, video_file, framing):
    path = render(tmp_path, video_file, framing)
    w, h = 284, 160
    for name, t in (("camera move", 1.0), ("frame batch", 3.0), ("video file", 5.0)):
        f = frame_at(path, t, w, h)
        bars = side_bars(f)
        middle = f[h // 4: -h // 4, w // 2 - 10: w // 2 + 10].reshape(-1, 3).mean(axis=0)
        assert middle[1] > 140 and middle[0] < 40, (name, framing, middle)  # the picture, in the middle
        if framing == "contain":
            assert np.abs(bars - BRAND).max() < 12, (name, bars)
        else:
            assert bars[1] > 140 and bars[0] < 40, (name, bars)  # the picture reaches the edges


def test_refit_keeps_a_clips_own_framing_unless_told(video_file):
    sb = storyboard()
    sc = sb.scenes[0]
    wide = sb.model_copy(update={"width": 284, "height": 160})
    for clip in clips(sb, video_file):
        again = refit(clip, sc, wide)
        assert (again.width, again.height, again.frame_count, again.framing) == (284, 160, sc.frame_count, "cover")
        assert refit(clip, sc, wide, "contain").framing == "contain"
        assert clip.framing == "cover" and (clip.width, clip.height) == (W, H)  # the recipe itself is unchanged
