"""MotionClip's lazy VIDEO through ComfyUI's own video nodes, on whichever core the harness runs
(``$ADREEL_COMFYUI``): Save Video as MP4 and as WebM, Trim Video where the core has it, and Get
Video Components → Save Image. The Save Video inputs are built from the server's /object_info:
0.3.75 has plain ``format`` / ``codec`` combos; 0.33 has a dynamic combo whose children are flat,
dotted keys in API format (``"format": "webm", "format.codec": "auto"``).

Checked as a user would: ffprobe (container, codec, frame count, duration), the Matroska DocType
(a WebM is WebM, not an MP4 named .webm), and the pixels of the saved frames.
"""
from __future__ import annotations

import copy
import os

import numpy as np
import pytest
from PIL import Image

import media
from harness import load_api_workflow, node_by_type

pytestmark = [pytest.mark.comfy, pytest.mark.cores]

FPS = 24


def ebml_doctype(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(64)
    i = head.index(b"\x42\x82")
    return head[i + 3:i + 3 + (head[i + 2] & 0x7F)].decode()


def combo_options(spec: list) -> list:
    """A combo's options in /object_info: ``[[a, b], {…}]`` or ``["COMBO", {"options": [a, b]}]``."""
    return spec[0] if isinstance(spec[0], list) else spec[1]["options"]


def save_video_inputs(object_info: dict, container: str, codec: str = "auto") -> dict | None:
    """SaveVideo's inputs asking for ``container`` / ``codec`` on this core, or None when its Save Video
    cannot write that container."""
    spec = object_info["SaveVideo"]["input"]
    fmt = spec["required"]["format"]
    if fmt[0] == "COMBO" or isinstance(fmt[0], list):  # plain combos (0.3.75)
        codec_spec = spec["required"].get("codec") or spec.get("optional", {}).get("codec")
        if container not in combo_options(fmt) or codec not in combo_options(codec_spec):
            return None
        return {"format": container, "codec": codec}
    assert "DYNAMICCOMBO" in fmt[0], f"SaveVideo's format input is {fmt[0]!r}"
    option = next((o for o in fmt[1]["options"] if o["key"] == container), None)
    if option is None:
        return None
    inner = {**option["inputs"].get("required", {}), **option["inputs"].get("optional", {})}
    codecs = [o["key"] for o in inner["codec"][1]["options"]]
    if codec not in codecs:
        return None
    return {"format": container, "format.codec": codec}


def widget_defaults(object_info: dict, node: str) -> dict:
    """The default of every required widget input of ``node`` (this core's own choices)."""
    out = {}
    for name, spec in object_info[node]["input"]["required"].items():
        opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        if "default" in opts:
            out[name] = opts["default"]
        elif isinstance(spec[0], list) or spec[0] == "COMBO":
            out[name] = combo_options(spec)[0]
    return out


def saved(server, entry: dict, node_id: str) -> list[str]:
    out = entry["outputs"].get(node_id, {})
    items = out.get("images") or out.get("videos") or out.get("animated") or out.get("audio") or []
    return [os.path.join(server.folder(i.get("type", "output")), i.get("subfolder", ""), i["filename"])
            for i in items if isinstance(i, dict)]


@pytest.fixture(scope="module")
def object_info(comfy):
    return comfy.get_json("/object_info")


@pytest.fixture(scope="module")
def run(comfy, object_info):
    """One prompt: the demo's front half (brief → key image → MotionClip), 2 scenes at 180p/24 fps, its
    VIDEOs into core's video nodes. Returns (history entry, node ids, the Save Video choices made)."""
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad.json"))
    brief_id, brief = node_by_type(prompt, "BrandBrief")
    brief["inputs"]["duration_seconds"] = 4.0
    script_id, script = node_by_type(prompt, "ScriptLLM")
    script["inputs"]["backend"] = "template"
    split_id, split = node_by_type(prompt, "StoryboardSplit")
    split["inputs"].update(resolution="180p", fps=str(FPS))
    motion, _ = node_by_type(prompt, "MotionClip")
    key, _ = node_by_type(prompt, "SceneKeyImage")
    narration, _ = node_by_type(prompt, "SceneNarration")
    music, _ = node_by_type(prompt, "MusicBed")
    keep = {brief_id, script_id, split_id, motion, key, narration, music,
            *(k for k, v in prompt.items() if v["class_type"] == "BrandImage")}
    prompt = {k: v for k, v in prompt.items() if k in keep}
    # AdReel's own IMAGE and AUDIO objects in core's nodes: the key image (pixels kept in a PNG until
    # used), SceneNarration's and MusicBed's AUDIO
    mp4 = save_video_inputs(object_info, "mp4")
    prompt["90"] = {"class_type": "SaveImage", "inputs": {"images": [key, 0], "filename_prefix": "core/key"}}
    prompt["91"] = {"class_type": "CreateVideo", "inputs": {"images": [key, 0], "fps": 24.0}}
    prompt["92"] = {"class_type": "SaveVideo", "inputs": {"video": ["91", 0], "filename_prefix": "core/still", **mp4}}
    prompt["93"] = {"class_type": "PreviewAudio", "inputs": {"audio": [narration, 0]}}
    prompt["94"] = {"class_type": "SaveAudio", "inputs": {**widget_defaults(object_info, "SaveAudio"),
                                                         "audio": [music, 0], "filename_prefix": "core/music"}}

    choices = {}
    for node_id, (container, codec) in {"60": ("mp4", "auto"), "61": ("webm", "auto"),
                                        "62": ("webm", "av1"), "63": ("mkv", "auto")}.items():
        inputs = save_video_inputs(object_info, container, codec)
        if inputs is not None:
            choices[node_id] = (container, codec)
            prompt[node_id] = {"class_type": "SaveVideo", "inputs": {"video": [motion, 0],
                                                                     "filename_prefix": f"core/{container}_{codec}",
                                                                     **inputs}}
    prompt["70"] = {"class_type": "GetVideoComponents", "inputs": {"video": [motion, 0]}}
    prompt["71"] = {"class_type": "SaveImage", "inputs": {"images": ["70", 0], "filename_prefix": "core/frames"}}
    # and back: the clip's frames, its fps and the scene's narration into core's Create Video
    prompt["72"] = {"class_type": "CreateVideo", "inputs": {"images": ["70", 0], "fps": ["70", 2],
                                                           "audio": [narration, 0]}}
    prompt["73"] = {"class_type": "SaveVideo", "inputs": {"video": ["72", 0], "filename_prefix": "core/remade",
                                                         **save_video_inputs(object_info, "mp4")}}
    if "Video Slice" in object_info:  # core's Trim Video (0.33 on): as_trimmed on the lazy clip
        prompt["80"] = {"class_type": "Video Slice", "inputs": {"video": [motion, 0], "start_time": 0.5,
                                                               "duration": 1.0, "strict_duration": True}}
        prompt["81"] = {"class_type": "SaveVideo", "inputs": {"video": ["80", 0], "filename_prefix": "core/trim",
                                                             **save_video_inputs(object_info, "mp4")}}
    result = comfy.run(prompt, timeout=600)
    return result.history, choices


def test_save_video_writes_what_was_asked(comfy, run):
    entry, choices = run
    assert "60" in choices, "every core's Save Video writes MP4"
    scenes = len(saved(comfy, entry, "60"))
    assert scenes >= 2
    expected = {("mp4", "auto"): (None, "h264"), ("webm", "auto"): ("webm", "vp9"),
                ("webm", "av1"): ("webm", "av1"), ("mkv", "auto"): ("matroska", "h264")}
    for node_id, choice in choices.items():
        files = saved(comfy, entry, node_id)
        assert len(files) == scenes, f"{choice}: one file per scene, got {files}"
        doctype, codec = expected[choice]
        for path in files:
            assert path.endswith("." + choice[0])
            info = media.ffprobe(path)
            v = media.stream(info, "video")
            assert v["codec_name"] == codec, (choice, v["codec_name"])
            if doctype is None:
                assert "mp4" in info["format"]["format_name"]
            else:
                assert ebml_doctype(path) == doctype, choice
            frames = int(v["nb_read_frames"])
            assert frames >= FPS and float(info["format"]["duration"]) == pytest.approx(frames / FPS, abs=0.002)
            assert (v["width"], v["height"]) == (180, 320)  # 9:16 at 180p


def test_trim_video_renders_exactly_the_window(comfy, run, object_info):
    if "Video Slice" not in object_info:
        pytest.skip("this core has no Trim Video node (0.3.75)")
    entry, _ = run
    files = saved(comfy, entry, "81")
    full = saved(comfy, entry, "60")
    assert len(files) == len(full)
    for trimmed, whole in zip(files, full):
        v = media.stream(media.ffprobe(trimmed), "video")
        assert int(v["nb_read_frames"]) == FPS  # 1.0 s at 24 fps
        a = media.decode_frames(trimmed, 180, 320)
        b = media.decode_frames(whole, 180, 320)
        right, wrong = media.mean_abs_diff(a, b[12:36]), media.mean_abs_diff(a, b[:24])
        assert right < 4 and right < wrong, (right, wrong)  # frames 0.5 s … 1.5 s of the clip


def test_get_video_components_gives_the_clip_frames(comfy, run):
    entry, _ = run
    pngs = saved(comfy, entry, "71")
    mp4s = saved(comfy, entry, "60")
    n_frames = [int(media.stream(media.ffprobe(p), "video")["nb_read_frames"]) for p in mp4s]
    assert len(pngs) == sum(n_frames)  # every frame of both scenes, as IMAGE
    first = np.asarray(Image.open(pngs[0]).convert("RGB"))
    assert first.shape == (320, 180, 3)
    decoded = media.decode_frames(mp4s[0], 180, 320, count=1)[0]
    assert media.mean_abs_diff(first, decoded) < 6
    assert float(first.std()) > 5  # a picture, not a flat frame


def test_adreel_images_and_audio_work_in_core_nodes(comfy, run):
    """The key image (a PNG-backed IMAGE) in Save Image and Create Video; SceneNarration's and MusicBed's
    AUDIO in Preview Audio, Save Audio and Create Video."""
    entry, _ = run
    keys = saved(comfy, entry, "90")
    scenes = len(saved(comfy, entry, "60"))
    assert len(keys) == scenes
    for path in keys:
        img = np.asarray(Image.open(path).convert("RGB"))
        assert img.shape == (320, 180, 3) and float(img.std()) > 5
    for path, key in zip(saved(comfy, entry, "92"), keys):
        v = media.stream(media.ffprobe(path), "video")
        assert (v["width"], v["height"]) == (180, 320) and int(v["nb_read_frames"]) == 1
        frame = media.decode_frames(path, 180, 320)[0]
        assert media.mean_abs_diff(frame, np.asarray(Image.open(key).convert("RGB"))) < 6
    previews = saved(comfy, entry, "93")
    assert len(previews) == scenes
    for path in previews:
        a = media.stream(media.ffprobe(path), "audio")
        assert float(a.get("duration") or media.ffprobe(path)["format"]["duration"]) > 0.3
        assert np.abs(media.decode_audio(path)).max() > 0.05  # a voice, not silence
    (music,) = saved(comfy, entry, "94")
    assert float(media.ffprobe(music)["format"]["duration"]) > 3
    remade = saved(comfy, entry, "73")
    assert len(remade) == scenes
    for path, clip in zip(remade, saved(comfy, entry, "60")):
        info = media.ffprobe(path)
        v, a = media.stream(info, "video"), media.stream(info, "audio")
        assert int(v["nb_read_frames"]) == int(media.stream(media.ffprobe(clip), "video")["nb_read_frames"])
        assert a["codec_name"] == "aac" and np.abs(media.decode_audio(path)).max() > 0.05
