"""Key images and motion from the user's own models, through the real ComfyUI.

The checkpoint is a random-weight Stable Diffusion 1.5 built with ComfyUI's own
model classes (tests/fixtures/random_checkpoint.py, cached in .runtime/cache/):
the real architecture, so CheckpointLoaderSimple detects and loads it like any
SD 1.5 file, and sampling runs the real UNet, CLIP and VAE — at 64×112 px and
one step, so it stays cheap on a CPU.
"""
from __future__ import annotations

import copy
import json
import os
import re
import sys

import numpy as np
import pytest
from PIL import Image

from harness import PromptError, load_api_workflow, node_by_type, output_files
from media import decode_frames, ffprobe, frame_at, stream
from nodes.engine.media.frames import cover_fit
from nodes.engine.keyimage.sampled import scene_seed

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures"))
from random_checkpoint import FILE_NAME, VAE16_FILE_NAME, ensure_checkpoint, ensure_vae16  # noqa: E402

pytestmark = pytest.mark.comfy
OUT_W, OUT_H = 360, 640           # 9:16 at the 360p draft size


def _link(src: str, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    dst = os.path.join(folder, os.path.basename(src))
    if not os.path.exists(dst):
        os.symlink(src, dst)


@pytest.fixture(scope="module")
def models(comfy):
    """The random SD 1.5 checkpoint (and a wrong, 16-channel VAE) in the test server's model folders."""
    ckpt, vae16 = ensure_checkpoint(), ensure_vae16()
    _link(ckpt, os.path.join(comfy.folder("models"), "checkpoints"))
    _link(vae16, os.path.join(comfy.folder("models"), "vae"))
    yield
    comfy.post_json("/free", {"unload_models": True, "free_memory": True})  # 4 GB of fp32 weights


def sdxl_graph(duration: float = 6.0, **keyimage) -> dict:
    """The shipped brief_to_ad_sdxl graph on the random checkpoint: 64 px short side, one step, the 360p draft; 6 s
    is two scenes (hook, CTA), each sampled (every scene sampling costs a UNet pass, two CLIP encodes and a VAE
    decode on the CPU).

    cfg 1 lets ComfyUI skip the negative pass (half the UNet work on a CPU).
    """
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad_sdxl.json"))
    node_by_type(prompt, "BrandBrief")[1]["inputs"]["duration_seconds"] = duration
    node_by_type(prompt, "CheckpointLoaderSimple")[1]["inputs"]["ckpt_name"] = FILE_NAME
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"]["resolution"] = "360p"
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["preset"] = "ultrafast"
    node_by_type(prompt, "SceneKeyImage")[1]["inputs"].update(dict(sample_size=64, steps=1, cfg=1.0, **keyimage))
    return prompt


PRODUCT_LEFT, PRODUCT_RIGHT = (255, 0, 255), (0, 255, 255)


def with_product(comfy, prompt: dict) -> dict:
    """Give the brief a product photo: magenta left half, cyan right half."""
    im = np.zeros((200, 200, 3), np.uint8)
    im[:, :100], im[:, 100:] = PRODUCT_LEFT, PRODUCT_RIGHT
    Image.fromarray(im).save(os.path.join(comfy.folder("input"), "adreel_product.png"))
    prompt["91"] = {"class_type": "LoadImage", "inputs": {"image": "adreel_product.png"}}
    node_by_type(prompt, "BrandBrief")[1]["inputs"]["product_image"] = ["91", 0]
    return prompt


def hero_patches(img: np.ndarray, segment_is_cta: bool = False):
    """The product's two colour patches where the key image's hero zone has its centre."""
    from nodes.engine.media.layout import frame_layout
    hero = frame_layout(OUT_W, OUT_H).hero
    cy = hero.y + hero.h // 2
    d = hero.h // 8 if segment_is_cta else hero.h // 6
    return img[cy - 10:cy + 10, hero.cx - d - 10:hero.cx - d + 10], img[cy - 10:cy + 10, hero.cx + d - 10:hero.cx + d + 10]


def outside_hero(img: np.ndarray) -> np.ndarray:
    from nodes.engine.media.layout import frame_layout
    hero = frame_layout(OUT_W, OUT_H).hero
    return np.concatenate([img[:hero.y - 40], img[hero.y + hero.h + 60:]])


def previews(comfy, result, node_id) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in output_files(comfy, result, node_id)]


def mad(a, b) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def native_ksampler_image(comfy, positive: str, negative: str, seed: int, w: int, h: int, ki: dict) -> np.ndarray:
    """The same sampling done by ComfyUI's own nodes: CLIPTextEncode → KSampler → VAEDecode."""
    g = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": FILE_NAME}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": positive}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": negative}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": w, "height": h, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": seed, "steps": ki["steps"], "cfg": ki["cfg"], "sampler_name": ki["sampler_name"],
            "scheduler": ki["scheduler"], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "adreel_test/native"}},
    }
    result = comfy.run(g)
    (path,) = output_files(comfy, result, "7")
    return np.asarray(Image.open(path).convert("RGB"))


def test_sdxl_workflow_samples_every_scene_with_a_checkpoint(comfy, models):
    prompt = with_product(comfy, sdxl_graph())
    ki_id, ki = node_by_type(prompt, "SceneKeyImage")
    asm_id, _ = node_by_type(prompt, "FFmpegAssemble")
    result = comfy.run(prompt, timeout=900)

    # previews sent: one per scene, at the output size, each a different image
    ui = result.ui(ki_id)
    texts = ui.get("text", [])
    images = previews(comfy, result, ki_id)
    n = len(images)
    assert n == len(texts) == 2, ui
    assert all(im.shape == (OUT_H, OUT_W, 3) for im in images)
    for i in range(n):
        for j in range(i + 1, n):
            assert mad(images[i], images[j]) > 8, (i, j)

    # the product photo is composited: its exact pixels in the hero zone of every scene
    for i, im in enumerate(images):
        left, right = hero_patches(im, segment_is_cta=i == n - 1)
        assert (np.abs(left.astype(int) - PRODUCT_LEFT) <= 1).all() and (np.abs(right.astype(int) - PRODUCT_RIGHT) <= 1).all(), i

    # sampled at the asked size with the SD 1.5 family detected, one derived seed per scene
    seeds = []
    for i, text in enumerate(texts):
        first = text.splitlines()[0]
        assert first.startswith(f"scene {i}: sampled 64x112 (SD 1.5)") and "product image composite" in first, first
        seeds.append(int(re.search(r"seed (\d+)", first).group(1)))
        assert seeds[-1] == scene_seed(ki["inputs"]["seed"], i)
        pos = re.search(r"^prompt: (.*)$", text, re.M).group(1)
        # shared style, then the brand palette as colour names, then the scene's own prompt
        assert pos.startswith(ki["inputs"]["style"] + ", colour palette of ")
        assert "navy blue" in pos and "amber" in pos and "#" not in pos
    assert len(set(seeds)) == n

    # the very image ComfyUI's own KSampler makes from that prompt and seed, framed to the output
    text = texts[1]
    pos = re.search(r"^prompt: (.*)$", text, re.M).group(1)
    neg = re.search(r"^negative: (.*)$", text, re.M).group(1)
    native = native_ksampler_image(comfy, pos, neg, seeds[1], 64, 112, ki["inputs"])
    assert native.shape == (112, 64, 3)
    framed = cover_fit(native, OUT_W, OUT_H)
    assert mad(outside_hero(framed), outside_hero(images[1])) < 1.5     # (the hero zone holds the product)
    assert mad(outside_hero(framed), outside_hero(images[0])) > 8

    # the ad is assembled from them: 6 s of 360x640 H.264, each scene showing its key image
    # (the last 2 s are the assembler's end card)
    (mp4,) = output_files(comfy, result, asm_id)
    info = ffprobe(mp4)
    v = stream(info, "video")
    assert (v["width"], v["height"], v["codec_name"]) == (OUT_W, OUT_H, "h264")
    assert abs(float(info["format"]["duration"]) - 6.0) <= 0.1
    small = [cover_fit(im, 90, 160) for im in images]
    sb = json.load(open(os.path.splitext(mp4)[0] + ".json", encoding="utf-8"))["storyboard"]
    card = round(float(node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["end_card_seconds"]) * sb["fps"])
    for i, sc in enumerate(sb["scenes"]):  # the middle of what each scene shows before the end card
        shown = min(sc["frame_count"], sb["total_frames"] - card - sc["start_frame"])
        t = (sc["start_frame"] + shown / 2) / sb["fps"]
        frame = frame_at(mp4, t, 90, 160)
        closest = min(range(n), key=lambda j: mad(frame, small[j]))
        assert closest == i, (t, [mad(frame, s) for s in small])


def one_scene_script(prompt: dict, seconds: float) -> str:
    """A one-scene script, as a user pastes into ScriptLLM's edited_script: the CTA over the whole ad (one
    sampling per graph instead of one per scene of the template's script)."""
    brief = node_by_type(prompt, "BrandBrief")[1]["inputs"]
    return json.dumps({"title": brief["brand"], "scenes": [{
        "segment": "cta", "duration": seconds, "on_screen_text": brief["cta"],
        "narration": f"{brief['brand']} {brief['product']}. {brief['cta']}.",
        "image_prompt": f"{brief['product']} in a bright living room"}]})


def test_img2img_starts_from_the_composed_layout(comfy, models):
    """denoise < 1: sampling starts from the composed key image, VAE-encoded. At a low denoise the
    init decides the picture: with the product in the init (img2img) or not (ignore), the two
    results differ where the product is, far more than elsewhere.

    It runs right after the full workflow, while ComfyUI still holds the checkpoint that workflow loaded (a
    graph without the loader, as the next test queues, lets ComfyUI drop it: 4 GB to read and build again)."""
    def graph(mode):
        full = with_product(comfy, sdxl_graph(duration=4.0, denoise=0.05, product_image=mode))
        node_by_type(full, "ScriptLLM")[1]["inputs"]["edited_script"] = one_scene_script(full, 4.0)
        ki_id, _ = node_by_type(full, "SceneKeyImage")
        g = {k: v for k, v in full.items() if k in {"1", "2", "3", "20", "91", ki_id}}
        g["99"] = {"class_type": "PreviewImage", "inputs": {"images": [ki_id, 0]}}
        result = comfy.run(g)
        return result.ui(ki_id)["text"], previews(comfy, result, ki_id)

    texts, with_prod = graph("img2img")
    assert len(texts) == 1 and all("denoise 0.05" in t and "product image img2img" in t for t in texts)
    _, without = graph("ignore")
    from nodes.engine.media.layout import frame_layout
    hero = frame_layout(OUT_W, OUT_H).hero
    assert len(with_prod) == len(without) == 1
    for a, b in zip(with_prod, without):
        assert a.shape == b.shape == (OUT_H, OUT_W, 3)
        left, _ = hero_patches(a, segment_is_cta=True)
        assert not (np.abs(left.astype(int) - PRODUCT_LEFT) <= 1).all()   # repainted by the model, not pasted
        d = np.abs(a.astype(int) - b.astype(int)).mean(axis=2)
        inside = d[hero.y:hero.y + hero.h, hero.x:hero.x + hero.w].mean()
        assert inside > 10 and inside > 1.5 * outside_hero(d).mean(), (inside, outside_hero(d).mean())


def test_wrong_vae_falls_back_to_the_composed_image_when_asked(comfy, models):
    """The model fails (a 16-channel VAE on an SD 1.5 model): the chain gives the composed key image."""
    def with_wrong_vae(fallback):
        prompt = sdxl_graph(duration=4.0, fallback=fallback)
        prompt["90"] = {"class_type": "VAELoader", "inputs": {"vae_name": VAE16_FILE_NAME}}
        node_by_type(prompt, "SceneKeyImage")[1]["inputs"]["vae"] = ["90", 0]
        return prompt

    with pytest.raises(PromptError) as exc:
        comfy.run(with_wrong_vae("stop with the error"))
    msg = str(exc.value)
    assert "vae: the VAE makes 16-channel latents but the model samples 4-channel ones" in msg
    assert "SceneKeyImage" in msg

    prompt = with_wrong_vae("composed key image")
    ki_id, _ = node_by_type(prompt, "SceneKeyImage")
    asm_id, _ = node_by_type(prompt, "FFmpegAssemble")
    result = comfy.run(prompt, timeout=900)
    texts = result.ui(ki_id)["text"]
    assert texts and all("FALLBACK" in t and "16-channel" in t and "composed key image instead" in t for t in texts)
    fallback_images = previews(comfy, result, ki_id)

    # the same scenes with no model connected: the composed key images, pixel for pixel
    composed = copy.deepcopy(prompt)
    for key in ("model", "clip", "vae"):
        composed[ki_id]["inputs"].pop(key)
    composed = {k: composed[k] for k in ("1", "2", "3", ki_id)}
    composed["99"] = {"class_type": "PreviewImage", "inputs": {"images": [ki_id, 0]}}
    plain = previews(comfy, comfy.run(composed), ki_id)
    assert len(plain) == len(fallback_images) >= 2
    assert all(mad(a, b) < 0.5 for a, b in zip(plain, fallback_images))

    (mp4,) = output_files(comfy, result, asm_id)
    assert abs(float(ffprobe(mp4)["format"]["duration"]) - 4.0) <= 0.1


@pytest.mark.parametrize("name", ["brief_to_ad_sdxl.json", "brief_to_ad_i2v.json"])
def test_missing_model_file_is_a_clear_error_naming_it(comfy, name):
    """Rejected at submit (HTTP 400) by ComfyUI's loader validation, naming each missing file; the rest
    of the graph (links, types, widget values) validates, so the loaders are the only nodes in error."""
    prompt = load_api_workflow(name)
    loaders = {nid: node["_meta"]["models"] for nid, node in prompt.items() if node.get("_meta", {}).get("models")}
    assert loaders, "the workflow lists the model files it needs"
    log_start = len(comfy.log_text())
    with pytest.raises(PromptError) as exc:
        comfy.queue(prompt)
    msg = str(exc.value)
    assert exc.value.status == 400
    assert set(exc.value.details["node_errors"]) == set(loaders)
    for nid, files in loaders.items():
        for m in files:
            assert f"ckpt_name: '{m['name']}' not in" in msg, msg
        (err,) = exc.value.details["node_errors"][nid]["errors"]
        assert err["type"] == "value_not_in_list" and err["extra_info"]["input_name"] == "ckpt_name"
    assert "Traceback" not in msg and "Traceback" not in comfy.log_text()[log_start:]
    assert comfy.alive()


# ---- MotionClip on a frame batch -------------------------------------------------------------

SRC_W, SRC_H, N_SRC, SRC_FPS, SQ = 160, 90, 16, 8, 20


def src_frame(i: int) -> np.ndarray:
    """8 fps synthetic video: a white square moving 8 px per frame over a brightening background."""
    f = np.full((SRC_H, SRC_W, 3), 20 + 8 * i, np.uint8)
    x = 8 + 8 * i
    f[35:35 + SQ, x:x + SQ] = 235
    return f


def test_motion_clip_fits_an_8fps_frame_batch_to_the_scene(comfy):
    path = os.path.join(comfy.folder("input"), "adreel_square_8fps.png")
    frames = [Image.fromarray(src_frame(i)) for i in range(N_SRC)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=125, loop=0)  # APNG, lossless

    brief = copy.deepcopy(load_api_workflow("brief_to_ad.json"))
    b = node_by_type(brief, "BrandBrief")
    b[1]["inputs"].update(duration_seconds=2.0, aspect_ratio="16:9")
    for image in ("logo", "product_image"):  # the demo's BrandImage nodes are not part of this graph
        b[1]["inputs"].pop(image, None)
    s = node_by_type(brief, "ScriptLLM")
    sp = node_by_type(brief, "StoryboardSplit")
    sp[1]["inputs"]["resolution"] = "720p"
    prompt = {b[0]: b[1], s[0]: s[1], sp[0]: sp[1],
              "20": {"class_type": "LoadImage", "inputs": {"image": os.path.basename(path)}}}
    for nid, interp in (("21", "motion"), ("22", "blend")):
        prompt[nid] = {"class_type": "MotionClip", "inputs": {
            "images": ["20", 0], "scene": [sp[0], 1], "camera": "from scene", "strength": 1.0,
            "source_fps": float(SRC_FPS), "fit": "native", "interpolation": interp, "framing": "cover",
            "fallback": "stop with the error"}}
        prompt[str(int(nid) + 10)] = {"class_type": "SaveVideo", "inputs": {
            "video": [nid, 0], "filename_prefix": f"adreel_test/batch_{interp}", "format": "mp4", "codec": "h264"}}
    result = comfy.run(prompt)

    W, H, k_out = 320, 180, 320 / SRC_W        # decoded at quarter size: 2 output px per source px
    for nid, interp in (("31", "motion"), ("32", "blend")):
        files = output_files(comfy, result, nid)
        assert len(files) == 2                  # one clip per scene of the 2 s script
        clips = []
        for mp4 in files:
            info = ffprobe(mp4)
            v = stream(info, "video")
            n = int(v["nb_read_frames"])
            assert v["r_frame_rate"] == "30/1" and (v["width"], v["height"]) == (1280, 720)
            assert float(v["duration"]) == pytest.approx(n / 30, abs=0.01)
            dec = decode_frames(mp4, W, H).astype(np.float64)
            assert len(dec) == n
            clips.append(dec)
        assert sum(len(c) for c in clips) == 60  # 2 s at 30 fps over the scenes

        def position(k):                        # native speed: 8 source frames a second
            pos = min(k * SRC_FPS / 30, N_SRC - 1)
            return int(pos), pos - int(pos)

        # the codec's level mapping, from the frames that show a source frame exactly (k = 0, 15, 30)
        exact = [(20 + 8 * position(k)[0], c[k][:50].mean()) for c in clips for k in range(0, len(c), 15)]
        a, b = np.polyfit(*zip(*exact), 1)
        level = lambda v: a * v + b  # noqa: E731
        assert abs(a - 1) < 0.1
        for clip_i, dec in enumerate(clips):
            for k, f in enumerate(dec):
                i, t = position(k)
                j = min(i + 1, N_SRC - 1)
                bg = f[:50].mean()                      # rows above the square: the background level
                lo, hi = level(20 + 8 * i), level(20 + 8 * j)
                assert lo - 1 <= bg <= hi + 1, (interp, clip_i, k, bg, lo, hi)     # between its neighbours
                assert bg == pytest.approx(lo + (hi - lo) * t, abs=1.2), (interp, clip_i, k)
                if interp == "motion":                  # the square moves: between, sharp, one of it
                    bright = f[..., 0] > 200
                    cx = np.nonzero(bright)[1].mean()
                    left, right = (8 + 8 * i + SQ / 2) * k_out, (8 + 8 * j + SQ / 2) * k_out
                    assert left - 1.5 <= cx <= right + 1.5, (clip_i, k, cx, left, right)
                    assert cx == pytest.approx(left + (right - left) * t, abs=2.0), (clip_i, k)
                    assert abs(bright.sum() - (SQ * k_out) ** 2) < 0.15 * (SQ * k_out) ** 2, (clip_i, k)
    texts = result.ui("21")["text"]
    assert all("16 model frames at 8 fps" in t and "motion interpolation" in t for t in texts)


def test_blank_frame_batch_falls_back_to_a_camera_move_on_the_key_image(comfy):
    """A failed or bypassed video model gives blank frames: stop with a clear error, or (when chosen)
    move the camera over the key image instead, saying so."""
    key = np.zeros((90, 160, 3), np.uint8)
    key[..., 0] = np.linspace(0, 255, 160, dtype=np.uint8)[None, :]
    key[..., 2] = np.linspace(0, 255, 90, dtype=np.uint8)[:, None]
    key[30:60, 60:100] = 255
    Image.fromarray(key).save(os.path.join(comfy.folder("input"), "adreel_key.png"))

    brief = load_api_workflow("brief_to_ad.json")
    b, s, sp = (node_by_type(brief, t) for t in ("BrandBrief", "ScriptLLM", "StoryboardSplit"))
    b[1]["inputs"].update(duration_seconds=2.0, aspect_ratio="16:9")
    for image in ("logo", "product_image"):  # the demo's BrandImage nodes are not part of this graph
        b[1]["inputs"].pop(image, None)
    sp[1]["inputs"]["resolution"] = "720p"

    def graph(fallback):
        return {b[0]: b[1], s[0]: s[1], sp[0]: sp[1],
                "20": {"class_type": "EmptyImage", "inputs": {"width": 160, "height": 90, "batch_size": 14, "color": 0}},
                "21": {"class_type": "LoadImage", "inputs": {"image": "adreel_key.png"}},
                "22": {"class_type": "MotionClip", "inputs": {
                    "images": ["20", 0], "scene": [sp[0], 1], "camera": "zoom_in", "strength": 1.0, "source_fps": 8.0,
                    "fit": "stretch", "interpolation": "motion", "framing": "cover", "key_image": ["21", 0],
                    "fallback": fallback}},
                "23": {"class_type": "SaveVideo", "inputs": {
                    "video": ["22", 0], "filename_prefix": "adreel_test/fallback", "format": "mp4", "codec": "h264"}}}

    with pytest.raises(PromptError) as exc:
        comfy.run(graph("stop with the error"))
    assert "images: scene 0: every frame of the batch is the same flat colour" in str(exc.value)

    result = comfy.run(graph("camera move"))
    assert all(t.startswith(f"scene {i}: FALLBACK") and "camera move zoom_in over the key image" in t
               for i, t in enumerate(result.ui("22")["text"]))
    framed = cover_fit(key, 320, 180).astype(np.int16)
    for mp4 in output_files(comfy, result, "23"):
        frames = decode_frames(mp4, 320, 180).astype(np.int16)
        assert np.abs(frames[0] - framed).mean() < 6                 # the key image, not the blank batch
        assert np.abs(frames[-1] - frames[0]).mean() > 2             # and the camera moves
