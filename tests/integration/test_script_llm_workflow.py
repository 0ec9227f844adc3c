"""ScriptLLM and ReferenceAnalyze in a real ComfyUI, against local fake Ollama / OpenAI-compatible servers.

What a user sees: the shipped Ollama workflow renders an ad from the LLM's
script (and falls back visibly, still rendering, when no Ollama runs); a model
the editor never listed runs headless; a missing model is a clear error; the
seed decides the script and ComfyUI's cache reuses it; an edited script
replaces the generation; a reference clip's cuts set the new script's pacing.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess

import pytest

from fakes.llm_servers import HANG, FakeOllama, FakeOpenAICompatible, PlanModel, closed_url
from harness import PromptError, load_api_workflow, node_by_type, output_files
from media import ffprobe, frame_at, ocr, similarity, stream
from nodes.engine.media.layout import frame_layout
from nodes.engine.models import Brief
from nodes.engine.script import write_template_script

pytestmark = pytest.mark.comfy

BRIEF = {"brand": "Acme", "product": "RoboVac X2", "audience": "busy parents", "goal": "drive sales",
         "duration_seconds": 8.0, "tone": "confident", "aspect_ratio": "9:16", "language": "en",
         "brand_colors": "#1E3A8A, #F59E0B, #10B981", "cta": "Shop now at acme.com", "channels": "tiktok"}


@pytest.fixture(scope="module")
def fake():
    with FakeOllama(models=("qwen2.5:7b", "llama3.2:3b", "adreel-unlisted:latest"), hang_seconds=30) as f:
        yield f


@pytest.fixture
def ollama(fake):
    return fake.fresh()


def script_prompt(host: str, seed: int = 1, **script_inputs) -> dict:
    """BrandBrief → ScriptLLM → PreviewAny (shows script_json)."""
    inputs = {"brief": ["1", 0], "backend": "ollama", "seed": seed, "model": "qwen2.5:7b", "ollama_host": host,
              "timeout_seconds": 20.0}
    inputs.update(script_inputs)
    return {
        "1": {"class_type": "BrandBrief", "inputs": dict(BRIEF)},
        "2": {"class_type": "ScriptLLM", "inputs": inputs},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
    }


def script_of(result, node="2") -> dict:
    return result.ui(node)["adreel_script"][0]


def summary_of(result, node="2") -> str:
    return result.ui(node)["text"][0]


def ollama_workflow(host: str, **brief) -> dict:
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad_ollama.json"))
    node_by_type(prompt, "BrandBrief")[1]["inputs"].update(brief)
    node_by_type(prompt, "ScriptLLM")[1]["inputs"].update(ollama_host=host, timeout_seconds=20.0)
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"]["resolution"] = "720p"
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["preset"] = "veryfast"
    return prompt


def render(comfy, prompt):
    result = comfy.run(prompt)
    node_id, _ = node_by_type(prompt, "FFmpegAssemble")
    files = [f for f in output_files(comfy, result, node_id) if f.endswith(".mp4")]
    assert len(files) == 1 and os.path.isfile(files[0]), result.ui(node_id)
    return result, files[0]


def read_scene_text(path: str, scene: dict) -> str:
    w, h = 720, 1280
    box = frame_layout(w, h).headline
    t = scene["start"] + 0.6 * (scene["end"] - scene["start"])
    return ocr(frame_at(path, t, w, h)[box.y:box.y + box.h, box.x:box.x + box.w])


# ------------------------------------------------------------------ the shipped Ollama workflow
def test_ollama_workflow_renders_the_llms_script(comfy, ollama):
    prompt = ollama_workflow(ollama.url, duration_seconds=6.0)
    script_id, _ = node_by_type(prompt, "ScriptLLM")
    result, path = render(comfy, prompt)
    script = script_of(result, script_id)
    assert script["source"] == "ollama:qwen2.5:7b" and script["title"].startswith("LLM:")
    (chat,) = ollama.chats()
    assert chat.body["stream"] is False and chat.body["format"]["type"] == "object"
    assert chat.body["keep_alive"] == "10m" and chat.body["options"]["seed"] == 7
    info = ffprobe(path)
    assert stream(info, "video")["codec_name"] == "h264"
    assert float(info["format"]["duration"]) >= 6.0 - 0.1
    # the LLM's own words are on screen (the template would have written something else)
    first = script["scenes"][0]
    template = write_template_script(Brief(**{**BRIEF, "duration_seconds": 6.0, "channels": ["tiktok"]}), 7)
    assert first["on_screen_text"] != template.scenes[0].on_screen_text
    assert similarity(read_scene_text(path, first), first["on_screen_text"]) >= 0.8


def test_ollama_workflow_falls_back_visibly_when_no_ollama_runs(comfy):
    prompt = ollama_workflow(closed_url(), duration_seconds=5.0)
    script_id, _ = node_by_type(prompt, "ScriptLLM")
    result, path = render(comfy, prompt)
    text = summary_of(result, script_id)
    assert text.startswith("FELL BACK TO THE TEMPLATE — the Ollama server in ollama_host") and "not reachable" in text
    script = script_of(result, script_id)
    # the template's words for the brief the workflow really sent (its own fields and channels)
    sent = node_by_type(prompt, "BrandBrief")[1]["inputs"]
    brief = Brief(**{**{k: sent[k] for k in BRIEF}, "channels": [c.strip() for c in sent["channels"].split(",")]})
    expected = write_template_script(brief, 7)
    assert script["source"] == "template" and script["notes"][0].startswith("fallback:")
    assert [s["on_screen_text"] for s in script["scenes"]] == [s.on_screen_text for s in expected.scenes]
    manifest = json.load(open(os.path.splitext(path)[0] + ".json", encoding="utf-8"))
    assert "fallback:" in json.dumps(manifest)  # the reason travels with the ad
    assert similarity(read_scene_text(path, script["scenes"][0]), expected.scenes[0].on_screen_text) >= 0.8


# ------------------------------------------------------------------ models
def test_a_model_the_editor_never_listed_runs_headless(comfy, ollama):
    options = comfy.get_json("/object_info/ScriptLLM")["ScriptLLM"]["input"]["optional"]["model"][1]["options"]
    assert "adreel-unlisted:latest" not in options
    result = comfy.run(script_prompt(ollama.url, model="adreel-unlisted:latest"))
    assert script_of(result)["source"] == "ollama:adreel-unlisted:latest"
    assert ollama.chats()[0].body["model"] == "adreel-unlisted:latest"


def test_a_missing_model_is_a_clear_error_listing_the_servers_models(comfy, ollama):
    with pytest.raises(PromptError) as exc:
        comfy.run(script_prompt(ollama.url, model="mistral:7b"))
    err = next(d for k, d in exc.value.details["status"]["messages"] if k == "execution_error")
    assert err["node_type"] == "ScriptLLM"
    assert err["exception_message"].startswith("model: the Ollama server in ollama_host has no model of the name")
    assert "mistral" not in err["exception_message"]  # the workflow's text is not repeated
    assert "adreel-unlisted:latest, llama3.2:3b, qwen2.5:7b" in err["exception_message"]
    assert comfy.alive()


def test_the_models_route_never_asks_a_host_the_request_names(comfy, ollama):
    """Only the configured OLLAMA_HOST is listed (the listing itself: test_security_llm.py, the models route)."""
    import urllib.error
    import urllib.request
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(comfy.url + "/adreel/ollama/models?host=" + ollama.url, timeout=30)
    assert exc.value.code == 400
    assert not any(r.path == "/api/tags" for r in ollama.requests)
    spec = comfy.get_json("/object_info/ScriptLLM")["ScriptLLM"]["input"]["optional"]["model"]
    assert "adreel-unlisted:latest" not in spec[1]["options"]


def test_openai_compatible_backend_in_comfyui(comfy):
    with FakeOpenAICompatible(models=("local-model",)) as server:
        result = comfy.run(script_prompt("", backend="openai", openai_model="local-model",
                                         openai_base_url=server.url + "/v1"))
        assert script_of(result)["source"] == "openai:local-model"
        assert server.chats()[0].body["response_format"]["type"] == "json_schema"


# ------------------------------------------------------------------ variants and the cache
def test_seed_variants_are_distinct_and_the_same_seed_is_cached(comfy, ollama):
    """What a batch count does in the editor: one prompt per seed (control after generate)."""
    prompt = ollama_workflow(ollama.url, duration_seconds=3.0)
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["preset"] = "ultrafast"
    script_id, _ = node_by_type(prompt, "ScriptLLM")
    ads, scripts = [], []
    for seed in (101, 102, 103):
        p = copy.deepcopy(prompt)
        p[script_id]["inputs"]["seed"] = seed
        result, path = render(comfy, p)
        ads.append(hashlib.sha256(open(path, "rb").read()).hexdigest())
        scripts.append(json.dumps(script_of(result, script_id)["scenes"]))
    assert len(set(scripts)) == 3, scripts
    assert len(set(ads)) == 3  # three distinct ads
    assert [r.body["options"]["seed"] for r in ollama.chats()] == [101, 102, 103]
    # the same brief and seed again: ComfyUI reuses the script, the LLM is not asked
    p = copy.deepcopy(prompt)
    p[script_id]["inputs"]["seed"] = 103
    result = comfy.run(p)
    cached = [d["nodes"] for k, d in result.history["status"]["messages"] if k == "execution_cached"]
    assert cached and script_id in cached[0]
    assert len(ollama.chats()) == 3
    # an older variant is out of ComfyUI's (last-prompt) cache: asked again, the seed gives the same script
    p[script_id]["inputs"]["seed"] = 101
    result = comfy.run(p)
    assert json.dumps(script_of(result, script_id)["scenes"]) == scripts[0]


def test_a_fallback_is_not_cached_the_next_run_asks_again(comfy, ollama):
    ollama.script(PlanModel("prose"), PlanModel("prose"))
    first = comfy.run(script_prompt(ollama.url, seed=55, max_attempts=2))
    assert script_of(first)["source"] == "template"
    second = comfy.run(script_prompt(ollama.url, seed=55, max_attempts=2))
    assert script_of(second)["source"] == "ollama:qwen2.5:7b"
    assert len(ollama.chats()) == 3


# ------------------------------------------------------------------ editing
def test_an_edited_script_replaces_the_generation(comfy, ollama):
    generated = script_of(comfy.run(script_prompt(ollama.url, seed=77)))
    edited = copy.deepcopy(generated)
    edited["scenes"][0]["on_screen_text"] = "Edited by hand"
    asked = len(ollama.chats())
    result = comfy.run(script_prompt(ollama.url, seed=77, edited_script=json.dumps(edited)))
    script = script_of(result)
    assert script["source"] == "edited" and script["scenes"][0]["on_screen_text"] == "Edited by hand"
    assert json.loads(result.ui("3")["text"][0])["scenes"][0]["on_screen_text"] == "Edited by hand"
    assert len(ollama.chats()) == asked  # no LLM call for an edit

    edited["scenes"][1]["camera"] = "dolly"
    with pytest.raises(PromptError) as exc:
        comfy.run(script_prompt(ollama.url, seed=77, edited_script=json.dumps(edited)))
    assert "edited_script.scenes[1].camera: is not one of zoom_in" in str(exc.value)


# ------------------------------------------------------------------ reference pacing
def make_reference(path: str) -> list[float]:
    """A 9:16 clip with cuts at known frames (25 fps): returns the cut times."""
    shots = [("testsrc2", 40), ("mandelbrot", 30), ("smptebars", 55), ("rgbtestsrc", 45)]
    cmd = ["ffmpeg", "-v", "error", "-y"]
    for src, _ in shots:
        cmd += ["-f", "lavfi", "-i", f"{src}=s=180x320:r=25"]
    chains = [f"[{i}:v]trim=end_frame={n},setpts=PTS-STARTPTS,setsar=1,format=yuv420p[v{i}]"
              for i, (_, n) in enumerate(shots)]
    cmd += ["-filter_complex", ";".join(chains) + ";" + "".join(f"[v{i}]" for i in range(len(shots)))
            + f"concat=n={len(shots)}:v=1:a=0[out]", "-map", "[out]", "-c:v", "libx264", "-pix_fmt", "yuv420p", path]
    subprocess.run(cmd, check=True, timeout=120)
    cuts, n = [], 0
    for _, frames in shots[:-1]:
        n += frames
        cuts.append(n / 25)
    return cuts


def test_reference_pacing_flows_into_the_script(comfy, ollama):
    cuts = make_reference(os.path.join(comfy.folder("input"), "adreel_reference.mp4"))
    prompt = {
        "1": {"class_type": "BrandBrief", "inputs": dict(BRIEF, duration_seconds=6.8)},
        "10": {"class_type": "ReferenceAnalyze", "inputs": {"file": "adreel_reference.mp4",
                                                             "structure": "hook, problem, solution, cta"}},
        "11": {"class_type": "LoadVideo", "inputs": {"file": "adreel_reference.mp4"}},
        "12": {"class_type": "ReferenceAnalyze", "inputs": {"file": "(video input)", "video": ["11", 0]}},
        "13": {"class_type": "PreviewAny", "inputs": {"source": ["12", 1]}},
        "2": {"class_type": "ScriptLLM", "inputs": {"brief": ["1", 0], "backend": "ollama", "seed": 3,
                                                    "model": "qwen2.5:7b", "ollama_host": ollama.url,
                                                    "reference": ["10", 0]}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
    }
    result = comfy.run(prompt)
    for node in ("10", "12"):
        assert f"cuts at {', '.join(f'{c:.2f}' for c in cuts)} s" in result.ui(node)["text"][0]
    from_video = json.loads(result.ui("13")["text"][0])
    assert from_video["shot_count"] == 4 and from_video["aspect_ratio"] == "9:16"
    script = script_of(result)
    assert [s["segment"] for s in script["scenes"]] == ["hook", "problem", "solution", "cta"]
    starts = [s["start"] for s in script["scenes"][1:]]
    # the LLM keeps the pacing within the bar's tolerance (the fake nudges its first cut by 0.1 s)
    for start, cut in zip(starts, cuts):
        assert abs(start - cut) <= 0.3, (starts, cuts)
    assert "exactly 4 scenes" in ollama.chats()[0].body["messages"][1]["content"]

    with pytest.raises(PromptError) as exc:
        comfy.run({"10": {"class_type": "ReferenceAnalyze", "inputs": {"file": "../../etc/passwd"}},
                   "13": {"class_type": "PreviewAny", "inputs": {"source": ["10", 1]}}})
    assert exc.value.status == 400 and "is not a file in ComfyUI's input folder" in str(exc.value)


def test_an_interrupt_stops_a_waiting_llm_call(comfy, ollama):
    import time
    ollama.script(HANG)
    pid = comfy.queue(script_prompt(ollama.url, seed=909, timeout_seconds=120.0))
    deadline = time.monotonic() + 60
    while not ollama.chats() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ollama.chats(), "the LLM was never asked"
    comfy.interrupt()
    with pytest.raises(PromptError) as exc:
        comfy.wait(pid, timeout=60)  # well before the 120 s timeout
    assert "interrupted at node 2 (ScriptLLM)" in str(exc.value)
    assert comfy.alive()
