"""A brand kit applied in a real ComfyUI: the kit is saved through ``PUT /adreel/brands/{name}`` (hostile
names and bodies refused there, naming the field), and the shipped demo workflow with only ``brand`` set to
the kit's name — as the fleet and the job API send it — renders an ad whose colours, logo, voice and CTA
come from the kit: the end card's pixels are the kit's palette, the kit's logo is found by template
matching where the demo's own logo would be, the manifest's voices are the kit's, and OCR reads the kit's CTA.

Its script is asked of an OpenAI-compatible LLM (the contract-faithful fake on loopback): the passage of the
kit's guideline document relevant to the brief reaches it, within ``context_size``; its answers leave the
kit's legal line out, the repair names the line, and the template that takes over honours the kit.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fakes.llm_servers import FakeOpenAICompatible
from harness import load_api_workflow, node_by_type, output_files
from nodes.engine.script.context import estimate_messages
from media import ffprobe, frame_at, stream
from test_demo_visuals import best_match, geometric, read_text, small

pytestmark = [pytest.mark.comfy, pytest.mark.cores]  # the brands folder is registered with each core
KIT = {"name": "Zephyr", "palette": ["#0A7E3D", "#F2C500"], "logo": "logo.png", "voice": "espeak-ng",
       "tone": "calm", "cta": "Visit zephyr.example today", "words_never": ["cheap"],
       "legal_lines": ["Terms apply."]}
GREEN = np.array([10, 126, 61])
GUIDE = """# Zephyr guidelines

## Coffee
Daybreak Espresso is roasted in small batches every Monday; early risers should hear that it is ready
before sunrise.

## Vacuum cleaners
RoboVac claims must cite the 55 dB night mode and never promise a spotless home.
"""


def kit_logo() -> Image.Image:
    """A logo nothing else in the ad looks like: a white badge with a checker and a ring."""
    im = Image.new("RGBA", (360, 180), (255, 255, 255, 255))
    d = ImageDraw.Draw(im)
    for i in range(6):
        for j in range(3):
            if (i + j) % 2:
                d.rectangle((10 + i * 30, 15 + j * 50, 40 + i * 30, 65 + j * 50), fill=(20, 20, 120, 255))
    d.ellipse((215, 25, 345, 155), outline=(200, 30, 30, 255), width=18)
    return im


@pytest.fixture(scope="module")
def llm():
    with FakeOpenAICompatible(models=("local-model",)) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(comfy):
    """The session's plain server (its operator allows the local LLM); the kits this module saves go at its end."""
    brands = os.path.join(comfy.folder("models"), "brands")
    assert not os.path.isdir(brands) or not os.listdir(brands), "another module left brand kits on the plain server"
    yield comfy
    shutil.rmtree(brands, ignore_errors=True)


def request(server, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(server.url + path, data=body, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"raw": raw.decode(errors="replace")}


@pytest.fixture(scope="module")
def saved(server):
    """The kit, saved as the editor saves it (PUT), its logo put beside it by the operator."""
    answer = request(server, "PUT", "/adreel/brands/Zephyr", json.dumps(KIT).encode())
    if answer[0] == 200:
        folder = os.path.join(server.folder("models"), "brands", "Zephyr")
        kit_logo().save(os.path.join(folder, "logo.png"))
        with open(os.path.join(folder, "guidelines.md"), "w", encoding="utf-8") as f:
            f.write(GUIDE)
    return answer


def test_kits_are_saved_and_hostile_ones_refused_over_http(server, saved):
    brands = os.path.join(server.folder("models"), "brands")
    assert saved == (200, {"name": "Zephyr", "saved": True})
    assert request(server, "GET", "/adreel/brands") == (200, {"brands": ["Zephyr"]})
    status, got = request(server, "GET", "/adreel/brands/Zephyr")
    assert status == 200 and got["palette"] == KIT["palette"] and got["cta"] == KIT["cta"]
    # the editor's BrandBrief lists it
    options = server.get_json("/object_info/BrandBrief")["BrandBrief"]["input"]["optional"]["brand_kit"]
    assert "Zephyr" in json.dumps(options)

    hostile = [
        ("/adreel/brands/..%2F..%2Fevil", json.dumps({"name": "x"}).encode(), (400, 404)),
        ("/adreel/brands/.hidden", b"{}", (400,)),
        ("/adreel/brands/Evil", b"{not json", (400,)),
        ("/adreel/brands/Evil", json.dumps({"palette": "green"}).encode(), (400,)),
        ("/adreel/brands/Evil", json.dumps({"logo": "../../../etc/passwd"}).encode(), (400,)),
        ("/adreel/brands/Evil", b'{"tone": "' + b"x" * 70000 + b'"}', (413,)),
    ]
    for path, data, codes in hostile:
        status, body = request(server, "PUT", path, data)
        assert status in codes, (path, status, body)
        assert "passwd" not in json.dumps(body) and "green" not in json.dumps(body)
    assert request(server, "PUT", "/adreel/brands/Evil", json.dumps({"palette": "green"}).encode())[1]["field"] \
        == "body.palette"
    assert sorted(os.listdir(brands)) == ["Zephyr"]               # nothing written for the refused ones
    assert request(server, "GET", "/adreel/brands/Nobody")[0] == 404
    assert server.alive()


def test_the_demo_with_the_brand_set_to_a_kit_renders_the_kits_look_voice_and_cta(server, saved, llm):
    assert saved[0] == 200
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad.json"))
    _, brief = node_by_type(prompt, "BrandBrief")
    brief["inputs"].update(brand="Zephyr", duration_seconds=8.0)      # nothing else: the kit does the rest
    node_by_type(prompt, "ScriptLLM")[1]["inputs"].update(
        backend="openai", openai_base_url=llm.url + "/v1", openai_model="local-model", api_key_env="none",
        context_size=4096, max_attempts=2)
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"]["resolution"] = "720p"
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["preset"] = "veryfast"
    result = server.run(prompt, timeout=1800)
    (path,) = output_files(server, result, node_by_type(prompt, "FFmpegAssemble")[0])
    v = stream(ffprobe(path), "video")
    assert (v["width"], v["height"]) == (720, 1280)
    manifest = json.load(open(os.path.splitext(path)[0] + ".json", encoding="utf-8"))
    fps = manifest["storyboard"]["fps"]

    # the voice: the kit's (espeak-ng), where the demo speaks with Piper
    assert manifest["voices"] and all(v["voice"].startswith("espeak-ng en") for v in manifest["voices"]), \
        manifest["voices"]
    # the LLM got the guideline's passage on coffee (the brief's product), not the one on vacuums, within
    # its context; its answers lacked the legal line, the repair named it, and the template took over
    first, repair = (r.body for r in llm.chats()[:2])
    sent = "\n".join(m["content"] for m in first["messages"])
    assert "roasted in small batches every Monday" in sent and "55 dB" not in sent
    assert estimate_messages(first["messages"]) + first["max_tokens"] <= 4096
    assert 'leaves out the required legal line "Terms apply."' in repair["messages"][-1]["content"]
    assert any(n.startswith("fallback:") for n in manifest["storyboard"]["notes"]), manifest["storyboard"]["notes"]
    # the script honours the kit: its CTA closes it, its legal line is on the last card, no banned word
    scenes = manifest["storyboard"]["scenes"]
    assert KIT["cta"] in scenes[-1]["on_screen_text"] and "Terms apply." in scenes[-1]["on_screen_text"]
    assert "cheap" not in json.dumps(scenes).casefold()

    end = frame_at(path, 8.0 - 3 / fps, 720, 1280)
    # the colours: the end card's background is the kit's green, its button the kit's yellow
    top = end[60:200].reshape(-1, 3).astype(float).mean(axis=0)
    assert np.abs(top - GREEN).max() < 45 and top[1] > top[0] + 50, top
    yellow = (np.abs(end.astype(int) - [242, 197, 0]).max(axis=2) < 40).mean()
    assert yellow > 0.02, yellow
    # the logo: the kit's (a checker and a ring, nothing like the demo's roundel), above the packshot
    logo = np.asarray(kit_logo().convert("RGB"))
    score, (x, y, w, h) = best_match(small(end), logo, geometric(720 / 3 * 0.1, 720 / 3 * 0.8, 1.045))
    assert score > 0.8 and (y + h) * 3 < 1280 * 0.25, (score, y, h)
    # the call to action: the kit's, read by OCR on the end card's button
    got, read = read_text(end[int(1280 * 0.5):int(1280 * 0.85)], KIT["cta"])
    assert got >= 0.85, read
