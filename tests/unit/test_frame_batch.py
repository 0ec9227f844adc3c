"""A video model's frame batch fitted to a scene: fps by interpolation, length, framing, streaming."""
import numpy as np
import pytest

from nodes.engine.motion.frame_batch import BatchFit, FittedFrameBatch
from nodes.engine.media.frames import contain_fit
from nodes.engine.models import AdReelInputError

W, H = 160, 90          # 16:9 source and output: framing is a plain 1:1 copy
SQ = 20                 # the moving square's side


def square_frame(x: float, w: int = W, h: int = H) -> np.ndarray:
    f = np.full((h, w, 3), 30, np.uint8)
    f[35:35 + SQ, int(x):int(x) + SQ] = 230
    return f


def centroid_x(f: np.ndarray) -> float:
    ys, xs = np.nonzero(f[..., 0] > 130)
    return float(xs.mean())


def batch(n=8, step=8, x0=10):
    return [square_frame(x0 + step * i) for i in range(n)]


def test_motion_interpolation_moves_the_square_between_its_neighbours():
    src = batch()
    fb = FittedFrameBatch(lambda i: src[i], len(src), source_fps=8, frame_count=26, fps=30, width=W, height=H,
                          how=BatchFit(fit="native", interpolation="motion"))
    for k in range(26):
        pos = fb.source_position(k)
        f = fb.frame(k)
        cx = centroid_x(f)
        i = int(pos)
        lo, hi = centroid_x(src[i]), centroid_x(src[min(i + 1, len(src) - 1)])
        assert lo - 0.01 <= cx <= hi + 0.01, (k, pos, cx, lo, hi)
        assert cx == pytest.approx(lo + (hi - lo) * (pos - i), abs=1.0), (k, pos)
        # one sharp square, not two half-bright ones: motion, not a cross-fade
        assert abs(int((f[..., 0] > 130).sum()) - SQ * SQ) <= SQ, k
        assert f[..., 0].max() >= 220


def test_blend_interpolation_lies_between_its_neighbours_pixelwise():
    src = batch()
    fb = FittedFrameBatch(lambda i: src[i], len(src), source_fps=8, frame_count=26, fps=30, width=W, height=H,
                          how=BatchFit(fit="native", interpolation="blend"))
    for k in range(26):
        pos = fb.source_position(k)
        i = int(pos)
        a, b = src[i].astype(int), src[min(i + 1, len(src) - 1)].astype(int)
        f = fb.frame(k).astype(int)
        assert (f >= np.minimum(a, b) - 1).all() and (f <= np.maximum(a, b) + 1).all(), k


def test_nearest_repeats_source_frames():
    src = batch(4)
    fb = FittedFrameBatch(lambda i: src[i], 4, source_fps=8, frame_count=15, fps=30, width=W, height=H,
                          how=BatchFit(fit="native", interpolation="nearest"))
    for k in range(15):
        assert any(np.array_equal(fb.frame(k), s) for s in src)


@pytest.mark.parametrize("fit,frame_count,last_pos", [("stretch", 60, 7.0), ("native", 60, 7.0), ("native", 15, 14 * 8 / 30)])
def test_fit_sets_the_length(fit, frame_count, last_pos):
    """stretch spreads 8 frames over the scene; native plays them at 8 fps and holds the last."""
    src = batch()
    fb = FittedFrameBatch(lambda i: src[i], 8, source_fps=8, frame_count=frame_count, fps=30, width=W, height=H,
                          how=BatchFit(fit=fit))
    frames = list(fb.rgb_frames())
    assert len(frames) == frame_count and fb.duration == pytest.approx(frame_count / 30)
    assert fb.source_position(frame_count - 1) == pytest.approx(last_pos)
    assert np.array_equal(frames[0], src[0])
    if fit == "native" and frame_count == 60:  # 8 frames at 8 fps last 0.875 s = 26.25 frames at 30: then held
        assert all(np.array_equal(f, src[-1]) for f in frames[27:])


def test_frames_are_made_on_demand_in_order():
    """Streaming: each source frame is converted about once, never the whole batch up front."""
    src = batch(8)
    calls = []

    def get(i):
        calls.append(i)
        return src[i]

    fb = FittedFrameBatch(get, 8, source_fps=8, frame_count=60, fps=30, width=W, height=H)
    it = fb.rgb_frames()
    next(it)
    assert len(calls) <= 2
    for _ in it:
        pass
    assert sorted(set(calls)) == list(range(8)) and len(calls) <= 10


def test_contain_keeps_the_whole_frame_and_cover_fills():
    """A 16:9 model frame in a 9:16 scene: cover crops to the middle, contain shows it all on a blurred copy."""
    wide = square_frame(0)
    wide[35:35 + SQ, W - SQ:] = 230                       # squares at both edges of the source
    fb_cover = FittedFrameBatch(lambda i: wide, 1, 8, 1, 30, 90, 160, BatchFit(framing="cover"))
    fb_contain = FittedFrameBatch(lambda i: wide, 1, 8, 1, 30, 90, 160, BatchFit(framing="contain"))
    cover, contain = fb_cover.frame(0), fb_contain.frame(0)
    assert cover.shape == contain.shape == (160, 90, 3)
    # cover: scaled by 160/90 to fill the height, the edges (and both squares) cropped away
    assert (cover[..., 0] > 130).sum() == 0
    # contain: scaled by 90/160, both squares in view (about 11 px each), centred band of 51 px
    top = (160 - 51) // 2
    band = contain[top + 1:top + 50]
    bright = band[..., 0] > 130
    assert bright[:, :15].sum() > 60 and bright[:, -15:].sum() > 60
    # above and below the band: a dimmed blur of the frame, no hard content
    assert contain[:top - 1, ..., 0].max() < 160 and contain[top + 52:, ..., 0].max() < 160


def test_contain_fit_of_a_frame_that_already_fits_keeps_every_pixel():
    f = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    assert np.array_equal(contain_fit(f, W, H), f)  # no bars, no blur, no resampling of an exact fit


def test_refit_to_the_same_scene_keeps_the_fitted_frames():
    """The assembler re-fits a batch to its storyboard: for the same scene the frames come through unchanged."""
    src = batch()
    fb = FittedFrameBatch(lambda i: src[i], 8, source_fps=8, frame_count=40, fps=30, width=W, height=H,
                          how=BatchFit(interpolation="motion"))
    again = fb.refit(40, 30, W, H)
    assert again.interpolation == "motion" and again is not fb
    for k, (a, b) in enumerate(zip(again.rgb_frames(), fb.rgb_frames())):
        assert np.array_equal(a, b), k


@pytest.mark.parametrize("kw,fit,field", [
    (dict(n_frames=0), {}, "images"), ({}, dict(fit="loop"), "fit"), ({}, dict(interpolation="rife"), "interpolation"),
    ({}, dict(framing="stretch"), "framing"), (dict(source_fps=0), {}, "source_fps"),
])
def test_bad_settings_name_the_field(kw, fit, field):
    args = dict(get_frame=lambda i: square_frame(0), n_frames=2, source_fps=8, frame_count=10, fps=30,
                width=W, height=H)
    args.update(kw)
    with pytest.raises(AdReelInputError) as exc:
        FittedFrameBatch(**args, how=BatchFit(**fit))
    assert exc.value.field == field
