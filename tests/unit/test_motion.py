"""Camera moves: covered frames, eased and sub-pixel smooth; frame batches fitted to scenes."""
import numpy as np
import pytest

from nodes.engine.motion.frame_batch import BatchFit, FrameBatchClip
from nodes.engine.models import CAMERA_MOVES
from nodes.engine.media.frames import ease_in_out, pack_yuv420, rgb_to_yuv420, yuv420_to_rgb
from nodes.engine.motion.camera import CameraMoveClip

W, H = 108, 192


def test_ease_starts_and_ends_at_rest():
    assert ease_in_out(0) == 0 and ease_in_out(1) == 1
    assert ease_in_out(0.01) < 0.001 and ease_in_out(0.99) > 0.999


@pytest.mark.parametrize("move", CAMERA_MOVES)
def test_frame_always_covered(move):
    """The four output corners map inside the source for the whole move: no borders."""
    img = np.zeros((H, W, 3), np.uint8)
    clip = CameraMoveClip(img, move, 90, 30, W, H, strength=1.5)
    for k in range(0, 90, 3):
        M = clip.matrix(k)
        for x, y in [(0, 0), (W - 1, 0), (0, H - 1), (W - 1, H - 1)]:
            sx, sy = M @ np.array([x, y, 1.0])
            assert -0.51 <= sx <= W - 0.49 and -0.51 <= sy <= H - 0.49, (move, k, sx, sy)


@pytest.mark.parametrize("move", ["zoom_in", "pan_left", "drift", "rotate"])
def test_moves_are_subpixel_smooth(move):
    """Where a point lands changes smoothly frame to frame: fractional steps, no jumps."""
    clip = CameraMoveClip(np.zeros((1920, 1080, 3), np.uint8), move, 150, 30, 1080, 1920)
    pts = np.array([clip.matrix(k) @ np.array([100.0, 300.0, 1.0]) for k in range(150)])
    steps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    assert steps.max() < 4.0                       # slow, steady move
    assert np.abs(np.diff(steps)).max() < 0.2      # speed changes gently (eased)
    frac = np.abs(pts - np.round(pts))[10:-10]
    assert (frac > 0.05).mean() > 0.5              # positions are sub-pixel, not snapped to integers


def test_rendered_pan_moves_content_by_fractions_of_a_pixel():
    """Where the eased pan is slow, consecutive frames differ by less than a 1-px shift would."""
    import cv2
    rng = np.random.default_rng(0)
    small = (rng.random((48, 27, 3)) * 255).astype(np.uint8)
    img = np.ascontiguousarray(cv2.resize(small, (1080, 1920), interpolation=cv2.INTER_CUBIC))
    clip = CameraMoveClip(img, "pan_left", 60, 30, 1080, 1920)
    xs = np.array([(clip.matrix(k) @ np.array([540.0, 960.0, 1.0]))[0] for k in range(60)])
    k = next(i for i in range(59) if 0.2 < abs(xs[i + 1] - xs[i]) < 0.6)
    y = [f[:1080 * 1920].reshape(1920, 1080).astype(np.int16).copy() for f in clip.yuv_frames(k, 2)]
    d_step = np.abs(y[1] - y[0])[:, 4:-4].mean()
    d_onepx = np.abs(y[0][:, 5:-3] - y[0][:, 4:-4]).mean()
    assert 0 < d_step < 0.8 * d_onepx


def test_yuv_round_trip_keeps_colours():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:] = (30, 58, 138)
    back = yuv420_to_rgb(pack_yuv420(rgb_to_yuv420(rgb)), 6, 4)
    assert np.abs(back.astype(int) - rgb).max() <= 2


def test_frame_batch_interpolates_between_neighbours():
    frames = [np.full((H, W, 3), v, np.uint8) for v in (0, 80, 160, 240)]  # 4 frames at 8 fps
    clip = FrameBatchClip.from_array(frames, source_fps=8, frame_count=15, fps=30, width=W, height=H,
                                     how=BatchFit(fit="native", interpolation="blend"))
    out = [f.mean() for f in clip.rgb_frames()]
    assert out[0] == 0 and out[-1] == 240
    # 30/8: output frame 2 sits between source 0 and 1 at 0.533
    assert 0 < out[2] < 80 and out[2] == pytest.approx(80 * 2 * 8 / 30, abs=1)
    assert all(b >= a for a, b in zip(out, out[1:]))


def test_frame_batch_stretch_fills_the_scene():
    frames = [np.full((H, W, 3), v, np.uint8) for v in (0, 100, 200)]
    clip = FrameBatchClip.from_array(frames, source_fps=8, frame_count=61, fps=30, width=W, height=H,
                                     how=BatchFit(fit="stretch", interpolation="blend"))
    out = [f.mean() for f in clip.rgb_frames()]
    assert out[0] == 0 and out[30] == 100 and out[60] == 200
