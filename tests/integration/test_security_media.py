"""Hostile media and hostile numbers, made the way a network user makes them, through a real ComfyUI.

Every attack file is uploaded with ComfyUI's own ``POST /upload/image`` (any name, ``type=input`` or
``temp``), every workflow is POSTed to ``/prompt``, and the result is checked
from the outside: the error a user sees, the output folder, the ad's pixels and
spectrum, the server's peak RSS (VmHWM, reset before each attack), wall time,
``/history`` parsed strictly (a NaN token fails), and that the server still
answers. The module ends with a normal small render on the same server.

The server runs with lowered ceilings in its environment (limits.py), so the
work-cap cases are cheap: ADREEL_MAX_PIXEL_FRAMES=3e8, ADREEL_MAX_INPUT_PIXELS=4e6,
ADREEL_MAX_FRAMES_BYTES=2e8.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import time
import urllib.request
import uuid

import media
import wave

import numpy as np
import pytest
from PIL import Image

from harness import PromptError, load_api_workflow, node_by_type, output_files
from media import decode_audio, decode_frames, ffprobe, stream

pytestmark = pytest.mark.comfy

TONE = 1000.0
LIMITS = {"ADREEL_MAX_PIXEL_FRAMES": "3e8", "ADREEL_MAX_INPUT_PIXELS": "4000000",
          "ADREEL_MAX_FRAMES_BYTES": "200000000"}
COMFY_ENV = LIMITS  # the session starts this server early (tests/conftest.py)


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True)


@pytest.fixture(scope="module")
def private(tmp_path_factory):
    """Private media outside every ComfyUI folder: a 1 kHz tone, and red frames with it."""
    d = tmp_path_factory.mktemp("private")
    ts = d / "private.ts"
    ffmpeg("-f", "lavfi", "-i", f"sine=f={TONE:g}:d=4", "-f", "lavfi", "-i", "color=c=red:s=320x240:d=4",
           "-c:a", "aac", "-c:v", "libx264", "-preset", "ultrafast", "-shortest", "-f", "mpegts", str(ts))
    return ts


@pytest.fixture(scope="module")
def server(comfy_servers):
    """The session's server with these ceilings (stopped, and its canary checked, at the end of the session)."""
    return comfy_servers.get(env=COMFY_ENV)


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    assert server.alive(), server.log_tail()
    strict_history(server)


def upload(server, name: str, data: bytes, kind: str = "input", subfolder: str = "") -> dict:
    """ComfyUI's own upload route, as any network user calls it (multipart, overwrite on)."""
    status, body = server.upload(name, data, kind, subfolder)
    assert status == 200, (status, body)
    return body


def strict_history(server) -> dict:
    """/history as a browser's JSON.parse reads it: NaN/Infinity tokens are an error."""
    with urllib.request.urlopen(server.url + "/history", timeout=30) as r:
        text = r.read().decode()

    def refuse(token):
        raise AssertionError(f"/history holds the non-JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def pid_status(server, key: str) -> int:
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


class PeakRSS:
    """The server's peak RSS during a block: VmHWM reset first (clear_refs 5)."""

    def __init__(self, server):
        self.server = server

    def __enter__(self):
        with open(f"/proc/{self.server.proc.pid}/clear_refs", "w") as f:
            f.write("5")
        self.before = pid_status(self.server, "VmRSS")
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.t0
        self.growth = pid_status(self.server, "VmHWM") - self.before
        return False


def ffmpeg_children(server) -> list[int]:
    return media.ffmpeg_children(server.proc.pid)


def demo(duration: float = 3.0, **assemble) -> dict:
    """The shipped demo, cheap: 3 s, 720p, ultrafast."""
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad.json"))
    node_by_type(prompt, "BrandBrief")[1]["inputs"]["duration_seconds"] = duration
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"]["resolution"] = "720p"
    a = node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]
    a.update(preset="ultrafast", filename_prefix=f"AdReel/t{uuid.uuid4().hex[:8]}")
    a.update(assemble)
    return prompt


def outputs_now(server) -> set[str]:
    found = set()
    for root, _, files in os.walk(server.folder("output")):
        found.update(os.path.join(root, f) for f in files)
    return found


def run_fails(server, prompt, *needles, timeout=300) -> str:
    with pytest.raises(PromptError) as exc:
        server.run(prompt, timeout=timeout)
    msg = str(exc.value)
    for n in needles:
        assert n in msg, msg
    return msg


def tone_db(x: np.ndarray, sr: int, freq: float) -> float:
    x = np.asarray(x, np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1) if x.shape[1] <= 8 else x.mean(axis=0)
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size))) / (x.size / 4)
    f = np.fft.rfftfreq(x.size, 1 / sr)
    return 20 * np.log10(spec[(f > freq - 15) & (f < freq + 15)].max() + 1e-12)


def playlist(target, repeat=1) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:4", "#EXT-X-VERSION:3"]
    for _ in range(repeat):
        lines += ["#EXTINF:4.0,", str(target)]
    return ("\n".join(lines + ["#EXT-X-ENDLIST", ""])).encode()


# --- a normal render first (and the yardstick for the others) ------------------------------------------------

@pytest.fixture(scope="module")
def baseline(server):
    prompt = demo()
    result = server.run(prompt)
    mp4 = output_files(server, result, node_by_type(prompt, "FFmpegAssemble")[0])[0]
    return mp4


def test_a_normal_small_render_works(server, baseline):
    info = ffprobe(baseline)
    assert abs(float(info["format"]["duration"]) - 3.0) < 0.1
    assert (stream(info, "video")["width"], stream(info, "video")["height"]) == (720, 1280)


# --- files that claim to be audio/video but are HLS playlists naming a private file ----------------------

def test_a_playlist_named_mp3_as_music_bed_is_refused(server, baseline, private):
    upload(server, "evil.mp3", playlist(private))
    before = outputs_now(server)
    prompt = demo()
    node_by_type(prompt, "MusicBed")[1]["inputs"]["track"] = "input/evil.mp3"
    assert "evil.mp3" not in run_fails(server, prompt, "track:", "the file is an HLS playlist", "'hls'").splitlines()[0]
    assert outputs_now(server) == before  # no ad carrying the private tone was made
    # the same workflow with a real mp3 under that name renders, with its own sound and not the private tone
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=6", "-c:a", "libmp3lame", os.path.join(server.folder("input"),
                                                                                         "evil.mp3"))
    music_only = copy.deepcopy(prompt)  # no voice: speech has energy near the private tone's 1 kHz
    node_by_type(music_only, "FFmpegAssemble")[1]["inputs"].pop("narration", None)
    result = server.run(music_only)
    mp4 = output_files(server, result, node_by_type(music_only, "FFmpegAssemble")[0])[0]
    audio = decode_audio(mp4)
    assert tone_db(audio, 48000, TONE) < tone_db(audio, 48000, 440) - 30


def one_scene_clips_prompt(video_file: str) -> dict:
    """LoadVideo(file) → FFmpegAssemble as its only clip (a one-scene edited script)."""
    prompt = demo()
    product = node_by_type(prompt, "BrandBrief")[1]["inputs"]["product"]
    script = {"scenes": [{"duration": 3.0, "segment": "cta", "narration": "Acme. Shop now at acme.com.",
                          "on_screen_text": product, "visual_direction": "the product", "image_prompt": "a product",
                          "camera": "zoom_in", "transition": "cut"}]}
    node_by_type(prompt, "ScriptLLM")[1]["inputs"]["edited_script"] = json.dumps(script)
    prompt["20"] = {"class_type": "LoadVideo", "inputs": {"file": video_file}}
    a_id, a = node_by_type(prompt, "FFmpegAssemble")
    a["inputs"]["clips"] = ["20", 0]
    a["inputs"].pop("narration")
    a["inputs"]["subtitles"] = "off"
    for k in [k for k, v in prompt.items() if v["class_type"] in ("MotionClip", "SceneKeyImage", "SceneNarration")]:
        del prompt[k]
    return prompt


def test_a_playlist_named_mp4_as_a_clip_is_refused(server, baseline, private):
    upload(server, "evil.mp4", playlist(private))
    before = outputs_now(server)
    assert "evil.mp4" not in run_fails(server, one_scene_clips_prompt("evil.mp4"), "clips[0]:",
                                    "the file is an HLS playlist").splitlines()[0]
    assert outputs_now(server) == before
    # a real mp4 clip works through the same path, and its own picture is in the ad (not the private red)
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=320x240:d=4", "-c:v", "libx264", "-preset", "ultrafast",
           os.path.join(server.folder("input"), "real.mp4"))
    prompt = one_scene_clips_prompt("real.mp4")
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["logo_size"] = 0.0
    result = server.run(prompt)
    mp4 = output_files(server, result, node_by_type(prompt, "FFmpegAssemble")[0])[0]
    frame = decode_frames(mp4, 36, 64, start=1.5, count=1)[0].reshape(-1, 3).mean(axis=0)
    assert frame[2] > frame[0] + 60, frame  # blue, not red


def test_a_playlist_named_mp4_as_a_reference_is_refused(server, private):
    upload(server, "ref.mp4", playlist(private))
    prompt = {"1": {"class_type": "ReferenceAnalyze", "inputs": {"file": "ref.mp4"}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}}}
    assert "ref.mp4" not in run_fails(server, prompt, "the file is an HLS playlist").splitlines()[0]


# --- audio bombs ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def normal_growth(server, baseline):
    """Peak RSS growth of a normal small render (the yardstick for the audio cases)."""
    prompt = demo()
    with PeakRSS(server) as peak:
        server.run(prompt)
    return peak.growth


def test_a_playlist_of_200000_segments_is_refused_at_once(server, normal_growth, private):
    upload(server, "bomb.ogg", playlist(private, repeat=200000))
    prompt = demo()
    node_by_type(prompt, "MusicBed")[1]["inputs"]["track"] = "input/bomb.ogg"
    with PeakRSS(server) as peak:
        run_fails(server, prompt, "track:", "HLS playlist")
    assert peak.seconds < 240, peak.seconds
    assert peak.growth < normal_growth + 200 * 2**20, (peak.growth, normal_growth)


def test_a_30_minute_music_file_decodes_only_what_the_ad_needs(server, normal_growth, tmp_path):
    long = tmp_path / "long.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=1800:sample_rate=8000", "-c:a", "libmp3lame", "-b:a", "8k",
           "-ac", "1", str(long))
    upload(server, "long.mp3", long.read_bytes())
    prompt = demo()
    node_by_type(prompt, "MusicBed")[1]["inputs"]["track"] = "input/long.mp3"
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"].pop("narration", None)  # the bed alone is listened to
    with PeakRSS(server) as peak:
        result = server.run(prompt, timeout=400)
    # 30 min at 48 kHz stereo float is 690 MB (the old decode held it 3 times over); the bed needs 185 s (71 MB)
    assert peak.growth < normal_growth + 300 * 2**20, (peak.growth, normal_growth)
    assert peak.seconds < 400
    mp4 = output_files(server, result, node_by_type(prompt, "FFmpegAssemble")[0])[0]
    assert abs(float(ffprobe(mp4)["format"]["duration"]) - 3.0) < 0.1
    audio = decode_audio(mp4)
    assert tone_db(audio, 48000, 440) > tone_db(audio, 48000, 300) + 15  # the bed is in the ad


# --- work per prompt ------------------------------------------------------------------------------------

def test_200_copies_of_an_aspect_render_it_once(server, baseline):
    prompt = demo(extra_aspects=", ".join(["1:1"] * 200))
    result = server.run(prompt)
    mp4 = output_files(server, result, node_by_type(prompt, "FFmpegAssemble")[0])[0]
    stem = os.path.splitext(mp4)[0]
    made = sorted(p for p in outputs_now(server) if p.startswith(stem) and p.endswith(".mp4"))
    assert made == sorted([mp4, f"{stem}_1x1.mp4"]), made
    with open(stem + ".json", encoding="utf-8") as f:
        assert json.load(f)["encode"]["aspects"] == ["9:16", "1:1"]


def test_too_much_work_is_refused_before_any_encode(server, baseline):
    before = outputs_now(server)
    prompt = demo(webm=True, mov=True, extra_aspects="1:1, 16:9")
    with PeakRSS(server) as peak:
        msg = run_fails(server, prompt, "work per prompt", "3 formats (mp4, webm, mov)", "720×1280 + 720×720 + 1280×720",
                        "ADREEL_MAX_PIXEL_FRAMES")
    assert "LimitExceeded" in msg
    assert outputs_now(server) == before
    assert peak.seconds < 240


def test_get_components_of_a_lazy_clip_is_bounded(server, baseline):
    prompt = demo()
    m_id, _ = node_by_type(prompt, "MotionClip")
    prompt["30"] = {"class_type": "GetVideoComponents", "inputs": {"video": [m_id, 0]}}
    prompt["31"] = {"class_type": "PreviewImage", "inputs": {"images": ["30", 0]}}
    del prompt[node_by_type(prompt, "FFmpegAssemble")[0]]
    with PeakRSS(server) as peak:
        run_fails(server, prompt, "ADREEL_MAX_FRAMES_BYTES", "GiB")
    assert peak.growth < 300 * 2**20, peak.growth


def test_a_2x16384_frame_batch_is_fitted_without_absurd_allocations(server, baseline):
    tall = np.zeros((16384, 2, 3), np.uint8)
    tall[:, :, 0] = np.linspace(0, 255, 16384)[:, None]
    path = os.path.join(server.folder("input"), "tall.png")
    Image.fromarray(tall).save(path)
    prompt = demo()
    prompt["40"] = {"class_type": "LoadImage", "inputs": {"image": "tall.png"}}
    prompt["41"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["40", 0], "amount": 2}}
    node_by_type(prompt, "MotionClip")[1]["inputs"]["images"] = ["41", 0]
    with PeakRSS(server) as peak:
        result = server.run(prompt)
    assert peak.growth < 800 * 2**20, peak.growth  # each frame once scaled to 720 × 5.9 million px before
    mp4 = output_files(server, result, node_by_type(prompt, "FFmpegAssemble")[0])[0]
    assert abs(float(ffprobe(mp4)["format"]["duration"]) - 3.0) < 0.1


# --- non-finite numbers at /prompt ------------------------------------------------------------------------

def post_raw(server, text: str) -> tuple[int, dict]:
    req = urllib.request.Request(server.url + "/prompt", data=text.encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("node,field", [("FFmpegAssemble", "end_card_seconds"), ("FFmpegAssemble", "music_volume_db"),
                                        ("FFmpegAssemble", "logo_size"), ("MotionClip", "strength"),
                                        ("MotionClip", "source_fps"), ("BrandBrief", "duration_seconds"),
                                        ("ScriptLLM", "temperature")])
@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_floats_are_refused_at_prompt(server, node, field, token):
    prompt = demo()
    node_id, n = node_by_type(prompt, node)
    n["inputs"][field] = "__TOKEN__"
    text = json.dumps({"prompt": prompt}).replace('"__TOKEN__"', token)
    status, body = post_raw(server, text)
    assert status == 400, body
    errors = body["node_errors"][node_id]["errors"]
    details = " ".join(f"{e['message']} {e['details']}" for e in errors)
    assert field in details and ("finite" in details or "bigger" in details or "smaller" in details), details
    if token == "NaN":
        assert f"{field}: must be a finite number" in details
    assert not server.get_json("/queue")["queue_pending"]


def test_reference_floats_are_refused_too(server):
    prompt = {"1": {"class_type": "ReferenceAnalyze", "inputs": {"file": "(video input)", "threshold": "__T__"}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}}}
    status, body = post_raw(server, json.dumps({"prompt": prompt}).replace('"__T__"', "NaN"))
    assert status == 400 and "threshold: must be a finite number" in json.dumps(body), body


def test_a_nan_in_one_output_never_reaches_history_through_the_others(server, baseline):
    """ComfyUI queues a prompt whose other outputs are valid and stores the whole prompt in /history:
    AssetUpload(url_expiry_hours=NaN) next to a valid FFmpegAssemble must not put NaN there."""
    prompt = demo()
    a_id, _ = node_by_type(prompt, "FFmpegAssemble")
    _, up = node_by_type(load_api_workflow("brief_to_ad_upload.json"), "AssetUpload")
    prompt["90"] = {"class_type": "AssetUpload", "inputs": dict(up["inputs"], video=[a_id, 0], path=[a_id, 1],
                                                                url_expiry_hours="__T__")}
    status, body = post_raw(server, json.dumps({"prompt": prompt, "number": "__N__"})
                            .replace('"__T__"', "NaN").replace('"__N__"', "Infinity"))
    assert status == 200, body  # the ad itself is valid and runs …
    details = json.dumps(body["node_errors"]["90"])
    assert "url_expiry_hours: must be a finite number" in details, details  # … AssetUpload does not
    server.wait(body["prompt_id"], timeout=300)
    history = strict_history(server)  # no NaN anywhere in /history
    assert body["prompt_id"] in history
    assert "NaN" not in json.dumps(server.get_json("/queue"))


def test_a_value_in_range_still_passes_and_out_of_range_is_named(server):
    prompt = demo()
    node_by_type(prompt, "MotionClip")[1]["inputs"]["strength"] = 99.0
    status, body = post_raw(server, json.dumps({"prompt": prompt}))
    assert status == 400 and "strength: 99 is bigger than the maximum 3" in json.dumps(body), body
    # FFmpegAssemble takes its inputs as lists (is_input_list): the same check holds there
    prompt = demo(logo_size=5.0)
    status, body = post_raw(server, json.dumps({"prompt": prompt}))
    assert status == 400 and "logo_size: 5 is bigger than the maximum 0.6" in json.dumps(body), body
    prompt = demo(intro_seconds=-1.0)
    status, body = post_raw(server, json.dumps({"prompt": prompt}))
    assert status == 400 and "intro_seconds: -1 is smaller than the minimum 0" in json.dumps(body), body


# --- a poisoned or truncated cached input PNG -------------------------------------------------------------

def test_a_truncated_cached_logo_is_rewritten(server, baseline, tmp_path):
    logo = np.zeros((64, 128, 3), np.uint8)
    logo[:, :64] = (230, 20, 20)
    logo[:, 64:] = (20, 20, 230)
    buf = tmp_path / "logo.png"
    Image.fromarray(logo).save(buf)
    upload(server, "brandlogo.png", buf.read_bytes())
    digest = hashlib.sha256(logo.tobytes()).hexdigest()[:16]
    # an attacker (or a crash during the save) leaves a truncated PNG under the cached name
    upload(server, f"logo_{digest}.png", buf.read_bytes()[:40], kind="temp", subfolder="adreel_inputs")
    prompt = demo()
    prompt["50"] = {"class_type": "LoadImage", "inputs": {"image": "brandlogo.png"}}
    node_by_type(prompt, "BrandBrief")[1]["inputs"]["logo"] = ["50", 0]
    server.run(prompt)
    # the brief keeps its copy in AdReel's own folder: the upload into temp/ was never read
    cached = server.private_folder("inputs", f"logo_{digest}.png")
    with Image.open(cached) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), logo)
    assert not [f for f in os.listdir(os.path.dirname(cached)) if f.endswith(".part")]


# --- fonts -----------------------------------------------------------------------------------------------

def test_an_uploaded_font_file_is_refused(server):
    src = subprocess.run(["fc-match", "-f", "%{file}", "DejaVu Sans"], capture_output=True, text=True).stdout
    assert src.endswith(".ttf"), f"fonts-dejavu-core (installed by the set-up) is missing: fc-match gave {src!r}"
    with open(src, "rb") as f:
        upload(server, "evil.ttf", f.read())
    for spec, needle in (("input/evil.ttf", "names a font file AdReel may not read"),
                         (os.path.join(server.folder("input"), "evil.ttf"), "names a font file AdReel may not read"),
                         (src + "#abc", "must be a whole number")):
        prompt = demo(font=spec)
        assert "evil.ttf" not in run_fails(server, prompt, "font:", needle).splitlines()[0]


# --- degenerate images and audio --------------------------------------------------------------------------

def test_a_1x1_key_image_is_a_field_error(server):
    prompt = demo()
    prompt["60"] = {"class_type": "EmptyImage", "inputs": {"width": 1, "height": 1, "batch_size": 1, "color": 0}}
    node_by_type(prompt, "MotionClip")[1]["inputs"]["images"] = ["60", 0]
    msg = run_fails(server, prompt, "images:", "1×1 px image is too small")
    assert "cv2.error" not in msg and "ZeroDivisionError" not in msg


def test_an_oversized_logo_is_a_field_error(server):
    prompt = demo()
    prompt["61"] = {"class_type": "EmptyImage", "inputs": {"width": 2500, "height": 2500, "batch_size": 1,
                                                           "color": 0xFF0000}}
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["logo"] = ["61", 0]
    run_fails(server, prompt, "logo:", "2500×2500 px", "ADREEL_MAX_INPUT_PIXELS")
    prompt = demo()
    prompt["61"] = {"class_type": "EmptyImage", "inputs": {"width": 2500, "height": 2500, "batch_size": 1,
                                                           "color": 0xFF0000}}
    node_by_type(prompt, "BrandBrief")[1]["inputs"]["logo"] = ["61", 0]
    run_fails(server, prompt, "logo:", "ADREEL_MAX_INPUT_PIXELS")


def test_music_with_nan_samples_is_a_field_error(server, tmp_path):
    assert "LoadAudio" in server.get_json("/object_info/LoadAudio"), "ComfyUI's audio nodes did not load (torchaudio)"
    path = tmp_path / "nan.wav"
    data = np.full(48000 * 2, np.nan, "<f4")
    # a float WAV (format 3) whose samples are NaN, as LoadAudio reads it
    with open(path, "wb") as f:
        body = data.tobytes()
        f.write(b"RIFF" + (36 + len(body)).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little"))
        f.write((3).to_bytes(2, "little") + (1).to_bytes(2, "little") + (48000).to_bytes(4, "little"))
        f.write((48000 * 4).to_bytes(4, "little") + (4).to_bytes(2, "little") + (32).to_bytes(2, "little"))
        f.write(b"data" + len(body).to_bytes(4, "little") + body)
    upload(server, "nan.wav", path.read_bytes())
    prompt = demo()
    prompt["70"] = {"class_type": "LoadAudio", "inputs": {"audio": "nan.wav"}}
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["music"] = ["70", 0]
    run_fails(server, prompt, "music:", "NaN")


# --- % in the name with HLS, a failing render leaves nothing behind -----------------------------------------

def test_a_percent_in_the_prefix_with_hls_works(server, baseline):
    prompt = demo(hls=True, filename_prefix=f"AdReel/pc{uuid.uuid4().hex[:6]}%d")
    result = server.run(prompt)
    mp4 = output_files(server, result, node_by_type(prompt, "FFmpegAssemble")[0])[0]
    folder = os.path.splitext(mp4)[0] + "_hls"
    names = open(os.path.join(folder, "playlist.m3u8")).read().splitlines()
    segments = [n for n in names if n and not n.startswith("#")]
    assert segments and all(os.path.isfile(os.path.join(folder, s)) for s in segments), names
    ffprobe(os.path.join(folder, segments[0]))


def test_a_failing_render_stops_the_mix_and_leaves_no_sidecars(server, baseline):
    """The font fails after the subtitles were written and while the 8 s mix runs."""
    prefix = f"AdReel/fail{uuid.uuid4().hex[:6]}"
    prompt = demo(duration=8.0, filename_prefix=prefix, font="/nonexistent/font.ttf")
    run_fails(server, prompt, "font:")
    stem = os.path.basename(prefix)
    left = [p for p in outputs_now(server) if os.path.basename(p).startswith(stem)]
    assert left == [], left  # no orphaned .srt / .vtt (nor their .part)
    assert ffmpeg_children(server) == []
    # the render's work folder went with it (assembly works in AdReel's own folder, never in temp/)
    assert not [d for d in os.listdir(server.private_folder()) if d.startswith("assemble_")]
    assert not [d for d in os.listdir(server.folder("temp"))
                if d.startswith("adreel_") and d not in ("adreel_inputs", "adreel_keyimages")]  # uploads of inputs go there


# --- and at the end: the server still renders a normal ad -------------------------------------------------------

def test_zz_after_every_attack_a_normal_render_still_works(server):
    prompt = demo()
    result = server.run(prompt)
    mp4 = output_files(server, result, node_by_type(prompt, "FFmpegAssemble")[0])[0]
    assert abs(float(ffprobe(mp4)["format"]["duration"]) - 3.0) < 0.1
    strict_history(server)
