"""The shipped cloud workflow (brief → storyboard → key images → ProviderRender → ad) in a real ComfyUI.

A second ComfyUI server is started for this module. Its environment points
every provider's base URL at a local HTTPS fake (tests/fakes/provider_servers.py,
trusted through ADREEL_CA_BUNDLE) and holds recognisable canary values as the
API keys, which the fakes require. Storage points at a real SeaweedFS, with an
https public base URL, so Luma's key images are hosted the way a user's would be.

What a user would check: the MP4 (ffprobe, and the provider's pixels in every
scene), the cost and job ids on the node, the progress text arriving over the
websocket before and during the run, what the fake providers received (and
did not), that an interrupt cancels the remote jobs, and that no key value
appears in any output, metadata, history, saved workflow or log.
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import struct
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from PIL import Image

from fakes.provider_servers import FakeTLS, LumaFake, Reply, RunwayFake, make_sample_mp4
from fakes.seaweedfs import SECRET_KEY as S3_SECRET_KEY
from fakes.seaweedfs import SeaweedFS
from harness import ComfyServer, PromptError, PromptResult, node_by_type, output_files, short_cloud_prompt
from media import ffprobe, frame_at, stream
from workflow_format import api_to_ui

pytestmark = [pytest.mark.comfy, pytest.mark.timeout(900)]

# Recognisable key values: finding one anywhere is a leak.
CANARY = {
    "LUMA_API_KEY": "luma-CANARY-7d1f0c9e4b2a48f1a3c5",
    "RUNWAY_API_KEY": "key_CANARY-runway-5e8b2d7c91f04a6b",
    "HEYGEN_API_KEY": "heygen-CANARY-0b9a8c7d6e5f4a3b",
    "FAL_KEY": "fal-CANARY-id:3c2b1a0f9e8d7c6b",
    "REPLICATE_API_TOKEN": "r8_CANARY_6f5e4d3c2b1a0f9e8d7c",
    "GEMINI_API_KEY": "AIzaCANARY-gemini-9e8d7c6b5a4f3e2d",
}
BUCKET = "adreel-keys"
PUBLIC_BASE = f"https://cdn.adreel.test/{BUCKET}"
LATENCY = 3.0  # seconds a fake job takes
W, H = 720, 1280
PROVIDER_NODE = "5"


@dataclass
class Stack:
    comfy: ComfyServer
    runway: RunwayFake
    luma: LumaFake
    s3: SeaweedFS
    media: Path
    runs: dict = field(default_factory=dict)

    def reset_fakes(self):
        for fake in (self.runway, self.luma):
            fake.reset()
            fake.job_latency = LATENCY


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("cloud")
    tls = FakeTLS(base)
    media = make_sample_mp4(base / "sample.mp4")
    data = media.read_bytes()
    runway = RunwayFake(tls, data, valid_key=CANARY["RUNWAY_API_KEY"]).start()
    luma = LumaFake(tls, data, valid_key=CANARY["LUMA_API_KEY"]).start()
    s3 = SeaweedFS(base / "s3").start()
    s3.create_bucket(BUCKET)
    closed = "https://127.0.0.1:9"  # providers without a fake here: nothing may reach the internet
    env = {
        **CANARY,
        "ADREEL_CA_BUNDLE": str(tls.ca_path),
        "ADREEL_SECRETS_FILE": str(base / "no-secrets.json"),
        "ADREEL_PROVIDER_POLL_SECONDS": "0.5",
        "ADREEL_PAID_PROVIDERS": "1", "ADREEL_MAX_COST_USD": "",  # the operator's opt-in; the default $5 ceiling
        "XDG_STATE_HOME": str(base / "state"),  # the provider jobs journal
        "RUNWAY_BASE_URL": runway.base_url, "LUMA_BASE_URL": luma.base_url,
        "HEYGEN_BASE_URL": closed, "FAL_BASE_URL": closed, "REPLICATE_BASE_URL": closed,
        "GEMINI_BASE_URL": closed + "/v1beta",
        "LUMAAI_API_KEY": "", "RUNWAYML_API_SECRET": "", "GOOGLE_API_KEY": "",
        # storage: the real SeaweedFS, key images served from an https "CDN" in front of the bucket
        **s3.env(BUCKET), "ADREEL_S3_PUBLIC_BASE_URL": PUBLIC_BASE,
        "ADREEL_S3_BUCKET": "", "ADREEL_S3_PREFIX": "", "ADREEL_S3_URL_MODE": "", "ADREEL_S3_URL_EXPIRY": "",
        "MINIO_SECURE": "", "ADREEL_STORAGE_CONFIG": str(base / "no-storage.json"),
        "ADREEL_SPOOL_DIR": str(base / "spool"),
    }
    server = ComfyServer(env=env)
    try:
        server.start()
        st = Stack(server, runway, luma, s3, media)
        st.reset_fakes()
        yield st
    finally:
        server.cleanup()
        s3.stop()
        runway.stop()
        luma.stop()


def cloud_prompt(**provider_inputs) -> dict:
    prompt = short_cloud_prompt(**provider_inputs)
    assert node_by_type(prompt, "ProviderRender")[0] == PROVIDER_NODE
    return prompt


class ProgressTexts:
    """Progress text messages (binary websocket event 3) for one node, with arrival times."""

    def __init__(self, comfy: ComfyServer, node_id: str):
        self.url = f"ws://127.0.0.1:{comfy.port}/ws?clientId={comfy.client_id}"
        self.node_id = node_id
        self.items: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self):
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self.url) as ws:
                self._ready.set()
                while not self._stop.is_set():
                    try:
                        msg = await ws.receive(timeout=0.2)
                    except asyncio.TimeoutError:
                        continue
                    if msg.type == aiohttp.WSMsgType.BINARY and struct.unpack(">I", msg.data[:4])[0] == 3:
                        n = struct.unpack(">I", msg.data[4:8])[0]
                        node, text = msg.data[8:8 + n].decode(), msg.data[8 + n:].decode()
                        if node == self.node_id:
                            self.items.append((time.monotonic(), text))
                    elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        return

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(10), "websocket did not connect"
        return self

    def __exit__(self, *exc):
        time.sleep(0.3)  # the last messages of the run
        self._stop.set()
        self._thread.join(5)


def run_with_progress(stack: Stack, prompt: dict, extra_data: dict | None = None) -> tuple[PromptResult, ProgressTexts]:
    with ProgressTexts(stack.comfy, PROVIDER_NODE) as texts:
        t0 = time.monotonic()
        pid = stack.comfy.queue(prompt, extra_data)
        entry = stack.comfy.wait(pid, 600)
    return PromptResult(pid, entry, time.monotonic() - t0), texts


def provider_ui(result: PromptResult) -> tuple[str, dict]:
    out = result.ui(PROVIDER_NODE)
    assert out.get("text") and out.get("adreel_provider"), out
    return out["text"][0], out["adreel_provider"][0]


def manifest_of(path: str) -> dict:
    with open(os.path.splitext(path)[0] + ".json", encoding="utf-8") as f:
        return json.load(f)


def media_frame(media: Path, t: float) -> np.ndarray:
    """The fake provider's clip at ``t`` s, fitted to the ad's frame the way the assembler fits it (cover)."""
    vf = f"scale={W}:{H}:force_original_aspect_ratio=increase,crop={W}:{H}"
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{t:.3f}", "-i", str(media), "-frames:v", "1", "-vf", vf,
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(H, W, 3)


def picture_band(frame: np.ndarray) -> np.ndarray:
    """Rows between the logo (top) and the text card / subtitles (lower half): the clip's own pixels."""
    return frame[int(H * 0.12):int(H * 0.42)].astype(np.float32)


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(picture_band(a) - picture_band(b)).mean())


def key_image_for(comfy: ComfyServer, index: int) -> np.ndarray:
    folder = Path(comfy.private_folder("adreel_key_images"))  # AdReel's own folder, never temp/
    [path] = sorted(folder.glob(f"scene{index:03d}_*.png"))
    return np.asarray(Image.open(path).convert("RGB").resize((W, H)))


def scene_sample_times(manifest: dict, end_card_seconds: float) -> list[tuple[int, float, float]]:
    """(scene index, time in the ad, time in the scene's clip): mid-scene, but before the end card fades in."""
    scenes = manifest["storyboard"]["scenes"]
    total = sum(s["duration"] for s in scenes)
    out = []
    for s in scenes:
        t = min(s["start"] + s["duration"] / 2, total - end_card_seconds - 0.25)
        assert t >= s["start"] + 0.2, "the end card covers this scene"
        out.append((s["index"], t, t - s["start"]))
    return out


@pytest.fixture(scope="module")
def runway_run(stack):
    """The shipped workflow against the Runway fake, its UI-format twin attached as the frontend would."""
    stack.reset_fakes()
    prompt = cloud_prompt()
    ui_workflow = api_to_ui(prompt, stack.comfy.get_json("/object_info"))
    result, texts = run_with_progress(stack, prompt, {"extra_pnginfo": {"workflow": ui_workflow}})
    node_id, _ = node_by_type(prompt, "FFmpegAssemble")
    [mp4] = [p for p in output_files(stack.comfy, result, node_id) if p.endswith(".mp4")]
    run = dict(prompt=prompt, result=result, texts=list(texts.items), mp4=mp4,
               creates=stack.runway.calls("create"), statuses=stack.runway.calls("status"),
               jobs=dict(stack.runway.jobs))
    stack.runs["runway"] = run
    return run


# ------------------------------------------------------------------ the shipped workflow


def test_cloud_workflow_assembles_the_provider_clips(stack, runway_run):
    mp4, manifest = runway_run["mp4"], manifest_of(runway_run["mp4"])
    scenes = manifest["storyboard"]["scenes"]
    assert len(scenes) == 3

    info = ffprobe(mp4)
    v = stream(info, "video")
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", W, H)
    total = sum(s["duration"] for s in scenes)
    assert abs(float(info["format"]["duration"]) - total) <= 0.1

    # every scene shows the provider's clip (testsrc2), not the key image it was made from
    end_card = node_by_type(runway_run["prompt"], "FFmpegAssemble")[1]["inputs"]["end_card_seconds"]
    for index, t_ad, t_clip in scene_sample_times(manifest, end_card):
        ad = frame_at(mp4, t_ad, W, H)
        expected = media_frame(stack.media, min(t_clip, 1.9))
        key = key_image_for(stack.comfy, index)
        assert diff(ad, expected) < 12, f"scene {index}: the provider's pixels are not in the ad ({diff(ad, expected):.1f})"
        assert diff(ad, key) > 2 * diff(ad, expected), f"scene {index} looks like its key image"

    # the provider received one image-to-video task per scene, with the key image inline
    creates = runway_run["creates"]
    assert len(creates) == 3
    sent_images = set()
    for c in creates:
        assert c.path == "/v1/image_to_video" and c.headers["X-Runway-Version"] == "2024-11-06"
        body = c.body
        assert body["model"] == "gen4_turbo" and body["ratio"] == "720:1280" and 2 <= body["duration"] <= 10
        head, data = body["promptImage"].split(",", 1)
        assert head == "data:image/png;base64"
        sent_images.add(base64.b64decode(data)[:64])
    assert len(sent_images) == 3, "each scene sent its own key image"
    # concurrently: every task was submitted before the first one could have finished
    times = sorted(c.time for c in creates)
    assert times[-1] - times[0] < LATENCY


def test_cost_and_job_ids_are_on_the_node_and_in_the_report(runway_run):
    text, summary = provider_ui(runway_run["result"])
    jobs = runway_run["jobs"]
    scenes = summary["scenes"]
    assert [s["scene_index"] for s in scenes] == [0, 1, 2]
    for s in scenes:
        assert s["provider"] == "runway" and s["model"] == "gen4_turbo"
        assert s["job_id"] in jobs
        # Runway gen4_turbo: 5 credits per second at $0.01
        assert s["actual_cost_usd"] == pytest.approx(0.05 * s["requested_duration"])
        assert s["job_id"] in text
    total = sum(s["actual_cost_usd"] for s in scenes)
    assert summary["actual_cost_usd"] == pytest.approx(total)
    assert summary["estimated_cost_usd"] == pytest.approx(total)
    assert f"actual ${total:.2f}" in text and "budget $2.00" in text


def test_the_manifest_holds_the_jobs_and_costs_from_provider_report(runway_run):
    """ProviderRender's provider_report output, linked into FFmpegAssemble, is what the manifest records."""
    _, summary = provider_ui(runway_run["result"])
    node_id, node = node_by_type(runway_run["prompt"], "FFmpegAssemble")
    assert node["inputs"]["provider_report"] == [PROVIDER_NODE, 2]
    manifest = manifest_of(runway_run["mp4"])
    assert manifest["providers"] == summary["scenes"]
    assert manifest["costs_usd"] == pytest.approx(summary["actual_cost_usd"]) and manifest["costs_usd"] > 0
    assert manifest["models"] == ["runway:gen4_turbo"]


def test_estimate_is_shown_before_submission_then_progress(runway_run):
    texts, creates = runway_run["texts"], runway_run["creates"]
    assert texts, "no progress text reached the websocket"
    first_time, first_text = texts[0]
    assert "estimate $" in first_text and "budget $2.00" in first_text
    assert first_time < min(c.time for c in creates), "the estimate must be shown before anything is sent"
    during = [t for when, t in texts if min(c.time for c in creates) < when]
    # status, progress, elapsed, time left, cost and job id, per scene, while the jobs run
    assert any(re.search(r"scene \d: runway gen4_turbo · running \d+% · \d+ s · ~\d+ s left · \$0\.\d\d · job ", t)
               for t in during), during[-3:]
    assert "actual $" in texts[-1][1]


# ------------------------------------------------------------------ refusing and stopping


@pytest.mark.parametrize("inputs,expect", [
    ({"options_json": '{"runway": {"api_key": "sk-typed-into-the-workflow"}}'}, "options_json.runway.api_key: API keys"),
    ({"model": "ray-2"}, "model: is not a Runway model; choose one of gen4_turbo, veo3"),
    ({"provider": "auto", "chain": "runway:gen4_turbo, pika:v2"}, "entry 2 is not provider:model or camera"),
    ({"fallback": "retry forever"}, "fallback: is not one of error, camera move"),
    ({"options_json": "{not json"}, "options_json: is not valid JSON"),
])
def test_bad_provider_inputs_are_rejected_at_submit(stack, inputs, expect):
    stack.reset_fakes()
    with pytest.raises(PromptError) as exc:
        stack.comfy.queue(cloud_prompt(**inputs))
    assert exc.value.status == 400 and expect in str(exc.value), str(exc.value)
    assert stack.runway.requests == [] and stack.luma.requests == []


def test_budget_refusal_fails_clearly_and_sends_nothing(stack):
    stack.reset_fakes()
    with pytest.raises(PromptError) as exc:
        stack.comfy.run(cloud_prompt(max_cost_usd=0.05))
    message = str(exc.value)
    assert "above the budget of $0.05" in message and "Nothing was sent" in message
    assert "ProviderRender" in message
    assert stack.runway.requests == [] and stack.luma.requests == []
    assert stack.comfy.alive()


def test_interrupt_mid_poll_cancels_the_remote_jobs(stack):
    stack.reset_fakes()
    stack.runway.outcome = "never"
    pid = stack.comfy.queue(cloud_prompt(options_json='{"seed": 11}'))
    deadline = time.monotonic() + 120
    while len({c.path for c in stack.runway.calls("status")}) < 3:
        assert time.monotonic() < deadline, "the jobs were never polled"
        time.sleep(0.2)
    stack.comfy.interrupt()
    with pytest.raises(PromptError) as exc:
        stack.comfy.wait(pid, 120)
    assert "interrupted at node 5 (ProviderRender)" in str(exc.value)
    created = {j for j in stack.runway.jobs}
    assert len(created) == 3
    cancelled = {c.path.rsplit("/", 1)[-1] for c in stack.runway.calls("cancel", "DELETE")}
    assert cancelled == created
    assert all(job.cancelled for job in stack.runway.jobs.values())
    assert stack.comfy.alive()


# ------------------------------------------------------------------ the hybrid route


def test_auto_route_hosts_luma_key_images_and_falls_back_along_the_chain(stack):
    stack.reset_fakes()
    first = []

    def outcome(body):  # the first Luma job is rejected by the safety filter, the others succeed
        first.append(body)
        return "safety" if len(first) == 1 else "success"

    stack.luma.outcome_for = outcome
    prompt = cloud_prompt(provider="auto", chain="luma:ray-flash-2, runway:gen4_turbo, camera", quality="balanced",
                          max_cost_usd=5.0)
    result = stack.comfy.run(prompt)
    text, summary = provider_ui(result)
    routes = {s["scene_index"]: s for s in summary["scenes"]}

    # balanced: the call-to-action scene keeps the local camera move; the others go to the chain
    manifest_scenes = manifest_of(next(p for p in output_files(stack.comfy, result, node_by_type(prompt, "FFmpegAssemble")[0])
                                       if p.endswith(".mp4")))["storyboard"]["scenes"]
    cta = [s["index"] for s in manifest_scenes if s["segment"] == "cta"]
    assert cta and all(routes[i]["provider"] == "camera" and routes[i]["actual_cost_usd"] == 0 for i in cta)
    paid = [i for i in routes if i not in cta]
    assert sorted(routes[i]["provider"] for i in paid) == ["luma", "runway"]
    fell_back = next(routes[i] for i in paid if routes[i]["provider"] == "runway")
    assert [a["outcome"] for a in fell_back["attempts"]] == ["failed", "rendered"]
    assert "safety filter" in fell_back["attempts"][0]["reason"]
    assert "fell back to runway:gen4_turbo" in text

    # Luma got its key images as https URLs of objects really uploaded to the bucket
    creates = stack.luma.calls("create")
    assert len(creates) == 2
    keys = {o["Key"]: o for o in stack.s3.list_keys(BUCKET, "key-images/")}
    for c in creates:
        url = c.body["keyframes"]["frame0"]["url"]
        assert url.startswith(PUBLIC_BASE + "/key-images/")
        key = urllib.parse.unquote(url[len(PUBLIC_BASE) + 1:])
        assert key in keys
        stored = stack.s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert stored.startswith(b"\x89PNG") and Image.open(io.BytesIO(stored)).size == (W, H)
    assert len(stack.runway.calls("create")) == 1


# ------------------------------------------------------------------ no key anywhere


def _all_files(root: str):
    for dirpath, _, names in os.walk(root):
        for name in names:
            yield os.path.join(dirpath, name)


def test_no_key_appears_in_outputs_metadata_history_saved_workflow_or_logs(stack, runway_run):
    comfy = stack.comfy
    # the keys were really in use: the fakes accept nothing else
    assert runway_run["creates"][0].headers["Authorization"] == f"Bearer {CANARY['RUNWAY_API_KEY']}"

    # a provider that echoes the key in its error body: the failure lands in the history and the log
    stack.reset_fakes()
    stack.runway.script("create", Reply(401, {"error": f"Unauthorized: the key {CANARY['RUNWAY_API_KEY']} is invalid "
                                                       f"(Authorization: Bearer {CANARY['RUNWAY_API_KEY']})"}))
    with pytest.raises(PromptError) as exc:
        comfy.run(cloud_prompt(options_json='{"seed": 12}'))
    assert "rejected the API key" in str(exc.value) and "RUNWAY_API_KEY" in str(exc.value)

    # the workflow saved through ComfyUI's userdata API, as the editor saves it
    ui_workflow = api_to_ui(runway_run["prompt"], comfy.get_json("/object_info"))
    name = urllib.parse.quote("workflows/brief_to_ad_cloud.json", safe="")
    req = urllib.request.Request(f"{comfy.url}/userdata/{name}?overwrite=true", data=json.dumps(ui_workflow).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"{comfy.url}/userdata/{name}", timeout=30) as r:
        saved = r.read()

    haystacks: dict[str, bytes] = {"saved workflow": saved,
                                   "history": json.dumps(comfy.get_json("/history?max_items=1000")).encode(),
                                   "server log": comfy.log_text().encode()}
    assert b"ProviderRender" in saved and b"ProviderRender" in haystacks["history"]
    mp4s = []
    for folder in ("output", "temp", "user"):
        for path in _all_files(comfy.folder(folder)):
            with open(path, "rb") as f:
                haystacks[path] = f.read()
            if path.endswith(".mp4"):
                mp4s.append(path)
    assert runway_run["mp4"] in mp4s and any("provider_clips" in p for p in mp4s)
    for path in mp4s:
        tags = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", path],
                              capture_output=True, check=True).stdout
        haystacks[f"ffprobe tags of {path}"] = tags
    secrets = [*CANARY.values(), S3_SECRET_KEY]
    leaks = [(where, s) for where, data in haystacks.items() for s in secrets
             if s.encode() in data or base64.b64encode(s.encode()) in data]
    assert not leaks, leaks
