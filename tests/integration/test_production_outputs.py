"""FFmpegAssemble at production quality, checked on real outputs of a real ComfyUI:
narration, ducking, loudness, subtitles, brand, every format and aspect."""
from __future__ import annotations

import copy
import json
import os
import re
import wave

import numpy as np
import pytest
from PIL import Image

from harness import load_api_workflow, node_by_type, output_files
from media import (band_levels_db, decode_audio, decode_frames, ffprobe, frame_at, loudness, mean_abs_diff, ocr, read_small_type,
                   similarity, stream, voice_windows)
from nodes.engine.media.layout import frame_layout

pytestmark = pytest.mark.comfy
WIN = 0.02
MAIN = (720, 1280)  # the module's render: 9:16 at 720p
SECONDS = 8.5       # the shortest the template still writes three scenes for (hook, solution, CTA): three voiced
                    # stretches with pauses between them for the ducking and subtitle checks
# the every-format render: webm and mov beside the mp4, in both aspects, at the 360p draft size, 5 s (two scenes):
# what it proves is the containers and codecs, which do not depend on the size
FORMATS_SIZES = {"": (360, 640), "_16x9": (640, 360)}
FORMATS_SECONDS = 5.0


def tone_wav(path: str, freq: float = 6000.0, seconds: float = 7.0, sr: int = 48000) -> None:
    t = np.arange(int(seconds * sr)) / sr
    pcm = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())


def demo(comfy, **assemble_inputs) -> dict:
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad.json"))
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"].update(assemble_inputs)
    return prompt


@pytest.fixture(scope="module")
def full_render(comfy):
    """One 8.5 s ad at 720p with tone music (measurable apart from the voice), HLS, a thumbnail and one extra
    aspect (16:9, contain framing: its bars are the check). That a list of aspects is parsed, de-duplicated
    and capped is the unit tests' (test_media_safety); each extra aspect is rendered by the same code."""
    tone_wav(os.path.join(comfy.folder("input"), "tone6k.wav"))
    prompt = demo(comfy, preset="veryfast", hls=True, extra_aspects="16:9",
                  framing="contain", filename_prefix="AdReel/full")
    node_by_type(prompt, "BrandBrief")[1]["inputs"]["duration_seconds"] = SECONDS
    node_by_type(prompt, "MusicBed")[1]["inputs"]["track"] = "input/tone6k.wav"
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"]["resolution"] = "720p"  # every feature, a third of the pixels
    result = comfy.run(prompt)
    mp4 = output_files(comfy, result, node_by_type(prompt, "FFmpegAssemble")[0])[0]
    return prompt, mp4


@pytest.fixture(scope="module")
def formats_render(comfy):
    """The demo with every format (mp4, webm, mov) in both aspects, at the 360p draft size: its stem."""
    prompt = demo(comfy, preset="veryfast", webm=True, mov=True, extra_aspects="16:9", framing="contain",
                  filename_prefix="AdReel/formats")
    node_by_type(prompt, "BrandBrief")[1]["inputs"]["duration_seconds"] = FORMATS_SECONDS
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"]["resolution"] = "360p"
    result = comfy.run(prompt)
    mp4 = output_files(comfy, result, node_by_type(prompt, "FFmpegAssemble")[0])[0]
    return os.path.splitext(mp4)[0]


def voice_and_music(mp4):
    x = decode_audio(mp4)
    voice = voice_windows(x, 48000, WIN)
    music = band_levels_db(x, 48000, 5900, 6100, WIN)
    return x, voice, music


def test_music_ducks_under_the_voice(full_render):
    _, mp4 = full_render
    _, voice, music = voice_and_music(mp4)
    n = len(voice)
    core = np.zeros(n, bool)
    core[int(1.0 / WIN): n - int(2.5 / WIN)] = True  # away from fades and the end card
    # windows well inside speech / well inside pauses (not the attack / release ramps)
    inside = np.convolve(voice, np.ones(9), "same") == 9
    pause = np.convolve(~voice, np.ones(25), "same") == 25
    during, between = music[inside & core], music[pause & core]
    assert len(during) > 20 and len(between) > 5, (len(during), len(between))
    assert np.median(between) - np.median(during) >= 8.0, (np.median(between), np.median(during))


def test_loudness_is_normalised(full_render):
    _, mp4 = full_render
    lv = loudness(mp4)
    assert abs(lv["integrated"] - (-14.0)) <= 1.0, lv
    assert lv["true_peak"] <= -1.0, lv


def intervals(mask: np.ndarray, step: float, merge_gap: float) -> list[tuple[float, float]]:
    out = []
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return out
    start = prev = idx[0]
    for i in idx[1:]:
        if (i - prev - 1) * step > merge_gap:
            out.append((start * step, (prev + 1) * step))
            start = i
        prev = i
    out.append((start * step, (prev + 1) * step))
    return out


def test_subtitles_follow_the_voice(full_render):
    """From the pixels and the sound alone: subtitles are on screen while the voice speaks (±100 ms), up to
    the end card, which shows the CTA itself (the voice may go on saying it there; subtitles stop)."""
    prompt, mp4 = full_render
    card = float(node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["end_card_seconds"])
    _, voice, _ = voice_and_music(mp4)
    W, H = MAIN
    box = frame_layout(W, H).subtitles
    zone = decode_frames(mp4, box.w, box.h, crop=(box.x, box.y, box.w, box.h)).astype(int)
    # subtitle text: near-white pixels on the dark box
    white = ((zone.min(axis=3) > 215).mean(axis=(1, 2)))
    shown = white > 0.005
    end_card = SECONDS - card
    sub_iv = [(a, min(b, end_card)) for a, b in intervals(shown, 1 / 30, 0.2) if a < end_card]
    voice_iv = [(a, min(b, end_card)) for a, b in intervals(voice, WIN, 0.3) if a < end_card]
    assert len(sub_iv) == len(voice_iv) >= 3, (sub_iv, voice_iv)
    for (s0, s1), (v0, v1) in zip(sub_iv, voice_iv):
        assert abs(s0 - v0) <= 0.1 + 1 / 30, (sub_iv, voice_iv)
        assert abs(s1 - v1) <= 0.1 + 1 / 30, (sub_iv, voice_iv)


def test_sidecar_subtitles(full_render):
    _, mp4 = full_render
    stem = os.path.splitext(mp4)[0]
    srt = open(stem + ".srt", encoding="utf-8").read()
    vtt = open(stem + ".vtt", encoding="utf-8").read()
    assert vtt.startswith("WEBVTT")
    srt_cues = re.findall(r"(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})", srt)
    vtt_cues = re.findall(r"(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})", vtt)
    assert len(srt_cues) == len(vtt_cues) >= 3
    # ffmpeg itself reads both
    for p in (stem + ".srt", stem + ".vtt"):
        assert stream(ffprobe(p), "subtitle")


def test_every_format_plays_with_the_promised_codecs(formats_render):
    expect = {".mp4": ("h264", "aac"), ".webm": ("vp9", "opus"), ".mov": ("prores", "pcm_s16le")}
    for aspect, size in FORMATS_SIZES.items():
        for ext, (vc, ac) in expect.items():
            path = formats_render + aspect + ext
            info = ffprobe(path)
            v, a = stream(info, "video"), stream(info, "audio")
            assert (v["codec_name"], a["codec_name"]) == (vc, ac), path
            assert (v["width"], v["height"]) == size, path
            assert abs(float(info["format"]["duration"]) - FORMATS_SECONDS) <= 0.1, path
            assert abs(float(a.get("duration") or info["format"]["duration"]) - FORMATS_SECONDS) <= 0.1, path
            assert int(v["nb_read_frames"]) == round(FORMATS_SECONDS * 30), path


def test_the_mp4_is_high_profile_bt709_with_48k_stereo(full_render):
    _, mp4 = full_render
    info = ffprobe(mp4)
    v, a = stream(info, "video"), stream(info, "audio")
    assert (v["width"], v["height"]) == MAIN and int(v["nb_read_frames"]) == round(SECONDS * 30)
    assert abs(float(info["format"]["duration"]) - SECONDS) <= 0.1 and abs(float(a["duration"]) - SECONDS) <= 0.1
    assert (v["profile"], v["pix_fmt"], v["color_space"]) == ("High", "yuv420p", "bt709")
    assert (a["sample_rate"], a["channels"]) == ("48000", 2)


def test_hls_playlist_is_valid(full_render):
    _, mp4 = full_render
    playlist = os.path.splitext(mp4)[0] + "_hls/playlist.m3u8"
    text = open(playlist).read()
    assert text.startswith("#EXTM3U") and "#EXT-X-ENDLIST" in text and "#EXT-X-PLAYLIST-TYPE:VOD" in text
    segs = re.findall(r"#EXTINF:([\d.]+),\s*\n(\S+)", text)
    assert len(segs) >= 2 and all(os.path.isfile(os.path.join(os.path.dirname(playlist), s)) for _, s in segs)
    assert abs(sum(float(d) for d, _ in segs) - SECONDS) <= 0.15
    info = ffprobe(playlist)  # ffmpeg plays the playlist through
    assert abs(float(info["format"]["duration"]) - SECONDS) <= 0.2


def test_thumbnail(full_render):
    _, mp4 = full_render
    im = Image.open(os.path.splitext(mp4)[0] + ".jpg")
    assert im.format == "JPEG" and im.size == MAIN
    assert np.asarray(im).std() > 10  # a picture, not a blank


def test_extra_aspects_from_the_same_storyboard(full_render):
    prompt, mp4 = full_render
    aspect, size = "16x9", (1280, 720)
    path = f"{os.path.splitext(mp4)[0]}_{aspect}.mp4"
    info = ffprobe(path)
    v = stream(info, "video")
    assert (v["width"], v["height"]) == size and v["codec_name"] == "h264"
    assert abs(float(info["format"]["duration"]) - SECONDS) <= 0.1
    # contain framing: the whole 9:16 key image, with bars in the brand colour at the sides
    # the middle of the second scene: away from any transition (a fade passes through black)
    scene = json.load(open(os.path.splitext(mp4)[0] + ".json", encoding="utf-8"))["storyboard"]["scenes"][1]
    middle = (scene["start_frame"] + scene["frame_count"] / 2) / 30
    f = frame_at(path, middle, *size)
    bar = f[size[1] * 2 // 5: size[1] * 3 // 5, 10:size[0] // 20].reshape(-1, 3).mean(axis=0)
    first = node_by_type(prompt, "BrandBrief")[1]["inputs"]["brand_colors"].split(",")[0].strip().lstrip("#")
    brand = np.array([int(first[i:i + 2], 16) for i in (0, 2, 4)])
    assert np.abs(bar - brand).max() < 12, (bar, brand)


def test_end_card_and_logo(full_render):
    prompt, mp4 = full_render
    cta = node_by_type(prompt, "BrandBrief")[1]["inputs"]["cta"]
    brand = node_by_type(prompt, "BrandBrief")[1]["inputs"]["brand"]
    W, H = MAIN
    end = frame_at(mp4, SECONDS - 0.4, W, H)
    assert similarity(ocr(end[int(H * 0.57):int(H * 0.78)]), cta) >= 0.8
    mid = frame_at(mp4, 3.0, W, H)
    corner = mid[int(H * 0.03):int(H * 0.14), int(W * 0.62):]
    read = read_small_type(corner, brand)
    assert brand.upper() in read.upper().replace(" ", ""), read


def test_motion_is_smooth_frame_to_frame(full_render):
    """Inside each scene the picture moves every frame, without jumps or stalls."""
    _, mp4 = full_render
    frames = decode_frames(mp4, 180, 320)
    d = np.array([mean_abs_diff(frames[k], frames[k + 1]) for k in range(len(frames) - 1)])
    # look at stretches between shot changes, away from text entrances and transitions
    big = d > 6 * np.median(d)
    stretches = intervals(~big, 1, 0)
    checked = 0
    for a, b in stretches:
        a, b = int(a) + 20, int(b) - 20
        if b - a < 20:
            continue
        seg = d[a:b]
        assert seg.min() > 0, "a stalled frame inside a camera move"
        assert seg.max() < 4 * np.median(seg) + 0.5, "a jump inside a camera move"
        checked += 1
    assert checked >= 2


def test_korean_narration_and_subtitles(comfy):
    """A Korean brief: Korean narration, and subtitles Tesseract reads as that Korean text (5 s at 720p: two
    scenes, the first cue is the one read)."""
    prompt = demo(comfy, preset="ultrafast", filename_prefix="AdReel/ko")
    node_by_type(prompt, "BrandBrief")[1]["inputs"].update(
        brand="아크미", product="로보청소기", language="ko", cta="지금 구매하세요", duration_seconds=5.0)
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"]["resolution"] = "720p"
    result = comfy.run(prompt)
    mp4 = output_files(comfy, result, node_by_type(prompt, "FFmpegAssemble")[0])[0]
    srt = open(os.path.splitext(mp4)[0] + ".srt", encoding="utf-8").read()
    first = srt.split("\n\n")[0].split("\n")
    start = sum(float(x) * m for x, m in zip(first[1][:8].split(":"), (3600, 60, 1)))
    text = " ".join(first[2:])
    assert re.search(r"[\uac00-\ud7a3]", text)
    W, H = MAIN
    box = frame_layout(W, H).subtitles
    f = frame_at(mp4, start + 0.5, W, H)[box.y - 40: box.y + box.h, box.x:box.x + box.w]
    assert similarity(ocr(f, "kor"), text) >= 0.7, (text, ocr(f, "kor"))
    x = decode_audio(mp4)
    assert voice_windows(x, 48000, WIN).mean() > 0.2  # the voice is there
