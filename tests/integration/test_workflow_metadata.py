"""The workflow travels inside the ad: a short draft render queued on a real ComfyUI through /prompt,
with the editor's workflow in ``extra_data.extra_pnginfo``, read back from the files with ffprobe.

The server runs with the harness's canary secrets in its environment; the workflow carries one of
them in a text widget (and in a Note), as a user who pasted a key — or whoever wrote a shared
workflow — would. The files must carry the workflow with the secret masked, and no file the server
writes for a user (output, temp) may hold it.
"""
from __future__ import annotations

import copy
import json
import os

import pytest

from harness import CANARY, CANARY_ENV, ComfyServer, load_api_workflow, node_by_type
from media import ffprobe
from nodes.engine.cloud.redaction import MASK
from workflow_format import api_to_ui

pytestmark = pytest.mark.comfy

SECRET = CANARY_ENV["ADREEL_CANARY_SECRET"]
KEY_SHAPED = "sk-proj-" + "Q7wX2mZ9" * 4


@pytest.fixture(scope="module")
def server():
    """A server of its own: the canary in a widget reaches /history (the prompt as sent), which the
    session server's leak check would rightly refuse; here only the files are the question."""
    s = ComfyServer()
    s.start()
    yield s
    leaks = s.canary_leaks()
    s.stop(check_canary=False)
    s.cleanup()
    bad = [p for p in leaks if p.split(os.sep)[0] in ("output", "temp", "input")]
    assert not bad, f"the canary reached files the server serves: {bad}"


@pytest.fixture(scope="module")
def object_info(server):
    return server.get_json("/object_info")


def draft_prompt(prefix: str, **assemble) -> dict:
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad.json"))
    _, brief = node_by_type(prompt, "BrandBrief")
    brief["inputs"].update(duration_seconds=4.0)
    _, split = node_by_type(prompt, "StoryboardSplit")
    split["inputs"]["resolution"] = "180p"
    _, asm = node_by_type(prompt, "FFmpegAssemble")
    asm["inputs"].update(preset="ultrafast", filename_prefix=prefix, end_card_seconds=1.0, **assemble)
    # a text widget holding a secret, in a node that goes nowhere (still part of the prompt and workflow)
    prompt["90"] = {"class_type": "PrimitiveString", "_meta": {"title": "notes"},
                    "inputs": {"value": f"my key is {SECRET} ok"}}
    return prompt


def editor_workflow(prompt: dict, object_info: dict) -> dict:
    """The UI workflow the editor would send with this prompt, plus a Note (UI only)."""
    ui = api_to_ui(prompt, object_info)
    ui["nodes"].append({"id": 91, "type": "Note", "pos": [0, 900], "size": [300, 120], "flags": {}, "order": 99,
                        "mode": 0, "properties": {}, "widgets_values": [f"token {SECRET}\napi {KEY_SHAPED}\n= ; # \\ 광고"]})
    ui["last_node_id"] = 91
    return ui


def minus_secrets(value):
    """What the file must hold: the value sent, with each secret masked as the redaction layer does."""
    text = json.dumps(value, ensure_ascii=False)
    text = text.replace(SECRET, MASK).replace(KEY_SHAPED, MASK)
    return json.loads(text)


def format_tags(path: str) -> dict:
    return {k.lower(): v for k, v in ffprobe(path)["format"].get("tags", {}).items()}


def moov_before_mdat(path: str) -> bool:
    order, pos, size_total = [], 0, os.path.getsize(path)
    with open(path, "rb") as f:
        while pos < size_total:
            f.seek(pos)
            head = f.read(16)
            size = int.from_bytes(head[:4], "big")
            if size == 1:
                size = int.from_bytes(head[8:16], "big")
            order.append(head[4:8])
            if size < 8:
                break
            pos += size
    return b"moov" in order and b"mdat" in order and order.index(b"moov") < order.index(b"mdat")


def saved_mp4(server, prompt, entry) -> str:
    node_id, _ = node_by_type(prompt, "FFmpegAssemble")
    item = entry["outputs"][node_id]["images"][0]
    return os.path.join(server.folder(item.get("type", "output")), item.get("subfolder", ""), item["filename"])


@pytest.fixture(scope="module")
def embedded(server, object_info):
    prompt = draft_prompt("AdReel/meta", webm=True, extra_aspects="1:1")
    # ComfyUI's own SaveVideo on MotionClip's lazy clips: their save_to(metadata=…) carries the same tags
    motion, _ = node_by_type(prompt, "MotionClip")
    prompt["95"] = {"class_type": "SaveVideo", "inputs": {"video": [motion, 0], "filename_prefix": "AdReel/lazy",
                                                         "format": "mp4", "codec": "h264"}}
    workflow = editor_workflow(prompt, object_info)
    pid = server.queue(prompt, extra_data={"extra_pnginfo": {"workflow": workflow}})
    entry = server.wait(pid, timeout=900)
    mp4 = saved_mp4(server, prompt, entry)
    stem = os.path.splitext(mp4)[0]
    files = {"mp4": mp4, "webm": f"{stem}.webm", "mp4 1:1": f"{stem}_1x1.mp4"}
    lazy = entry["outputs"]["95"]["images"]
    assert len(lazy) >= 2  # one clip per scene
    files["SaveVideo clip"] = os.path.join(server.folder("output"), lazy[0].get("subfolder", ""), lazy[0]["filename"])
    return prompt, workflow, files


def test_every_file_carries_the_prompt_and_workflow(embedded):
    prompt, workflow, files = embedded
    for kind, path in files.items():
        assert os.path.isfile(path), kind
        tags = format_tags(path)
        assert "prompt" in tags and "workflow" in tags, f"{kind}: tags {sorted(tags)}"
        assert json.loads(tags["workflow"]) == minus_secrets(workflow), kind
        assert json.loads(tags["prompt"]) == minus_secrets(prompt), kind
    for kind in ("mp4", "mp4 1:1", "SaveVideo clip"):
        assert moov_before_mdat(files[kind]), f"{kind}: the editor reads moov from the file's start"


def test_no_secret_in_the_files(embedded):
    _, _, files = embedded
    for kind, path in files.items():
        data = open(path, "rb").read()
        assert CANARY.encode() not in data and KEY_SHAPED.encode() not in data, kind
        assert b"my key is " + MASK.encode() + b" ok" in data, kind  # masked, not dropped: the rest is kept


def test_embed_workflow_off(server, object_info):
    prompt = draft_prompt("AdReel/nometa", embed_workflow=False)
    prompt.pop("90")
    pid = server.queue(prompt, extra_data={"extra_pnginfo": {"workflow": editor_workflow(prompt, object_info)}})
    entry = server.wait(pid, timeout=900)
    path = saved_mp4(server, prompt, entry)
    tags = format_tags(path)
    assert "prompt" not in tags and "workflow" not in tags, sorted(tags)
    assert moov_before_mdat(path)
