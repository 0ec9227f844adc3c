"""Hostile media and hostile numbers, engine level, with the real ffmpeg/ffprobe/fontconfig.

The node-level and /prompt cases run through a real ComfyUI in
tests/integration/test_security_media.py.
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import threading
import time
import types

import cv2
import numpy as np

import media
import pytest
import torch
from PIL import Image

from nodes.engine import limits
from nodes.engine.motion import camera as motion
from nodes.engine.audio.mix import AudioClip, decode_audio_file, mix_audio, music_seconds_cap
from nodes.engine.motion.clip_sources import VideoFileSource
from nodes.engine.media.ffmpeg import MediaRefused, input_args, open_media
from nodes.engine.media.fonts import _fc_match, clean_family, font_family_name, resolve_font
from nodes.engine.motion.frame_batch import FittedFrameBatch
from nodes.engine.models import AdReelInputError, Brief
from nodes.engine.media.frames import cover_fit
from nodes.engine.motion.camera import CameraMoveClip
from nodes.engine.script.reference import analyze_reference
from nodes.engine.assembly.render import AdMedia, RenderOptions, check_work, parse_aspects, render_ad, render_plan
from nodes.engine.script import write_template_script
from nodes.engine.storyboard import build_storyboard
from nodes.engine.audio.subtitles import Cue, write_ass

TONE = 1000.0  # the "private" file's content: a 1 kHz tone


def ffmpeg(*args, cwd=None):
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True, cwd=cwd)


def tone_level_db(samples: np.ndarray, sr: int, freq: float) -> float:
    """Level of ``freq`` (±20 Hz) relative to full scale, from the spectrum."""
    x = np.asarray(samples, np.float64)
    if x.ndim == 2:
        x = x.mean(axis=0)
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size))) / (x.size / 4)
    f = np.fft.rfftfreq(x.size, 1 / sr)
    band = spec[(f > freq - 20) & (f < freq + 20)]
    return 20 * np.log10(band.max() + 1e-12)


@pytest.fixture(scope="module")
def private(tmp_path_factory):
    """A private media file outside any folder a workflow may name, and playlists that point at it."""
    d = tmp_path_factory.mktemp("private")
    ts = d / "private.ts"
    ffmpeg("-f", "lavfi", "-i", f"sine=f={TONE:g}:d=3", "-f", "lavfi", "-i", "color=c=red:s=64x64:d=3",
           "-c:a", "aac", "-c:v", "libx264", "-shortest", "-f", "mpegts", str(ts))
    return ts


def hls_playlist(path, target, repeat=1):
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:3", "#EXT-X-VERSION:3"]
    for _ in range(repeat):
        lines += ["#EXTINF:3.0,", str(target)]
    path.write_text("\n".join(lines + ["#EXT-X-ENDLIST", ""]))
    return str(path)


@pytest.fixture(scope="module")
def real_media(tmp_path_factory):
    d = tmp_path_factory.mktemp("real")
    out = {}
    for name, args in {
        "a.mp3": ["-f", "lavfi", "-i", "sine=f=440:d=2", "-c:a", "libmp3lame"],
        "a.ogg": ["-f", "lavfi", "-i", "sine=f=440:d=2", "-c:a", "libvorbis"],
        "a.opus": ["-f", "lavfi", "-i", "sine=f=440:d=2", "-c:a", "libopus"],
        "a.wav": ["-f", "lavfi", "-i", "sine=f=440:d=2"],
        "a.flac": ["-f", "lavfi", "-i", "sine=f=440:d=2"],
        "a.m4a": ["-f", "lavfi", "-i", "sine=f=440:d=2", "-c:a", "aac"],
        "v.mp4": ["-f", "lavfi", "-i", "testsrc2=s=64x64:d=2", "-f", "lavfi", "-i", "sine=f=440:d=2",
                  "-c:v", "libx264", "-c:a", "aac", "-shortest"],
        "v.webm": ["-f", "lavfi", "-i", "testsrc2=s=64x64:d=2", "-c:v", "libvpx-vp9", "-deadline", "realtime"],
    }.items():
        ffmpeg(*args, str(d / name))
        out[name] = str(d / name)
    return out


# --- an HLS playlist that claims to be mp3/mp4 ------------------------------------------------------

def test_an_hls_playlist_named_mp3_is_refused_naming_the_file_and_the_format(tmp_path, private):
    evil = hls_playlist(tmp_path / "evil.mp3", private)
    with pytest.raises(MediaRefused) as exc:
        open_media(evil, "track", "audio")
    msg = str(exc.value)
    assert msg.startswith("track:") and "HLS playlist" in msg and "'hls'" in msg, msg
    assert "evil.mp3" not in msg  # the visitor's file name is not repeated
    assert str(private) not in msg  # the error does not echo the playlist's contents


def test_an_hls_playlist_named_mp4_is_refused_as_a_clip_and_as_a_reference(tmp_path, private):
    evil = hls_playlist(tmp_path / "evil.mp4", private)
    with pytest.raises(MediaRefused, match=r"clips\[0\]: the file is an HLS playlist"):
        VideoFileSource(evil, 30, 30, 64, 64, field="clips[0]")
    with pytest.raises(MediaRefused, match="the file is an HLS playlist"):
        analyze_reference(evil)


def test_other_multi_file_formats_are_refused(tmp_path, private):
    concat = tmp_path / "list.mp3"
    concat.write_text(f"ffconcat version 1.0\nfile '{private}'\n")
    with pytest.raises(MediaRefused, match="track: the file is an ffconcat list"):
        open_media(str(concat), "track", "audio")
    text = tmp_path / "notes.wav"
    text.write_text("just some text\n" * 20)
    with pytest.raises(MediaRefused, match="track: the file"):
        open_media(str(text), "track", "audio")


@pytest.mark.parametrize("name,kind,demuxer", [("a.mp3", "audio", "mp3"), ("a.ogg", "audio", "ogg"),
                                               ("a.opus", "audio", "ogg"), ("a.wav", "audio", "wav"),
                                               ("a.flac", "audio", "flac"), ("a.m4a", "audio", "mov"),
                                               ("v.mp4", "video", "mov"), ("v.webm", "video", "matroska"),
                                               ("v.mp4", "audio", "mov")])
def test_real_audio_and_video_files_are_accepted(real_media, name, kind, demuxer):
    m = open_media(real_media[name], "f", kind)
    assert m.demuxer == demuxer
    args = m.args(5)
    assert args[args.index("-protocol_whitelist") + 1] == "file,pipe"
    assert args[args.index("-f") + 1] == demuxer and args[args.index("-t") + 1] == "5.000"
    assert args[-1] == "file:" + os.path.abspath(real_media[name])


def test_a_real_file_decodes_to_its_own_sound(real_media):
    clip = decode_audio_file(real_media["a.ogg"], "track")
    assert clip.sample_rate == 48000 and clip.samples.shape[0] == 2
    assert 1.9 < clip.duration < 2.1
    assert tone_level_db(clip.samples, 48000, 440) > tone_level_db(clip.samples, 48000, TONE) + 40


def test_a_renamed_playlist_never_brings_the_private_tone_into_the_mix(tmp_path, private):
    """Even if the file were swapped after the probe: the decode forces the probed demuxer."""
    evil = hls_playlist(tmp_path / "evil.mp3", private)
    with pytest.raises(MediaRefused):
        decode_audio_file(evil, "track")
    # a forced mp3 demuxer reads the playlist's text as (broken) mp3, never the file it names
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", *input_args(evil, "mp3"), "-f", "f32le", "-ac", "1",
                          "-ar", "48000", "pipe:1"], capture_output=True)
    pcm = np.frombuffer(out.stdout, "<f4")
    assert pcm.size < 48000 or tone_level_db(pcm, 48000, TONE) < -60


def test_a_file_name_with_a_colon_is_a_file_not_a_protocol(tmp_path, real_media):
    odd = tmp_path / "concat:x.ogg"
    shutil.copy(real_media["a.ogg"], odd)
    assert open_media(str(odd), "track").demuxer == "ogg"
    assert input_args(str(odd), "ogg")[-1].startswith("file:/")


# --- an audio bomb ----------------------------------------------------------------------------------

def test_a_playlist_of_200000_segments_is_refused_at_once(tmp_path, private):
    evil = hls_playlist(tmp_path / "bomb.mp3", private, repeat=200000)
    t0 = time.monotonic()
    with pytest.raises(MediaRefused, match="HLS playlist"):
        decode_audio_file(evil, "track")
    assert time.monotonic() - t0 < 60  # generous: it must not walk the 200000 segments


def test_a_long_file_is_decoded_only_up_to_the_bound(tmp_path, monkeypatch):
    long = tmp_path / "long.opus"
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=40", "-c:a", "libopus", "-b:a", "16k", str(long))
    assert decode_audio_file(str(long), "track", max_seconds=3).duration == pytest.approx(3.0, abs=0.05)
    monkeypatch.setenv("ADREEL_MAX_MEDIA_SECONDS", "2")
    # the server's cap wins over a caller's larger bound
    assert decode_audio_file(str(long), "track", max_seconds=30).duration == pytest.approx(2.0, abs=0.05)


def test_the_music_bound_is_the_longest_ad_plus_a_margin(monkeypatch):
    assert music_seconds_cap() == 185.0
    monkeypatch.setenv("ADREEL_MAX_MEDIA_SECONDS", "60")
    assert music_seconds_cap() == 60.0


# --- bad AUDIO, tiny images ------------------------------------------------------------------------

@pytest.mark.parametrize("samples,sr,needle", [
    (np.zeros((1, 100), np.float32), 0, "sample_rate is not a whole number"),
    (np.zeros((1, 100), np.float32), float("nan"), "sample_rate is not a whole number"),
    (np.zeros((1, 100), np.float32), 44100.5, "whole number"),
    (np.full((2, 4800), np.nan, np.float32), 48000, "NaN"),
    (np.full((2, 4800), np.inf, np.float32), 48000, "NaN or infinite"),
    (np.zeros((3, 5, 5), np.float32), 48000, "shape"),
])
def test_bad_audio_is_a_field_error(samples, sr, needle):
    with pytest.raises(AdReelInputError) as exc:
        AudioClip.checked(samples, sr, "music")
    assert exc.value.field == "music" and needle in str(exc.value)


def test_overlong_audio_is_refused(monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_MEDIA_SECONDS", "1")
    with pytest.raises(AdReelInputError, match="ADREEL_MAX_MEDIA_SECONDS"):
        AudioClip.checked(np.zeros((1, 48001 * 2), np.float32), 48000, "narration[0]")


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 500, 3), (500, 1, 3)])
def test_a_1xN_key_image_is_a_field_error(shape):
    with pytest.raises(AdReelInputError) as exc:
        CameraMoveClip(np.zeros(shape, np.uint8), "zoom_in", 10, 30, 64, 64)
    assert exc.value.field == "images" and "too small" in str(exc.value)


def test_a_2xN_key_image_renders():
    clip = CameraMoveClip(np.full((1000, 2, 3), 200, np.uint8), "pan_left", 5, 30, 64, 64)
    frames = list(clip.yuv_frames(0, 5))
    assert len(frames) == 5 and frames[0].size == 64 * 64 * 3 // 2


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_strength_and_source_fps_are_refused(value):
    with pytest.raises(ValueError, match="strength"):
        CameraMoveClip(np.zeros((8, 8, 3), np.uint8), "zoom_in", 10, 30, 64, 64, strength=value)
    with pytest.raises(AdReelInputError, match="source_fps"):
        FittedFrameBatch(lambda i: np.zeros((8, 8, 3), np.uint8), 4, source_fps=value, frame_count=10, fps=30,
                         width=64, height=64)


# --- cover_fit of absurd aspects, frame caps ------------------------------------------------------------

def test_cover_fit_of_a_1x100000_frame_never_scales_past_the_output(monkeypatch):
    sizes = []
    real = cv2.resize

    def spy(src, dsize, *a, **kw):
        sizes.append(tuple(dsize))
        return real(src, dsize, *a, **kw)

    monkeypatch.setattr(motion.cv2, "resize", spy)
    thin = np.zeros((100000, 1, 3), np.uint8)
    thin[50000:50010] = 255
    out = cover_fit(thin, 108, 192)
    assert out.shape == (192, 108, 3)
    assert sizes and all(w * h <= 108 * 192 for w, h in sizes), sizes
    wide = np.zeros((1, 100000, 3), np.uint8)
    assert cover_fit(wide, 192, 108).shape == (108, 192, 3)
    assert all(w * h <= 108 * 192 for w, h in sizes), sizes


def test_cover_fit_still_shows_the_centre_of_a_normal_frame():
    img = np.zeros((400, 400, 3), np.uint8)
    img[:, 150:250] = 255  # a white bar in the middle
    out = cover_fit(img, 90, 160)
    assert out.shape == (160, 90, 3)
    assert out[:, 45].mean() > 250 and out[:, 0].mean() < 5


def test_a_frame_batch_above_the_frame_cap_is_refused(monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_MEDIA_FRAMES", "100")
    with pytest.raises(AdReelInputError, match="ADREEL_MAX_MEDIA_FRAMES"):
        FittedFrameBatch(lambda i: np.zeros((8, 8, 3), np.uint8), 101, source_fps=8, frame_count=10, fps=30,
                         width=64, height=64)


def small_storyboard(duration=4.0, brand="Acme", aspect="9:16", width=None, height=None):
    b = Brief(brand=brand, product="RoboVac X2", cta="Shop now", duration_seconds=duration, aspect_ratio=aspect)
    sb = build_storyboard(b, write_template_script(b, 1), fps=24, resolution="720p")
    if width:
        sb = sb.model_copy(update={"width": width, "height": height})
    return sb


def test_extra_aspects_are_deduplicated_and_capped(monkeypatch):
    assert parse_aspects(", ".join(["1:1"] * 200)) == ("1:1",)
    opts = RenderOptions(extra_aspects=tuple(["1:1"] * 200 + ["16:9"]))
    assert opts.extra_aspects == ("1:1", "16:9")
    sb = small_storyboard()
    assert [a for a, _, _ in render_plan(sb, ("9:16", "1:1", "1:1"))] == ["9:16", "1:1"]
    monkeypatch.setenv("ADREEL_MAX_EXTRA_ASPECTS", "1")
    with pytest.raises(limits.LimitExceeded, match=r"extra_aspects: 2 distinct extra aspects .*at most 1"):
        render_plan(sb, ("1:1", "16:9"))
    monkeypatch.setenv("ADREEL_MAX_EXTRA_ASPECTS", "0")
    with pytest.raises(limits.LimitExceeded, match="ADREEL_MAX_EXTRA_ASPECTS"):
        render_plan(sb, ("1:1",))


def test_the_work_cap_names_every_factor():
    b = Brief(brand="Acme", product="X", cta="Buy", duration_seconds=180, aspect_ratio="9:16")
    sb = build_storyboard(b, write_template_script(b, 1), fps=30, resolution="4k")
    plan = render_plan(sb, ("1:1", "16:9"))
    with pytest.raises(limits.LimitExceeded) as exc:
        check_work(sb, plan, ("mp4", "webm", "mov", "hls"))
    msg = str(exc.value)
    assert "180.0 s × 30 fps" in msg and "2160×3840" in msg and "3 formats (mp4, webm, mov)" in msg
    assert "ADREEL_MAX_PIXEL_FRAMES" in msg and "4e+10" in msg
    # the demo's size fits
    demo = small_storyboard(15.0)
    assert check_work(demo, render_plan(demo, ()), ("mp4",)) < limits.MAX_PIXEL_FRAMES.read()


def sources_for(sb):
    return [CameraMoveClip(np.full((sb.height, sb.width, 3), 90 + 30 * (i % 5), np.uint8), "zoom_in", sc.frame_count,
                           sb.fps, sb.width, sb.height) for i, sc in enumerate(sb.scenes)]


def ffmpeg_children() -> list[int]:
    return media.ffmpeg_children(os.getpid(), ("ffmpeg",))


def test_the_work_cap_is_checked_before_any_audio_pass_or_encode(tmp_path, monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_PIXEL_FRAMES", "1000000")
    sb = small_storyboard(4.0, width=96, height=160)
    out = tmp_path / "out" / "ad.mp4"
    out.parent.mkdir()
    work = tmp_path / "work"
    music = AudioClip(np.zeros((2, 48000 * 5), np.float32) + 0.1, 48000)
    with pytest.raises(limits.LimitExceeded, match=r"4\.0 s × 24 fps × \(96×160\) px × 2 formats"):
        render_ad(sb, sources_for(sb), str(out), str(work), RenderOptions(formats=("mp4", "webm"), thumbnail=False),
                  AdMedia(music=music))
    assert os.listdir(out.parent) == []
    assert not os.path.exists(work / "mix.wav") and not os.path.exists(work / "music.wav")


# --- the mix thread, sidecars, % in the HLS name ------------------------------------------------------------

def test_an_error_stops_and_joins_the_mix_and_leaves_no_sidecars(tmp_path):
    """A brand glyph no font has fails the end card while the mix is still running (60 s of audio)."""
    sb = small_storyboard(60.0, brand="Acme \U000F0001", width=96, height=160)
    out = tmp_path / "out" / "ad.mp4"
    out.parent.mkdir()
    work = tmp_path / "work"
    t = np.arange(48000 * 3) / 48000
    voice = AudioClip.mono((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 48000)
    music = AudioClip(np.tile((0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), (2, 1)), 48000)
    narration = [voice] + [None] * (len(sb.scenes) - 1)
    with pytest.raises(AdReelInputError, match="glyph"):
        render_ad(sb, sources_for(sb), str(out), str(work), RenderOptions(thumbnail=False),
                  AdMedia(narration=narration, music=music))
    assert not [t for t in threading.enumerate() if t.name.startswith("adreel-audio") and t.is_alive()]
    assert ffmpeg_children() == []
    assert sorted(os.listdir(out.parent)) == []  # no .srt/.vtt (or their .part) orphaned
    shutil.rmtree(work)  # nothing writes into it any more


def test_a_percent_in_the_name_gives_a_working_hls(tmp_path):
    sb = small_storyboard(3.0, width=96, height=160)
    out = tmp_path / "ad%d_00001_.mp4"
    t = np.arange(48000) / 48000
    voice = AudioClip.mono((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 48000)
    res = render_ad(sb, sources_for(sb), str(out), str(tmp_path / "work"),
                    RenderOptions(formats=("mp4", "hls"), thumbnail=True),
                    AdMedia(narration=[None] * (len(sb.scenes) - 1) + [voice]))
    playlist = res.files["hls"]
    assert os.path.dirname(playlist) == str(tmp_path / "ad%d_00001__hls")
    segments = [line for line in open(playlist).read().splitlines() if line and not line.startswith("#")]
    assert segments and all(os.path.isfile(os.path.join(os.path.dirname(playlist), s)) for s in segments)
    assert os.path.isfile(tmp_path / "ad%d_00001_.jpg")
    assert os.path.isfile(tmp_path / "ad%d_00001_.srt") and not os.path.exists(tmp_path / "ad%d_00001_.srt.part")


def test_a_nan_mix_setting_is_refused_before_ffmpeg(tmp_path):
    from nodes.engine.audio.mix import MixSettings
    with pytest.raises(ValueError, match="music_volume_db"):
        mix_audio(2.0, None, AudioClip(np.zeros((2, 48000), np.float32), 48000), str(tmp_path / "m.wav"),
                  str(tmp_path), MixSettings(music_gain_db=float("nan")))
    with pytest.raises(AdReelInputError, match="end_card_seconds"):
        RenderOptions(end_card_seconds=float("nan"))


# --- fonts ------------------------------------------------------------------------------------------------

@pytest.fixture
def a_system_font():
    face = _fc_match("DejaVu Sans")
    assert face is not None and face.path.endswith(".ttf"), "fonts-dejavu-core (installed by the set-up) is missing"
    return face.path


def test_a_font_file_outside_the_font_folders_is_refused(tmp_path, a_system_font, monkeypatch):
    uploaded = tmp_path / "input" / "evil.ttf"  # as if uploaded into ComfyUI's input folder
    uploaded.parent.mkdir()
    shutil.copy(a_system_font, uploaded)
    resolve_font.cache_clear()
    monkeypatch.chdir(tmp_path)
    for spec in ("input/evil.ttf", str(uploaded), "../" * 3 + str(uploaded)):
        with pytest.raises(AdReelInputError, match="names a font file AdReel may not read"):
            resolve_font(spec)
    # the system font itself (fontconfig knows it), and the same file in an allowed folder, are fine
    assert resolve_font(a_system_font).path == os.path.realpath(a_system_font)
    monkeypatch.setenv("ADREEL_FONT_DIRS", str(uploaded.parent))
    resolve_font.cache_clear()
    assert resolve_font("evil.ttf").path == str(uploaded)
    resolve_font.cache_clear()


def test_a_bad_face_number_is_a_field_error(a_system_font):
    for spec, needle in ((a_system_font + "#abc", "whole number"), (a_system_font + "#3", "1 face")):
        with pytest.raises(AdReelInputError) as exc:
            resolve_font(spec)
        assert exc.value.field == "font" and needle in str(exc.value)


def test_a_newline_in_a_family_name_cannot_split_the_style_line(tmp_path, a_system_font, monkeypatch):
    from fontTools.ttLib import TTFont
    tt = TTFont(a_system_font)
    for rec in tt["name"].names:
        if rec.nameID in (1, 4, 16):
            rec.string = "Evil\nStyle: Default,Arial,200"
    (tmp_path / "fonts").mkdir()
    path = tmp_path / "fonts" / "evil.ttf"
    tt.save(str(path))
    monkeypatch.setenv("ADREEL_FONT_DIRS", str(tmp_path / "fonts"))
    resolve_font.cache_clear()
    family = font_family_name(resolve_font(str(path)))
    assert "\n" not in family and "," not in family and family.startswith("Evil")
    ass = tmp_path / "s.ass"
    write_ass([Cue(0, 1, "hi")], 320, 240, str(ass), font="Bad\r\nStyle: X,Y")
    styles = [line for line in ass.read_text().splitlines() if line.startswith("Style:")]
    assert len(styles) == 1 and styles[0].startswith("Style: Default,Bad Style: X Y,")
    assert clean_family("a\u2028b,c\x00d") == "a b c d"
    resolve_font.cache_clear()


# --- in the node layer: other packs' IMAGE / AUDIO (convert.py, loaded without ComfyUI) ------------------
# ``nodes/comfy_nodes/convert.py`` needs only torch, numpy and PIL; its package's ``__init__`` imports
# ComfyUI's API, so the module is loaded on its own here.

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def convert():
    name = "nodes.comfy_nodes"
    added = name not in sys.modules
    if added:
        pkg = types.ModuleType(name)
        pkg.__path__ = [os.path.join(ROOT, "nodes", "comfy_nodes")]
        sys.modules[name] = pkg
    try:
        yield importlib.import_module(f"{name}.convert")
    finally:
        if added:
            sys.modules.pop(name, None)
            sys.modules.pop(f"{name}.convert", None)


def image(h=16, w=24, c=3, value=0.5):
    return torch.full((1, h, w, c), value)


def test_a_two_channel_image_is_a_field_error(convert, tmp_path):
    with pytest.raises(AdReelInputError) as exc:
        convert.save_image_input(image(c=2), str(tmp_path), "logo", "logo")
    assert exc.value.field == "logo" and "2 channels" in str(exc.value)
    assert os.listdir(tmp_path) == []


def test_grey_rgb_and_rgba_are_saved_by_content(convert, tmp_path):
    for c, mode in ((1, "L"), (3, "RGB"), (4, "RGBA")):
        p = convert.save_image_input(image(c=c), str(tmp_path), "logo")
        with Image.open(p) as im:
            assert im.mode == mode and im.size == (24, 16)
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".png")]) == 3


def test_a_crash_during_the_save_leaves_no_file_under_the_final_name(convert, tmp_path, monkeypatch):
    real_save = Image.Image.save

    def full_disk(self, fp, *a, **kw):
        fp.write(b"\x89PNG\r\n\x1a\n")  # a few bytes, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(OSError):
        convert.save_image_input(image(), str(tmp_path), "logo")
    assert os.listdir(tmp_path) == []  # neither a truncated logo_<sha>.png nor its .part
    monkeypatch.setattr(Image.Image, "save", real_save)
    p = convert.save_image_input(image(), str(tmp_path), "logo")
    with Image.open(p) as im:
        im.load()


def test_a_truncated_cached_file_is_written_again(convert, tmp_path):
    p = convert.save_image_input(image(value=0.8), str(tmp_path), "scene000")
    good = open(p, "rb").read()
    with open(p, "wb") as f:
        f.write(good[:30])
    assert convert.save_image_input(image(value=0.8), str(tmp_path), "scene000") == p
    with Image.open(p) as im:
        assert np.asarray(im).mean() == pytest.approx(204, abs=1)
    # a good cached file is reused as it is
    mtime = os.stat(p).st_mtime_ns
    convert.save_image_input(image(value=0.8), str(tmp_path), "scene000")
    assert os.stat(p).st_mtime_ns == mtime


def test_image_size_limits(convert, tmp_path, monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_INPUT_PIXELS", "1000")
    with pytest.raises(AdReelInputError, match=r"logo: a 40×30 px image .*ADREEL_MAX_INPUT_PIXELS"):
        convert.save_image_input(image(h=30, w=40), str(tmp_path), "logo", "logo")
    with pytest.raises(AdReelInputError, match="too small"):
        convert.image_to_pil(image(h=1, w=40), "images")


def test_a_stored_image_is_size_checked_before_it_is_decoded(convert, tmp_path, monkeypatch):
    p = tmp_path / "big.png"
    Image.new("RGB", (200, 100)).save(p)
    monkeypatch.setenv("ADREEL_MAX_INPUT_PIXELS", "10000")
    with pytest.raises(AdReelInputError, match=r"brief.logo: a 200×100 px image"):
        convert.open_image_file(str(p), "brief.logo")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(AdReelInputError, match="brief.logo: cannot read the image file"):
        convert.open_image_file(str(tmp_path / "junk.png"), "brief.logo")


@pytest.mark.parametrize("audio,needle", [
    ({"waveform": torch.zeros(1, 1, 100), "sample_rate": 0}, "sample_rate is not a whole number"),
    ({"waveform": torch.full((1, 2, 4800), float("nan")), "sample_rate": 48000}, "NaN"),
    ({"waveform": torch.zeros(1, 1, 100)}, "is not an AUDIO"),
    ({"waveform": torch.zeros(100), "sample_rate": 48000}, "is not (B, C, N)"),
])
def test_bad_audio_dicts_are_field_errors(convert, audio, needle):
    with pytest.raises(AdReelInputError) as exc:
        convert.audio_to_clip(audio, "music")
    assert exc.value.field == "music" and needle in str(exc.value)


def test_good_audio_converts(convert):
    clip = convert.audio_to_clip({"waveform": torch.zeros(1, 2, 4800), "sample_rate": 44100}, "music")
    assert clip.sample_rate == 44100 and clip.samples.shape == (2, 4800)
