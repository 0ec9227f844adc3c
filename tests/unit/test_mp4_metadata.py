"""The workflow inside the video (engine: mp4_metadata + the one ffmpeg pass): tags where ComfyUI's
editor looks for them, JSON that parses back to what was given, and no secret in them."""
import json
import os
import subprocess

import numpy as np
import pytest

from media import ffprobe
from nodes.engine.assembly import metadata as mp4_metadata
from nodes.engine.assembly.encode import AssemblyExtras, EncodeSettings, assemble
from nodes.engine.assembly.formats import ClipFormat, write_clip
from nodes.engine.cloud.redaction import MASK, register_secret
from nodes.engine.models import Brief
from nodes.engine.motion.camera import CameraMoveClip
from nodes.engine.script import write_template_script
from nodes.engine.storyboard import build_storyboard

W, H = 160, 284


def storyboard(duration=3.0):
    b = Brief(brand="Acme", product="Vac", cta="Buy", duration_seconds=duration)
    sb = build_storyboard(b, write_template_script(b, 0), fps=24)
    return sb.model_copy(update={"width": W, "height": H})


def sources(sb):
    return [CameraMoveClip(np.full((H, W, 3), (40 * i % 255, 120, 200), np.uint8), "zoom_in", s.frame_count, sb.fps, W, H)
            for i, s in enumerate(sb.scenes)]


def tags_of(path):
    return {k.lower(): v for k, v in ffprobe(path)["format"].get("tags", {}).items()}


def top_level_boxes(path):
    """(type, offset) of the file's top-level ISO BMFF boxes."""
    out, pos = [], 0
    size_total = os.path.getsize(path)
    with open(path, "rb") as f:
        while pos < size_total:
            f.seek(pos)
            head = f.read(16)
            size, kind = int.from_bytes(head[:4], "big"), head[4:8].decode("latin-1")
            if size == 1:
                size = int.from_bytes(head[8:16], "big")
            out.append((kind, pos))
            if size < 8:
                break
            pos += size
    return out


WORKFLOW = {"last_node_id": 2, "nodes": [
    {"id": 1, "type": "BrandBrief", "widgets_values": ["Acme = best; #1 \\ café 광고\nnew line", 3.5, True]},
    {"id": 2, "type": "Note", "widgets_values": ["{not json} ] ["]}], "links": [], "extra": {"ds": {"scale": 0.8}},
    "version": 0.4}
PROMPT = {"1": {"class_type": "BrandBrief", "inputs": {"brand": "Acme", "duration_seconds": 3.5}}}


def test_mp4_webm_mov_carry_prompt_and_workflow_with_moov_first(tmp_path):
    sb = storyboard()
    tags = mp4_metadata.workflow_tags(PROMPT, {"workflow": WORKFLOW})
    out = str(tmp_path / "ad.mp4")
    extras = AssemblyExtras(formats=("mp4", "webm", "mov"), metadata=tags)
    res = assemble(sb, sources(sb), out, str(tmp_path / "work"), encode=EncodeSettings(preset="ultrafast"), extras=extras)
    for kind in ("mp4", "webm", "mov"):
        t = tags_of(res.files[kind])
        assert json.loads(t["workflow"]) == WORKFLOW, kind
        assert json.loads(t["prompt"]) == PROMPT, kind
    for kind in ("mp4", "mov"):
        boxes = [k for k, _ in top_level_boxes(res.files[kind])]
        assert "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat"), (kind, boxes)
        data = open(res.files[kind], "rb").read()
        moov = data.find(b"moov")
        # the editor's parser: moov → udta → meta → keys + ilst, with the names as mdta keys
        for box in (b"udta", b"meta", b"keys", b"ilst", b"mdtaprompt", b"mdtaworkflow"):
            assert data.find(box, moov) != -1 and data.find(box, moov) < data.find(b"mdat"), (kind, box)


def test_without_metadata_no_tags(tmp_path):
    sb = storyboard(2.0)
    out = str(tmp_path / "ad.mp4")
    assemble(sb, sources(sb), out, str(tmp_path / "work"), encode=EncodeSettings(preset="ultrafast"))
    assert "workflow" not in tags_of(out) and "prompt" not in tags_of(out)
    boxes = [k for k, _ in top_level_boxes(out)]
    assert boxes.index("moov") < boxes.index("mdat")


def test_a_workflow_longer_than_a_command_line_argument(tmp_path):
    """Linux caps one argument at 128 KiB: the tags travel in an ffmetadata file."""
    big = {"nodes": [{"id": i, "type": "Note", "widgets_values": ["x=y;#\\" * 200]} for i in range(400)]}
    tags = mp4_metadata.workflow_tags(None, {"workflow": big})
    assert len(tags["workflow"]) > 300_000
    sb = storyboard(2.0)
    clip = sources(sb)[0]
    out = str(tmp_path / "clip.mp4")
    write_clip(clip, 10, W, H, 24, out, ClipFormat(preset="ultrafast"), metadata=tags)
    assert json.loads(tags_of(out)["workflow"]) == big


def test_secrets_are_masked_everywhere(monkeypatch):
    monkeypatch.setenv("ACME_SERVICE_TOKEN", "tok-env-9f8e7d6c5b4a")
    register_secret("reg-secret-0123456789")
    wf = {"nodes": [{"widgets_values": ["my key: reg-secret-0123456789", "sk-proj-abcdefghijklmnopqrstuvwx",
                                        "Authorization: Bearer abc.def.ghi", "env tok-env-9f8e7d6c5b4a",
                                        {"reg-secret-0123456789": 1}, float("nan"), float("inf"), 2.5, None, True]}]}
    tags = mp4_metadata.workflow_tags({"1": {"inputs": {"text": "https://x.example/v?key=abcdef123&a=1"}}},
                                      {"workflow": wf})
    text = json.dumps(tags)
    for secret in ("reg-secret-0123456789", "sk-proj-abcdefghijklmnopqrstuvwx", "abc.def.ghi", "tok-env-9f8e7d6c5b4a",
                   "abcdef123"):
        assert secret not in text
    got = json.loads(tags["workflow"])["nodes"][0]["widgets_values"]
    assert got[0] == f"my key: {MASK}" and got[3] == f"env {MASK}" and got[4] == {MASK: 1}
    assert got[5:] == [None, None, 2.5, None, True]  # non-finite numbers: null (the editor refuses NaN)
    assert json.loads(tags["prompt"])["1"]["inputs"]["text"] == f"https://x.example/v?key={MASK}&a=1"


def test_bad_names_and_shapes_are_left_out():
    tags = mp4_metadata.workflow_tags("not a dict", {"workflow": {"a": 1}, "bad name=x": 1, "x\nprompt": 2,
                                                     **{f"k{i}": i for i in range(40)}})
    assert tags["prompt"] == "not a dict" and json.loads(tags["workflow"]) == {"a": 1}
    assert all(mp4_metadata.TAG_NAME.match(k) for k in tags) and len(tags) == mp4_metadata.MAX_TAGS
    deep = current = {}
    for _ in range(mp4_metadata.MAX_DEPTH + 5):
        current["x"] = {}
        current = current["x"]
    assert "workflow" not in mp4_metadata.workflow_tags(None, {"workflow": deep})
    assert mp4_metadata.workflow_tags(None, None) == {} and mp4_metadata.workflow_tags(None, [1, 2]) == {}
    # a JSON string is parsed (and redacted inside); other text is carried as redacted text
    assert mp4_metadata.metadata_tags({"workflow": '{"a": [1, 2]}', "note": "plain"}) == \
        {"workflow": '{"a":[1,2]}', "note": "plain"}


def test_ffmetadata_escaping_round_trips(tmp_path):
    text = 'a=b;c#d\\e\nf [CHAPTER] ;FFMETADATA1'
    path = mp4_metadata.write_ffmetadata({"workflow": text}, str(tmp_path / "m.txt"))
    out = str(tmp_path / "o.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=s=32x32:d=0.2", "-f", "ffmetadata",
                    "-i", path, "-map", "0", "-map_metadata", "1", "-movflags", "+faststart+use_metadata_tags", out],
                   check=True)
    assert tags_of(out)["workflow"] == text
    with pytest.raises(ValueError):
        mp4_metadata.write_ffmetadata({"bad=name": "x"}, str(tmp_path / "n.txt"))


def test_prompt_as_queued_without_the_executors_fingerprints():
    prompt = {"8": {"class_type": "MusicBed", "inputs": {"track": "a.ogg"}, "is_changed": ["/srv/x/a.ogg:1700000000.5"]}}
    tags = mp4_metadata.workflow_tags(prompt, {"prompt": {"ignored": 1}})
    assert json.loads(tags["prompt"]) == {"8": {"class_type": "MusicBed", "inputs": {"track": "a.ogg"}}}
    assert "is_changed" in prompt["8"]  # the caller's prompt is left as it was
