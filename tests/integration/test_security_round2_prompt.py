"""Ceilings per prompt, and AdReel's own files out of visitors' reach — attacked through a real ComfyUI.

A network user of a shared ComfyUI can put as many AdReel nodes into one prompt as they like, and can
upload any file under any name into ``input/``, ``output/`` and ``temp/`` (``POST /upload/image``,
``overwrite=true``). Checked from outside:

* spending: five ProviderRender nodes in one prompt under the operator's $1.00 ceiling — what the
  HTTPS Runway fake was asked to render (its received create requests, priced at Runway's published
  rate) never passes $1.00, and the node that would have passed it is refused naming
  ``ADREEL_MAX_COST_USD`` and what the prompt had used; ``auto`` routes the rest to the camera move;
* encoding: six FFmpegAssemble nodes in one prompt under an ``ADREEL_MAX_PIXEL_FRAMES`` worth two
  assemblies — the MP4s in ``output/`` (ffprobe: frames × width × height) add up to no more;
* files: PNGs uploaded under the names AdReel used to give a brief's product photo, its logo, the key
  images and the per-scene provider images (temp and input, overwrite on, subfolder tricks), between
  and during runs, never reach an ad (its pixels, compared with the ad made before any upload, and the
  real photo found in it by template matching) nor the images sent to the provider; a re-queue works.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from fakes.provider_servers import FakeTLS, RunwayFake, make_sample_mp4
from harness import ROOT, ComfyServer, PromptError, load_api_workflow, node_by_type, output_files, short_cloud_prompt
from media import ffprobe, frame_at

pytestmark = [pytest.mark.comfy, pytest.mark.timeout(900)]

RUNWAY_KEY = "key_CANARY-runway-r2-0c1d2e3f4a5b6c7d"
COST_CEILING = 1.00
RUNWAY_USD_PER_SECOND = 5 * 0.01  # gen4_turbo: 5 credits a second at $0.01 (the published rate)
W, H, FPS, SECONDS = 720, 1280, 30, 3.0
ONE_ASSEMBLY = W * H * FPS * SECONDS  # pixel-frames of the 3 s 720p demo, MP4 only
PIXEL_CEILING = 2.5 * ONE_ASSEMBLY  # two assemblies fit, the third does not
MAGENTA = (255, 0, 255)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("round2")
    tls = FakeTLS(base)
    runway = RunwayFake(tls, make_sample_mp4(base / "sample.mp4").read_bytes(), valid_key=RUNWAY_KEY).start()
    closed = "https://127.0.0.1:9"
    env = {
        "RUNWAY_API_KEY": RUNWAY_KEY, "RUNWAY_BASE_URL": runway.base_url, "RUNWAYML_API_SECRET": "",
        "ADREEL_CA_BUNDLE": str(tls.ca_path), "ADREEL_SECRETS_FILE": str(base / "no-secrets.json"),
        "ADREEL_PROVIDER_POLL_SECONDS": "0.3", "ADREEL_PAID_PROVIDERS": "1",
        "ADREEL_MAX_COST_USD": f"{COST_CEILING:.2f}", "ADREEL_MAX_PIXEL_FRAMES": f"{PIXEL_CEILING:.0f}",
        "XDG_STATE_HOME": str(base / "state"),
        "LUMA_BASE_URL": closed, "HEYGEN_BASE_URL": closed, "FAL_BASE_URL": closed, "REPLICATE_BASE_URL": closed,
        "GEMINI_BASE_URL": closed + "/v1beta", "LUMA_API_KEY": "", "LUMAAI_API_KEY": "", "HEYGEN_API_KEY": "",
        "FAL_KEY": "", "REPLICATE_API_TOKEN": "", "GEMINI_API_KEY": "", "GOOGLE_API_KEY": "",
        "ADREEL_STORAGE_CONFIG": str(base / "no-storage.json"), "ADREEL_S3_BUCKET": "",
        "ADREEL_SPOOL_DIR": str(base / "spool"),
    }
    server = ComfyServer(env=env)
    try:
        server.start()
        yield server, runway
    finally:
        server.cleanup()
        runway.stop()


@pytest.fixture
def comfy(stack):
    server, runway = stack
    yield server
    assert server.alive(), server.log_tail()
    with urllib.request.urlopen(server.url + "/system_stats", timeout=10) as r:
        assert r.status == 200


def quiet(runway: RunwayFake, seconds: float = 2.0, limit: float = 60.0) -> None:
    """Wait until the fake has had no request for ``seconds`` (jobs of a failed prompt wind down)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        n = len(runway.requests)
        time.sleep(seconds)
        if len(runway.requests) == n:
            return


def submitted_usd(runway: RunwayFake) -> float:
    """What the provider was asked to render, priced as Runway bills it (seconds × rate)."""
    return sum(float(c.body["duration"]) * RUNWAY_USD_PER_SECOND for c in runway.calls("create"))


def failed(server: ComfyServer, prompt: dict, timeout: float = 600) -> str:
    with pytest.raises(PromptError) as exc:
        server.run(prompt, timeout)
    return str(exc.value)


# ------------------------------------------------------------------ spending per prompt

def providers_prompt(n: int, **inputs) -> dict:
    """The cloud workflow up to ProviderRender (9 s, 3 scenes), with ``n`` ProviderRender nodes, each shown by a
    PreviewAny and each with a seed of its own (so no two are the same job)."""
    prompt = short_cloud_prompt(provider="runway", model="gen4_turbo", **inputs)
    for nid in ("6", "7", "8"):  # assembly, narration, music: not needed here
        prompt.pop(nid)
    render = prompt.pop("5")
    for k in range(n):
        node = copy.deepcopy(render)
        node["inputs"]["options_json"] = json.dumps({"seed": 1000 + k})
        prompt[f"5{k}"] = node
        prompt[f"6{k}"] = {"class_type": "PreviewAny", "inputs": {"source": [f"5{k}", 1]}}
    return prompt


def test_five_provider_renders_in_one_prompt_spend_no_more_than_the_ceiling(stack, comfy):
    _, runway = stack
    runway.reset()
    message = failed(comfy, providers_prompt(5, fallback="error", max_cost_usd=0.0))
    quiet(runway)
    spent = submitted_usd(runway)
    # (the nodes that fitted run concurrently and may be stopped by the refusal before they submit: 0 is fine;
    # five nodes of $0.50 each would be $2.50)
    assert spent <= COST_CEILING + 1e-9, f"${spent:.2f} submitted under a ${COST_CEILING:.2f} ceiling: {message}"
    assert "ADREEL_MAX_COST_USD" in message and "this prompt has already used" in message, message
    assert "Nothing was sent" in message, message


def test_auto_routes_what_the_prompt_cannot_afford_to_the_camera_move(stack, comfy):
    _, runway = stack
    runway.reset()
    prompt = providers_prompt(5)
    for k in range(5):
        prompt[f"5{k}"]["inputs"].update(provider="auto", fallback="camera move", quality="best",
                                         chain="runway:gen4_turbo, camera", max_cost_usd=0.0)
    result = comfy.run(prompt)
    quiet(runway)
    spent = submitted_usd(runway)
    assert 0 < spent <= COST_CEILING + 1e-9, f"${spent:.2f} submitted under a ${COST_CEILING:.2f} ceiling"
    reports = [result.ui(f"6{k}")["text"][0] for k in range(5)]
    assert sum(r.count("camera move") for r in reports) >= 1, reports


# ------------------------------------------------------------------ encoding per prompt

def demo(prefix: str, **brief) -> dict:
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad.json"))
    b = node_by_type(prompt, "BrandBrief")[1]["inputs"]
    b.update(duration_seconds=SECONDS, **brief)
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"].update(resolution="720p", fps="30")
    nid, a = node_by_type(prompt, "FFmpegAssemble")
    a["inputs"].update(preset="ultrafast", filename_prefix=prefix, end_card_seconds=0.0)
    a["inputs"].pop("narration", None)  # the storyboard's own timing: 90 frames a render
    prompt.pop(node_by_type(prompt, "SceneNarration")[0])
    return prompt


def test_six_assemblies_in_one_prompt_encode_no_more_than_the_pixel_frame_ceiling(comfy):
    tag = uuid.uuid4().hex[:8]
    prompt = demo(f"AdReel/six{tag}_0")
    nid, node = node_by_type(prompt, "FFmpegAssemble")
    for k in range(1, 6):
        twin = copy.deepcopy(node)
        twin["inputs"]["filename_prefix"] = f"AdReel/six{tag}_{k}"
        prompt[f"{nid}{k}"] = twin
    message = failed(comfy, prompt)
    assert "ADREEL_MAX_PIXEL_FRAMES" in message and "this prompt has already used" in message, message
    folder = Path(comfy.folder("output")) / "AdReel"
    mp4s = sorted(folder.glob(f"six{tag}_*.mp4"))
    assert 1 <= len(mp4s) < 6, mp4s
    encoded = 0.0
    for mp4 in mp4s:
        v = next(s for s in ffprobe(str(mp4))["streams"] if s["codec_type"] == "video")
        encoded += int(v.get("nb_read_frames") or v["nb_frames"]) * int(v["width"]) * int(v["height"])
    assert encoded <= PIXEL_CEILING, f"{encoded:.3g} pixel-frames encoded under a {PIXEL_CEILING:.3g} ceiling"


# ------------------------------------------------------------------ files visitors can write

def view(server: ComfyServer, item: dict) -> np.ndarray:
    q = urllib.parse.urlencode({"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                "type": item.get("type", "temp")})
    with urllib.request.urlopen(f"{server.url}/view?{q}", timeout=30) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))


def magenta_png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, MAGENTA + ((255,) if mode == "RGBA" else ())).save(buf, format="PNG")
    return buf.getvalue()


def brand_asset(name: str) -> Image.Image:
    """A demo asset as BrandImage hands it on (RGBA, EXIF-rotated)."""
    return ImageOps.exif_transpose(Image.open(os.path.join(ROOT, "assets", "demo", name))).convert("RGBA")


def attack_names(server: ComfyServer, key_previews: list[dict]) -> list[tuple[str, bytes, str, str]]:
    """(name, bytes, type, subfolder) of every file a visitor can work out AdReel would use: the brief's
    images by their content name, the key images by the names /history shows, the per-scene provider
    images by the key images' pixels (read back through /view) — each in temp and input, with subfolder tricks."""
    files = []
    for stem, asset in (("product", "coffee.png"), ("logo", "acme_logo.png")):
        im = brand_asset(asset)
        digest = hashlib.sha256(np.asarray(im).tobytes()).hexdigest()[:16]
        files.append((f"{stem}_{digest}.png", magenta_png(im.size, "RGBA"), "adreel_inputs"))
    for index, item in enumerate(key_previews):
        rgb = view(server, item)
        files.append((item["filename"], magenta_png((rgb.shape[1], rgb.shape[0])), item.get("subfolder", "")))
        digest = hashlib.sha256(rgb.tobytes()).hexdigest()[:16]
        files.append((f"scene{index:03d}_{digest}.png", magenta_png((rgb.shape[1], rgb.shape[0])), "adreel_key_images"))
    out = []
    for name, data, sub in files:
        for kind in ("temp", "input"):
            for trick in (sub, f"{sub}/.", f"./{sub}", f"x/../{sub}"):
                out.append((name, data, kind, trick))
    return out


def plant(server: ComfyServer, files) -> int:
    return sum(server.upload(name, data, kind, sub)[0] == 200 for name, data, kind, sub in files)


def magenta_share(frame: np.ndarray) -> float:
    f = frame.astype(np.int16)
    return float(((f[..., 0] > 200) & (f[..., 1] < 60) & (f[..., 2] > 200)).mean())


def photo_match(frame: np.ndarray, photo: Image.Image) -> float:
    """The best normalised correlation of the product photo (any scale from 15 % to 90 % of the frame's
    width) anywhere in ``frame``: how clearly the real photo is in the picture."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    rgb = np.asarray(photo.convert("RGB"))
    best = -1.0
    for frac in np.linspace(0.15, 0.9, 31):
        w = int(frame.shape[1] * frac)
        h = int(rgb.shape[0] * w / rgb.shape[1])
        if h >= gray.shape[0] or w < 16:
            continue
        tmpl = cv2.cvtColor(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        best = max(best, float(cv2.matchTemplate(gray, tmpl, cv2.TM_CCOEFF_NORMED).max()))
    return best


def frames(mp4: str) -> list[np.ndarray]:
    return [frame_at(mp4, t, W, H) for t in (0.4, 1.4, 2.4)]


def the_mp4(server: ComfyServer, prompt: dict, result) -> str:
    nid, _ = node_by_type(prompt, "FFmpegAssemble")
    [mp4] = [p for p in output_files(server, result, nid) if p.endswith(".mp4")]
    return mp4


def test_uploaded_look_alikes_never_reach_the_ad_and_requeuing_works(comfy):
    tag = uuid.uuid4().hex[:8]
    first = demo(f"AdReel/real{tag}")
    result = comfy.run(first)
    before = frames(the_mp4(comfy, first, result))
    previews = result.ui(node_by_type(first, "SceneKeyImage")[0])["images"]
    assert previews and all(p["type"] == "temp" for p in previews), previews

    private = comfy.private_folder()  # where AdReel keeps its files: this process's only, no route reaches it
    assert os.stat(private).st_mode & 0o077 == 0 and os.listdir(os.path.join(private, "inputs"))
    files = attack_names(comfy, previews)
    assert plant(comfy, files) >= len(files) // 2  # ComfyUI takes most of them, tricks included

    # a re-queue that reads the cached key images again (only the output name changed)
    again = demo(f"AdReel/again{tag}")
    after_again = frames(the_mp4(comfy, again, comfy.run(again)))

    # a run that makes the brief's copies again (channels changed: same script, same pictures), while the
    # visitor keeps uploading
    stop = threading.Event()

    def keep_planting():
        while not stop.is_set():
            plant(comfy, files[:: 4])

    t = threading.Thread(target=keep_planting, daemon=True)
    t.start()
    try:
        fresh = demo(f"AdReel/fresh{tag}", channels="tiktok")
        after_fresh = frames(the_mp4(comfy, fresh, comfy.run(fresh)))
    finally:
        stop.set()
        t.join(30)

    photo = brand_asset("coffee.png")
    real_score = max(photo_match(f, photo) for f in before)
    assert real_score > 0.5, f"the product photo is not found in the ad made before any upload ({real_score:.2f})"
    for k, (a, b) in enumerate(zip(before, after_again)):  # the same graph: the same pictures
        assert float(np.abs(a.astype(np.float32) - b).mean()) < 3.0, f"re-queued ad, frame {k} differs"
    for name, shots in (("re-queued", after_again), ("rebuilt", after_fresh)):
        for k, shot in enumerate(shots):
            assert magenta_share(shot) < 0.001, f"{name} ad, frame {k}: the visitor's picture is in it"
        score = max(photo_match(f, photo) for f in shots)
        assert score >= real_score - 0.05, f"{name} ad: the real photo is not in it ({score:.2f} < {real_score:.2f})"
    assert comfy.run(first).history["status"]["status_str"] == "success"


def test_the_images_sent_to_the_provider_are_the_real_key_images(stack, comfy):
    _, runway = stack
    prompt = providers_prompt(1, fallback="error", max_cost_usd=0.0)
    result = comfy.run(prompt)
    quiet(runway)
    previews = result.ui(node_by_type(prompt, "SceneKeyImage")[0])["images"]
    real = [view(comfy, p) for p in previews]
    assert plant(comfy, attack_names(comfy, previews)) > 0

    runway.reset()
    prompt["50"]["inputs"]["options_json"] = json.dumps({"seed": 4242})  # ProviderRender runs again
    comfy.run(prompt)
    quiet(runway)
    sent = [np.asarray(Image.open(io.BytesIO(base64.b64decode(c.body["promptImage"].split(",", 1)[1])))
                       .convert("RGB")) for c in runway.calls("create")]
    assert len(sent) == len(real) == 3
    for img in sent:
        assert magenta_share(img) < 0.001, "the visitor's picture was sent to the provider"
        assert min(float(np.abs(img.astype(np.float32) - r).mean()) for r in real if r.shape == img.shape) < 1.0


def test_a_private_folder_set_inside_comfyuis_temp_is_refused(tmp_path):
    """The operator points ADREEL_PRIVATE_DIR into temp/ (where anyone uploads): AdReel says so and keeps its
    files elsewhere."""
    base = tmp_path / "comfy"
    inside = base / "temp" / "adreel-own"
    server = ComfyServer(base_dir=str(base), env={"ADREEL_PRIVATE_DIR": str(inside)})
    server.start()
    try:
        workflow = load_api_workflow("brief_to_ad.json")
        prompt = {nid: workflow[nid] for nid in ("1", "9", "10")}
        prompt["90"] = {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}
        server.run(prompt)
        assert not inside.exists() or not list(inside.glob("adreel-private-*"))
        assert "ADREEL_PRIVATE_DIR is inside ComfyUI's input, output or temp folder" in server.log_text()
    finally:
        server.stop()
