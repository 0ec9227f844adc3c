"""The one-pass assembler on small real renders: exact frames, transitions, colours, codecs."""
import os

import numpy as np
import pytest

from media import decode_frames, ffprobe, stream
from nodes.engine.assembly.encode import EncodeSettings, assemble
from nodes.engine.models import Brief
from nodes.engine.motion.camera import CameraMoveClip
from nodes.engine.script import write_template_script
from nodes.engine.storyboard import build_storyboard

W, H = 240, 428
COLOURS = [(200, 30, 30), (30, 160, 60), (40, 60, 200), (230, 200, 40), (150, 40, 160)]


def storyboard(duration=6.0, transition="cut", fps=30, texts=True):
    b = Brief(brand="Acme", product="Vac", cta="Buy", duration_seconds=duration)
    sb = build_storyboard(b, write_template_script(b, 0), fps=fps)
    scenes = [s.model_copy(update={"transition": transition if i else "cut",
                                   "on_screen_text": s.on_screen_text if texts else ""})
              for i, s in enumerate(sb.scenes)]
    return sb.model_copy(update={"width": W, "height": H, "scenes": scenes})


def solid_sources(sb):
    return [CameraMoveClip(np.full((H, W, 3), COLOURS[i % 5], np.uint8), "zoom_in", s.frame_count, sb.fps, W, H)
            for i, s in enumerate(sb.scenes)]


def render(tmp_path, sb, name="ad.mp4"):
    out = str(tmp_path / name)
    assemble(sb, solid_sources(sb), out, str(tmp_path / "work"), encode=EncodeSettings(preset="ultrafast", crf=18))
    return out


def probe_pixel(frame):
    return frame[int(H * 0.3), int(W * 0.15)].astype(int)


def test_streams_and_tags(tmp_path):
    sb = storyboard()
    out = render(tmp_path, sb)
    info = ffprobe(out)
    v, a = stream(info, "video"), stream(info, "audio")
    assert (v["codec_name"], v["profile"], v["pix_fmt"]) == ("h264", "High", "yuv420p")
    assert (v["color_space"], v["color_primaries"], v["color_transfer"]) == ("bt709", "bt709", "bt709")
    assert (v["width"], v["height"]) == (W, H)
    assert int(v["nb_read_frames"]) == sb.total_frames
    assert (a["codec_name"], a["sample_rate"], a["channels"]) == ("aac", "48000", 2)
    assert abs(float(info["format"]["duration"]) - 6.0) <= 0.05
    with open(out, "rb") as f:  # faststart: moov before mdat
        head = f.read(4096)
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))


@pytest.mark.parametrize("transition", ["cut", "fade", "crossfade"])
def test_transitions_keep_the_length_and_blend_at_the_boundary(tmp_path, transition):
    sb = storyboard(duration=5.0, transition=transition, texts=False)
    out = render(tmp_path, sb, f"{transition}.mp4")
    frames = decode_frames(out, W, H)
    assert len(frames) == sb.total_frames
    b = sb.scenes[1].start_frame
    before, at, after = probe_pixel(frames[b - 12]), probe_pixel(frames[b]), probe_pixel(frames[b + 12])
    ca, cb = np.array(COLOURS[0]), np.array(COLOURS[1])
    assert np.abs(before - ca).max() < 12 and np.abs(after - cb).max() < 12
    if transition == "cut":
        assert np.abs(at - cb).max() < 12 and np.abs(probe_pixel(frames[b - 1]) - ca).max() < 12
    elif transition == "crossfade":
        assert np.abs(at - (ca + cb) / 2).max() < 25
    else:  # through black
        assert at.max() < 60


def test_brand_colour_survives_encoding(tmp_path):
    sb = storyboard(texts=False)
    frames = decode_frames(render(tmp_path, sb), W, H)
    for i, s in enumerate(sb.scenes):
        mid = frames[s.start_frame + s.frame_count // 2]
        assert np.abs(probe_pixel(mid) - np.array(COLOURS[i % 5])).max() <= 6


def test_failure_leaves_no_partial_file(tmp_path):
    sb = storyboard()
    srcs = solid_sources(sb)[:-1]
    with pytest.raises(Exception, match="clips"):
        assemble(sb, srcs, str(tmp_path / "x.mp4"), str(tmp_path / "w"))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".mp4")]


def test_interrupt_stops_and_cleans_up(tmp_path):
    sb = storyboard(duration=6.0)
    calls = {"n": 0}

    def cancelled():
        calls["n"] += 1
        return calls["n"] > 20

    with pytest.raises(InterruptedError):
        assemble(sb, solid_sources(sb), str(tmp_path / "x.mp4"), str(tmp_path / "w"), cancelled=cancelled)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".mp4")]


def test_every_stream_lasts_the_whole_ad(tmp_path):
    """Audio from a mix file and a thumbnail grabbed: the audio must not end early."""
    from nodes.engine.assembly.encode import AssemblyExtras
    from nodes.engine.audio.mix import write_wav
    sb = storyboard(duration=4.0)
    wav = str(tmp_path / "a.wav")
    t = np.arange(4 * 48000) / 48000
    write_wav(wav, np.stack([0.2 * np.sin(2 * np.pi * 440 * t)] * 2), 48000)
    out = str(tmp_path / "ad.mp4")
    res = assemble(sb, solid_sources(sb), out, str(tmp_path / "work"), encode=EncodeSettings(preset="ultrafast"),
                   extras=AssemblyExtras(audio_path=wav, formats=("mp4", "mov"), thumbnail_frame=30))
    for path in (res.files["mp4"], res.files["mov"]):
        info = ffprobe(path)
        assert abs(float(stream(info, "audio")["duration"]) - 4.0) <= 0.05, path
        assert abs(float(stream(info, "video")["duration"]) - 4.0) <= 0.05, path
    assert os.path.getsize(res.files["thumbnail"]) > 1000


@pytest.mark.parametrize("transition", ["wipeleft", "wiperight", "wipeup", "wipedown",
                                        "slideleft", "slideright", "slideup", "slidedown"])
def test_wipes_and_slides_show_both_scenes_at_the_boundary(tmp_path, transition):
    sb = storyboard(duration=5.0, transition=transition, texts=False)
    out = render(tmp_path, sb, f"{transition}.mp4")
    frames = decode_frames(out, W, H)
    assert len(frames) == sb.total_frames
    b = sb.scenes[1].start_frame
    f = frames[b].astype(int)
    ca, cb = np.array(COLOURS[0]), np.array(COLOURS[1])
    if transition.endswith(("left", "right")):
        halves = (f[H // 2, W // 8], f[H // 2, W - W // 8])
    else:
        halves = (f[H // 8, W // 2], f[H - H // 8, W // 2])
    near = [min(np.abs(p - ca).max(), np.abs(p - cb).max()) for p in halves]
    assert max(near) < 20, halves                          # each side shows one of the scenes
    assert np.abs(halves[0] - halves[1]).max() > 60, halves  # and they are different scenes
