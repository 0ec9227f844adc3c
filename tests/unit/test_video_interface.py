"""AdReel's lazy VIDEO against the ``VideoInput`` interface of the ComfyUI core it runs in.

The core is ``$ADREEL_COMFYUI`` (the pinned one by default); cores installed beside it
(``ComfyUI-<version>`` folders, e.g. 0.33.0) are checked for instantiation in a subprocess
each. Files are checked as a user would: ffprobe (container, codec, frames, duration,
pixel format), the EBML DocType of Matroska/WebM, and the decoded pixels.
"""
from __future__ import annotations

import gc
import glob
import importlib
import inspect
import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import media
from nodes.engine.models import AdReelInputError
from nodes.engine.motion.camera import CameraMoveClip

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
W, H, FPS, N = 160, 96, 24, 48  # a 2 s camera move


def core_dir() -> str:
    comfy = os.environ.get("ADREEL_COMFYUI") or os.path.join(ROOT, ".runtime", "ComfyUI")
    assert os.path.isfile(os.path.join(comfy, "main.py")), f"no ComfyUI at {comfy} (run `make setup`)"
    return comfy


def node_layer():
    comfy = core_dir()
    if comfy not in sys.path:
        sys.path.append(comfy)
    return importlib.import_module("nodes.comfy_nodes.video")


def key_image() -> np.ndarray:
    """Soft bands and a gradient: a zoom changes every frame, and encoders keep it well."""
    y, x = np.mgrid[0:120, 0:200].astype(np.float32)
    r = 128 + 100 * np.sin(x / 9.0)
    g = 128 + 100 * np.cos(y / 7.0)
    b = 255 * x / 200
    return np.stack([r, g, b], axis=2).astype(np.uint8)


@pytest.fixture
def video():
    v = node_layer()
    return v.RenderOnDemandVideo(CameraMoveClip(key_image(), "zoom_in", N, FPS, W, H), "test clip")


@pytest.fixture
def rendered(monkeypatch):
    """How many frames the camera move has rendered (RGB or YUV) since the test began."""
    count = {"frames": 0}
    rgb, yuv = CameraMoveClip.rgb_frames, CameraMoveClip.yuv_frames

    def counting(method):
        def frames(self, *a, **kw):
            for f in method(self, *a, **kw):
                count["frames"] += 1
                yield f
        return frames

    monkeypatch.setattr(CameraMoveClip, "rgb_frames", counting(rgb))
    monkeypatch.setattr(CameraMoveClip, "yuv_frames", counting(yuv))
    return count


def ebml_doctype(path: str) -> str:
    """The DocType of a Matroska file's EBML header: "webm" or "matroska"."""
    with open(path, "rb") as f:
        head = f.read(64)
    i = head.index(b"\x42\x82")
    size = head[i + 2] & 0x7F  # a one-byte EBML size
    return head[i + 3:i + 3 + size].decode()


def decode_bt709(path: str) -> np.ndarray:
    """Every frame as RGB, converted with the BT.709 matrix the files are tagged with."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-vf",
                          "scale=in_color_matrix=bt709:in_range=tv,format=rgb24", "-f", "rawvideo", "pipe:1"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3)


def probe(path: str) -> tuple[dict, dict]:
    info = media.ffprobe(path)
    return info["format"], media.stream(info, "video")


# --- the interface --------------------------------------------------------------------------------------

def test_it_is_a_complete_video_input_of_this_core(video):
    """Every method core's VideoInput declares is AdReel's own, taking every parameter core passes."""
    from comfy_api.latest import Input
    cls = type(video)
    assert not inspect.isabstract(cls), f"abstract: {sorted(cls.__abstractmethods__)}"
    declared = [n for n, m in inspect.getmembers(Input.Video, inspect.isfunction) if not n.startswith("_")]
    assert {"get_components", "save_to", "get_dimensions", "get_duration"} <= set(declared)
    for name in declared:
        assert name in cls.__dict__, f"{name} is core's default, not AdReel's"
        ours = inspect.signature(getattr(cls, name)).parameters
        theirs = inspect.signature(getattr(Input.Video, name)).parameters
        missing = [p for p in theirs if p not in ours and not any(q.kind is q.VAR_KEYWORD for q in ours.values())]
        assert not missing, f"{name} lacks {missing}"
    assert video.get_color_space() == "sRGB" and video.get_bit_depth() == 8
    assert video.get_dimensions() == video.get_display_dimensions() == (W, H)
    assert video.get_active_trim_window() == (0.0, 0.0) and not video.has_pending_frame_edits()


def sibling_cores() -> list[str]:
    here = os.path.realpath(core_dir())
    return sorted(p for p in glob.glob(os.path.join(os.path.dirname(here), "ComfyUI*"))
                  if os.path.isfile(os.path.join(p, "main.py")) and os.path.realpath(p) != here)


@pytest.mark.parametrize("core", sibling_cores() or [pytest.param(None, marks=pytest.mark.skip(
    reason="no other ComfyUI core installed beside $ADREEL_COMFYUI"))])
def test_every_installed_core_can_instantiate_and_trim_it(core):
    """In a fresh interpreter with that core's comfy_api first on sys.path: instantiation (0.33 made
    as_trimmed abstract), a trim, and a save with the keywords core's Save Video passes."""
    script = textwrap.dedent(f"""
        import sys, tempfile, os
        sys.path[:0] = [{ROOT!r}, {core!r}]
        import numpy as np
        from comfy_api.latest import Input, Types
        from nodes.comfy_nodes.video import RenderOnDemandVideo
        from nodes.engine.motion.camera import CameraMoveClip
        v = RenderOnDemandVideo(CameraMoveClip(np.full((40, 60, 3), 99, np.uint8), "zoom_in", 24, 24, 64, 48))
        assert isinstance(v, Input.Video)
        t = v.as_trimmed(0.25, 0.5)
        p = os.path.join(tempfile.mkdtemp(), "x.mp4")
        t.save_to(p, format=Types.VideoContainer("mp4"), codec=Types.VideoCodec("h264"), metadata={{"a": 1}},
                  crf=23.0, color_space=None)
        print(sorted(Input.Video.__abstractmethods__), t.get_frame_count(), os.path.getsize(p) > 0)
    """)
    python = os.environ.get("ADREEL_PYTHON") or sys.executable
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=300, cwd=core)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("12 True"), out.stdout


# --- edits render nothing -----------------------------------------------------------------------------

def test_edits_render_nothing_until_frames_are_asked_for(video, rendered):
    full = video.get_components().images
    assert rendered["frames"] == N
    rendered["frames"] = 0
    t = video.as_trimmed(0.5, 1.0)
    c = t.as_cropped(11, 7, 81, 41)
    r = c.as_resized(48, 32, "bilinear")
    facts = [(x.get_frame_count(), x.get_dimensions(), x.get_duration(), x.get_active_trim_window())
             for x in (t, c, r)]
    assert rendered["frames"] == 0
    assert facts[0] == (24, (W, H), 1.0, (0.5, 1.0))
    assert facts[1] == (24, (80, 40), 1.0, (0.5, 1.0))  # clamped to even pixels: 10, 6, 80×40
    assert facts[2] == (24, (48, 32), 1.0, (0.5, 1.0))
    assert not t.has_pending_frame_edits() and c.has_pending_frame_edits() and r.has_pending_frame_edits()

    images = t.get_components().images
    assert rendered["frames"] == 24  # the window's frames, not the clip's
    assert np.array_equal(images.numpy(), full[12:36].numpy())
    cropped = c.get_components().images
    assert np.array_equal(cropped.numpy(), full[12:36, 6:46, 10:90].numpy())


@pytest.mark.parametrize("start, duration, strict, window", [
    (0.5, 1.0, False, (12, 24)),
    (1.5, 1.0, False, (36, 12)),      # shorter than asked: what is left
    (1.5, 1.0, True, None),           # strict: refused
    (0.0, 2.0, True, (0, 48)),
    (-0.5, 0.0, False, (36, 12)),     # negative start: from the end; duration 0: to the end
    (-10.0, 0.5, False, (0, 12)),
    (2.0, 0.0, False, None),          # nothing left
    (0.5, 0.01, False, None),         # less than half a frame
    (None, None, False, (0, 48)),
])
def test_trim_windows_follow_core_semantics(video, start, duration, strict, window):
    t = video.as_trimmed(start, duration, strict_duration=strict)
    if window is None:
        assert t is None
        return
    first, count = window
    assert t.get_frame_count() == count and t.get_duration() == pytest.approx(count / FPS)
    expect = (0.0, 0.0) if window == (0, N) else (first / FPS, count / FPS)
    assert t.get_active_trim_window() == pytest.approx(expect)
    # trims compose: a trim of a trim is a window of the same clip
    tt = t.as_trimmed(0, count / FPS / 2)
    assert tt.get_active_trim_window()[0] == pytest.approx(first / FPS)


# --- save_to ---------------------------------------------------------------------------------------------

def core_value(enum_name: str, value: str):
    """Core's enum member when this core has it (0.3.75 knows mp4/h264 only), else the plain string."""
    from comfy_api.latest import Types
    try:
        return getattr(Types, enum_name)(value)
    except ValueError:
        return value


@pytest.mark.parametrize("fmt, codec, doctype, codec_name", [
    ("mp4", "auto", None, "h264"),
    ("mp4", "av1", None, "av1"),
    ("mkv", "auto", "matroska", "h264"),
    ("mkv", "vp9", "matroska", "vp9"),
    ("webm", "auto", "webm", "vp9"),
    ("webm", "av1", "webm", "av1"),
])
def test_save_to_writes_the_asked_container_and_codec(video, tmp_path, fmt, codec, doctype, codec_name):
    t = video.as_trimmed(0.5, 1.0)
    path = str(tmp_path / f"clip.{fmt}")
    t.save_to(path, format=core_value("VideoContainer", fmt), codec=core_value("VideoCodec", codec),
              metadata={"prompt": {"1": {"class_type": "MotionClip"}}})
    container, stream = probe(path)
    assert stream["codec_name"] == codec_name
    assert (stream["width"], stream["height"]) == (W, H) and stream["pix_fmt"] == "yuv420p"
    assert int(stream["nb_read_frames"]) == 24
    assert float(container["duration"]) == pytest.approx(1.0, abs=1e-3)
    if doctype is None:
        assert "mp4" in container["format_name"]
    else:
        assert ebml_doctype(path) == doctype
    assert "prompt" in {k.lower() for k in container.get("tags", {})}
    # the pixels are the trimmed window's
    frames = decode_bt709(path)
    full = (video.get_components().images.numpy() * 255).round().astype(np.uint8)
    right = media.mean_abs_diff(frames[[0, 12, 23]], full[[12, 24, 35]])
    wrong = media.mean_abs_diff(frames[[0, 12, 23]], full[[0, 12, 23]])  # the untrimmed clip's
    assert right < 5 and wrong > 2 * right, (right, wrong)


def test_auto_follows_the_extension_and_a_file_object_gets_the_container(video, tmp_path):
    video.save_to(str(tmp_path / "a.webm"))
    assert ebml_doctype(str(tmp_path / "a.webm")) == "webm"
    buf = io.BytesIO()  # newest core's Concatenate Video saves into a buffer as MKV
    video.save_to(buf, format="mkv", codec="auto")
    (tmp_path / "b.mkv").write_bytes(buf.getvalue())
    assert ebml_doctype(str(tmp_path / "b.mkv")) == "matroska"
    assert int(probe(str(tmp_path / "b.mkv"))[1]["nb_read_frames"]) == N


def test_crf_bit_depth_and_preset_are_honoured(video, tmp_path):
    sizes = {}
    for crf in (12.0, 40.0):
        p = str(tmp_path / f"crf{int(crf)}.mp4")
        video.save_to(p, crf=crf, preset="ultrafast")
        sizes[crf] = os.path.getsize(p)
    assert sizes[12.0] > 1.5 * sizes[40.0]
    p10 = str(tmp_path / "ten.mkv")
    video.save_to(p10, format="mkv", codec="av1", bit_depth=10, color_space="sRGB")
    _, s = probe(p10)
    assert s["codec_name"] == "av1" and s["pix_fmt"] == "yuv420p10le"
    p10h = str(tmp_path / "ten.mp4")
    video.save_to(p10h, bit_depth=10, preset="ultrafast")
    _, s = probe(p10h)
    assert s["pix_fmt"] == "yuv420p10le" and s["profile"] == "High 10" and s["color_primaries"] == "bt709"


@pytest.mark.parametrize("kwargs, field", [
    ({"color_space": "HDR"}, "color_space"),
    ({"color_space": "HDR PQ"}, "color_space"),
    ({"bit_depth": 12}, "bit_depth"),
    ({"format": "webm", "codec": "h264"}, "codec"),
    ({"codec": "hevc"}, "codec"),
    ({"format": "avi"}, "format"),
    ({"crf": 70}, "crf"),
    ({"codec": "av1", "crf": 0}, "crf"),
    ({"preset": "placebo"}, "preset"),
    ({"loop": 3}, "save_to"),            # a keyword a future core might add, asking for something
])
def test_what_it_cannot_do_is_refused_by_name(video, tmp_path, kwargs, field):
    path = str(tmp_path / "x.mp4")
    with pytest.raises(AdReelInputError) as err:
        video.save_to(path, **kwargs)
    assert err.value.field == field
    assert not os.path.exists(path)


def test_a_future_keyword_left_unset_is_accepted(video, tmp_path):
    path = str(tmp_path / "x.mp4")
    video.save_to(path, preset=None, loop=None)
    assert int(probe(path)[1]["nb_read_frames"]) == N


# --- the stream source ---------------------------------------------------------------------------------

def test_stream_source_is_one_private_file_shared_by_trims(rendered):
    video = node_layer().RenderOnDemandVideo(CameraMoveClip(key_image(), "zoom_in", N, FPS, W, H))
    path = video.get_stream_source()
    assert isinstance(path, str) and os.path.isfile(path)
    assert not os.path.realpath(path).startswith(os.path.realpath(core_dir()))
    assert os.stat(os.path.dirname(path)).st_mode & 0o077 == 0  # only this user
    assert rendered["frames"] == N
    t = video.as_trimmed(0.5, 1.0)
    assert t.get_stream_source() == path == video.get_stream_source()
    assert rendered["frames"] == N  # encoded once
    # the trim window picks the trimmed video's frames out of that file
    start, dur = t.get_active_trim_window()
    picked = decode_bt709(path)[round(start * FPS):round((start + dur) * FPS)]
    assert len(picked) == 24
    assert media.mean_abs_diff(picked, (t.get_components().images.numpy() * 255).round().astype(np.uint8)) < 5
    folder = os.path.dirname(path)
    del video, t
    gc.collect()
    assert not os.path.exists(folder)  # removed with the last video using it


def test_a_trimmed_clip_refits_for_the_assembler_as_the_same_stretch(video):
    """FFmpegAssemble refits each clip to its scene: a window keeps showing its part of the move."""
    t = video.as_trimmed(0.5, 1.0)
    same = t.clip.refit(24, FPS, W, H)
    assert (same.frame_count, same.width, same.height) == (24, W, H)
    assert np.array_equal(np.stack(list(same.rgb_frames())), (t.get_components().images.numpy() * 255).round())
    other = t.clip.refit(30, 30, 96, 160, framing="contain", fill_rgb=(255, 0, 0))
    frames = list(other.yuv_frames(0, 30))
    assert len(frames) == 30 and frames[0].size == 96 * 160 * 3 // 2
    cropped = t.as_cropped(0, 0, 80, 48).clip.refit(10, FPS, 64, 64)
    assert [f.shape for f in cropped.rgb_frames()] == [(64, 64, 3)] * 10


def test_the_assembler_takes_a_trimmed_core_video_as_trimmed(video, tmp_path):
    """A core VIDEO trimmed by Trim Video (0.33 on) keeps its whole file as stream source: FFmpegAssemble
    must use what it shows, not the file."""
    from types import SimpleNamespace
    from comfy_api.latest import InputImpl
    from nodes.engine.media.frames import yuv420_to_rgb
    node_layer()
    assemble = importlib.import_module("nodes.comfy_nodes.assemble_node")
    src = str(tmp_path / "src.mp4")
    video.save_to(src)
    whole = InputImpl.VideoFromFile(src)
    if not hasattr(whole, "as_trimmed"):
        pytest.skip("this core's VideoFromFile cannot be trimmed (0.3.75)")
    trimmed = whole.as_trimmed(0.5, 1.0)
    assert assemble.shows_less_than_its_stream(trimmed) and not assemble.shows_less_than_its_stream(whole)
    clip = assemble.scene_clip(trimmed, SimpleNamespace(index=0, frame_count=24),
                               SimpleNamespace(fps=FPS, width=W, height=H), str(tmp_path))
    frames = np.stack([yuv420_to_rgb(f.copy(), W, H) for f in clip.yuv_frames(0, 24)])
    full = (video.get_components().images.numpy() * 255).round().astype(np.uint8)
    right, wrong = media.mean_abs_diff(frames, full[12:36]), media.mean_abs_diff(frames, full[:24])
    assert right < 6 and wrong > 1.5 * right, (right, wrong)


def test_an_ffmpeg_without_the_encoder_or_depth_is_named_in_the_error(video, tmp_path, monkeypatch, request):
    """A server's ffmpeg without AV1 encoders, and whose libx264 has no 10-bit pixel format."""
    import shutil
    real = shutil.which("ffmpeg")
    wrapper = tmp_path / "ffmpeg"
    wrapper.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        case "$*" in
          *-encoders*) "{real}" "$@" | grep -v -e libsvtav1 -e libaom-av1 -e librav1e ;;
          *encoder=libx264*) "{real}" "$@" | sed 's/ yuv420p10le//g' ;;
          *) exec "{real}" "$@" ;;
        esac
        """))
    wrapper.chmod(0o755)
    from nodes.engine.media.ffmpeg import find_ffmpeg
    monkeypatch.setenv("ADREEL_FFMPEG", str(wrapper))
    find_ffmpeg.cache_clear()  # found once per process: forget the real one for this test, and after it
    request.addfinalizer(find_ffmpeg.cache_clear)
    path = str(tmp_path / "x.webm")
    with pytest.raises(AdReelInputError, match=r"libsvtav1 or libaom-av1") as err:
        video.save_to(path, format="webm", codec="av1")
    assert err.value.field == "codec" and not os.path.exists(path)
    with pytest.raises(AdReelInputError, match=r"10-bit h264.*yuv420p10le") as err:
        video.save_to(str(tmp_path / "x.mp4"), bit_depth=10)
    assert err.value.field == "bit_depth"
    video.save_to(path, format="webm")  # VP9 is there
    assert ebml_doctype(path) == "webm"


@pytest.mark.parametrize("method, crop", [("bilinear", "disabled"), ("area", "center"), ("lanczos", "disabled")])
def test_as_resized_gives_what_core_resize_gives(video, method, crop):
    """Frame for frame what ComfyUI's own resampler (Resize Image) makes of the clip's frames, to the
    8-bit step the clip is made of; then cut to post_crop."""
    import torch
    import comfy.utils
    full = video.get_components().images
    expect = comfy.utils.common_upscale(full.movedim(-1, 1), 64, 64, method, crop).movedim(1, -1).clamp(0, 1)
    r = video.as_resized(64, 64, method, crop, post_crop=(8, 4, 48, 40))
    assert r.get_dimensions() == (48, 40) and r.get_frame_count() == N
    got = r.get_components().images
    assert torch.allclose(got, expect[:, 4:44, 8:56], atol=1 / 255 + 1e-6)
    with pytest.raises(ValueError, match="upscale_method"):
        video.as_resized(64, 64, "magic")
