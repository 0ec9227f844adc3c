"""Key images from a model, the parts without the model: sizes per family, prompts, seeds, finishing."""
import numpy as np
import pytest
from PIL import Image

from nodes.engine.media.layout import frame_layout
from nodes.engine.keyimage.model_sizes import CONFIG_FAMILY, FAMILIES, family_from_config_names, sample_size
from nodes.engine.models import AdReelInputError, StoryboardScene
from nodes.engine.keyimage.sampled import (
    colour_name,
    finish_sampled,
    name_hex_colours,
    palette_phrase,
    sampled_problem,
    scene_prompts,
    scene_seed,
)


@pytest.mark.parametrize("family,out,expect", [
    ("sdxl", (1080, 1920), (768, 1344)), ("sdxl", (1080, 1080), (1024, 1024)), ("sdxl", (1920, 1080), (1344, 768)),
    ("sd15", (1080, 1920), (512, 896)), ("sd15", (1080, 1080), (512, 512)), ("sd15", (1920, 1080), (896, 512)),
    ("flux", (1080, 1920), (768, 1344)), ("sd2", (1080, 1920), (768, 1344)),
])
def test_family_sizes_at_the_output_aspect(family, out, expect):
    """SDXL's own buckets (768×1344 for 9:16), SD 1.5 at 512 on the short side."""
    w, h = sample_size(FAMILIES[family], *out)
    assert (w, h) == expect
    assert w % 64 == 0 and h % 64 == 0


def test_area_families_stay_near_one_megapixel():
    for out in [(1080, 1920), (1080, 1080), (1920, 1080)]:
        w, h = sample_size(FAMILIES["sdxl"], *out)
        assert 0.9e6 < w * h < 1.1e6
        assert abs(w / h - out[0] / out[1]) < 0.04


def test_explicit_short_side_overrides_the_family():
    assert sample_size(FAMILIES["sdxl"], 720, 1280, short_side=64) == (64, 112)
    assert sample_size(FAMILIES["sd15"], 1280, 720, short_side=64) == (112, 64)
    with pytest.raises(AdReelInputError) as exc:
        sample_size(FAMILIES["sd15"], 720, 1280, short_side=32)
    assert exc.value.field == "sample_size"


MRO_SCRIPT = """
import json, sys
sys.argv = ["main.py", "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
import comfy.supported_models as sm
print(json.dumps({m.__name__: [c.__name__ for c in m.__mro__] for m in sm.models}))
"""


@pytest.fixture(scope="module")
def comfy_model_configs() -> dict[str, list[str]]:
    """Every model config of the pinned ComfyUI (comfy.supported_models) with its class names along the MRO,
    as the node reads them from a loaded checkpoint (api.model_config_names)."""
    import json
    import subprocess
    import sys
    from harness import comfyui_dir
    out = subprocess.run([sys.executable, "-c", MRO_SCRIPT], cwd=comfyui_dir(), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("config,family", [
    ("SD15", "sd15"), ("SD15_instructpix2pix", "sd15"), ("SD20", "sd2"), ("SD21UnclipH", "sd2"),
    ("SDXL", "sdxl"), ("SSD1B", "sdxl"), ("Segmind_Vega", "sdxl"), ("KOALA_700M", "sdxl"), ("SDXLRefiner", "sdxl"),
    ("SD3", "sd3"), ("Flux", "flux"), ("FluxSchnell", "flux"), ("Flux2", "flux"), ("Chroma", "flux"),
    ("Stable_Cascade_C", "cascade"), ("QwenImage", "qwen"), ("HunyuanImage21", "hunyuan_image"),
    ("WAN21_T2V", "other"), ("SVD_img2vid", "other"), ("AuraFlow", "other"),
])
def test_family_of_the_pinned_comfyuis_model_configs(comfy_model_configs, config, family):
    """The family a real checkpoint's config resolves to, from ComfyUI's own class hierarchy (subclasses such
    as SSD-1B, Vega, KOALA and Flux 2 resolve through their parents)."""
    assert family_from_config_names(comfy_model_configs[config]).name == family


def test_every_config_name_the_sizes_know_exists_in_the_pinned_comfyui(comfy_model_configs):
    known = {name for mro in comfy_model_configs.values() for name in mro}
    assert sorted(set(CONFIG_FAMILY) - known) == []  # a renamed class would silently become "other"
    assert family_from_config_names(["SomethingNew", "BASE", "object"]).name == "other"


@pytest.mark.parametrize("hex_,name", [("#1E3A8A", "navy blue"), ("#F59E0B", "amber"), ("#10B981", "emerald green"),
                                       ("#FFFFFF", "white"), ("#DC2626", "red")])
def test_brand_colours_become_names_a_model_knows(hex_, name):
    assert colour_name(hex_) == name


def scene(**kw):
    base = dict(index=2, segment="solution", start=3.0, duration=3.0, start_frame=90, frame_count=90,
                image_prompt="RoboVac X2 in use, clean studio light, confident advertising photography, "
                             "palette #1E3A8A #F59E0B",
                negative_prompt="blurry, deformed", palette=["#1E3A8A", "#F59E0B", "#10B981"])
    base.update(kw)
    return StoryboardScene(**base)


def test_prompts_share_style_and_palette_then_the_scene():
    pos, neg = scene_prompts(scene(), style="glossy product photo", negative="text, watermark")
    assert pos.startswith("glossy product photo, colour palette of navy blue, amber and emerald green, RoboVac X2")
    assert "#" not in pos and pos.endswith("palette navy blue amber")
    assert neg == "text, watermark, blurry, deformed"
    assert palette_phrase(["#1E3A8A", "#1E3A8B"]) == "colour palette of navy blue"
    assert name_hex_colours("a #10B981 wall") == "a emerald green wall"
    # a scene without an image prompt falls back to its visual direction
    assert scene_prompts(scene(image_prompt="", visual_direction="hero shot"), style="")[0].endswith("hero shot")


def test_scene_seeds_are_distinct_stable_and_not_shifted_copies():
    seeds = [scene_seed(42, i) for i in range(8)]
    assert len(set(seeds)) == 8 and seeds == [scene_seed(42, i) for i in range(8)]
    assert all(0 <= s < 2 ** 64 for s in seeds)
    # "increment" control: the next run's scenes are not this run's scenes moved by one
    assert not set(scene_seed(43, i) for i in range(8)) & set(seeds)


def test_blank_or_broken_samples_are_reported():
    assert sampled_problem(np.random.default_rng(0).random((8, 8, 3))) is None
    assert "NaN" in sampled_problem(np.full((8, 8, 3), np.nan))
    assert "blank" in sampled_problem(np.zeros((8, 8, 3)))


def test_finishing_frames_the_sample_and_keeps_the_product_pixels():
    rng = np.random.default_rng(1)
    sampled = (rng.random((112, 64, 3)) * 255).astype(np.uint8)
    product = Image.new("RGBA", (200, 200), (255, 0, 255, 255))      # opaque magenta, rounded by the finisher
    out = np.asarray(finish_sampled(sampled, scene(), 720, 1280, product_image=product))
    assert out.shape == (1280, 720, 3)
    hero = frame_layout(720, 1280).hero
    centre = out[hero.y + hero.h // 2 - 20:hero.y + hero.h // 2 + 20, hero.cx - 20:hero.cx + 20]
    assert (centre == (255, 0, 255)).all()                           # exact product pixels
    plain = np.asarray(finish_sampled(sampled, scene(), 720, 1280, product_image=product, composite_product=False))
    assert not (plain == (255, 0, 255)).all(axis=2).any()
    # outside the hero zone the sample shows, cover-fitted (112x64 → 1280x731, centre-cropped)
    assert np.abs(plain.astype(int).mean(axis=(0, 1)) - sampled.mean(axis=(0, 1))).max() < 12


# ---- what a viewer sees: text and product steady through the camera move -------------------------

import os  # noqa: E402

import cv2  # noqa: E402

from nodes.engine.assembly.cards import end_card, logo_overlay  # noqa: E402
from nodes.engine.keyimage.composed import StillImage, compose_key_image, load_image_file, product_slot  # noqa: E402
from nodes.engine.media.layout import Box  # noqa: E402
from nodes.engine.motion.camera import steady_box  # noqa: E402
from nodes.engine.models import CAMERA_MOVES, Brief  # noqa: E402
from nodes.engine.motion.camera import CameraMoveClip  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COFFEE = os.path.join(ROOT, "assets", "demo", "coffee.png")
LOGO = os.path.join(ROOT, "assets", "demo", "acme_logo.png")
ASPECTS = {"9:16": (216, 384), "1:1": (288, 288), "16:9": (384, 216)}


@pytest.mark.parametrize("aspect", ASPECTS)
def test_every_box_a_viewer_reads_lies_in_the_safe_zone(aspect):
    W, H = ASPECTS[aspect]
    lay = frame_layout(W * 5, H * 5)
    for name in ("brand_bar", "hero", "headline", "subtitles"):
        assert lay.safe.contains(getattr(lay, name)), name
    assert lay.brand_bar.bottom <= lay.hero.y and lay.hero.bottom <= lay.headline.y or lay.landscape


@pytest.mark.parametrize("aspect", ASPECTS)
@pytest.mark.parametrize("move", CAMERA_MOVES)
def test_what_sits_in_the_steady_box_stays_whole_in_its_zone_through_the_rendered_move(aspect, move):
    """Paint the steady box of the hero zone magenta, run the real camera move (the renderer,
    not the layout's own maths) and look at every frame: all of it stays on screen (its area
    only grows with the zoom) and none of it leaves the hero zone."""
    W, H = ASPECTS[aspect]
    zone = frame_layout(W, H).hero
    box = steady_box(zone, W, H, (move,))
    assert box.w >= zone.w * 0.5 and box.h >= zone.h * 0.5, (box, zone)  # a real share of the zone
    img = np.full((H, W, 3), 40, np.uint8)
    img[box.y:box.bottom, box.x:box.right] = (255, 0, 255)
    clip = CameraMoveClip(img, move, 45, 30, W, H)
    area0 = box.w * box.h
    for k, frame in enumerate(clip.rgb_frames()):
        magenta = (frame[..., 0] > 200) & (frame[..., 1] < 60) & (frame[..., 2] > 200)
        ys, xs = np.nonzero(magenta)
        assert magenta.sum() >= area0 * 0.97, (move, k)               # nothing cut off by the frame
        assert zone.x - 1 <= xs.min() and xs.max() <= zone.right + 1, (move, k)
        assert zone.y - 1 <= ys.min() and ys.max() <= zone.bottom + 1, (move, k)


def _coffee():
    return load_image_file(COFFEE, "product_image")


@pytest.mark.parametrize("aspect", ASPECTS)
@pytest.mark.parametrize("segment,move", [("hook", "zoom_in"), ("solution", "pan_right"), ("proof", "pan_up"),
                                          ("cta", "pulse")])
def test_product_photo_is_framed_whole_unstretched_and_steady(aspect, segment, move):
    """The real photograph (found by template matching) is in the key image at its own
    proportions, whole, inside the slot that stays in the hero zone through the move."""
    W, H = ASPECTS[aspect]  # the draft size: the slot and the fit scale with the frame
    sc = scene(segment=segment, camera=move)
    photo = _coffee()
    key = np.asarray(compose_key_image(sc, W, H, "Daybreak Espresso", product_image=photo))
    slot = product_slot(sc, W, H)
    ref = np.asarray(photo.convert("RGB"))
    # the photo is fitted inside the slot minus its white border: try the widths it can have
    best = (-1.0, None, None)
    top = min(slot.w, slot.h * ref.shape[1] // ref.shape[0])
    for w in range(int(top * 0.3), top + 1):
        h = round(w * ref.shape[0] / ref.shape[1])
        t = cv2.resize(ref, (w, h), interpolation=cv2.INTER_AREA)
        res = cv2.matchTemplate(key, t, cv2.TM_CCOEFF_NORMED)
        _, score, _, loc = cv2.minMaxLoc(res)
        if score > best[0]:
            best = (score, loc, (w, h))
    score, (x, y), (w, h) = best
    assert score > 0.9, score                                 # the photograph itself, unretouched
    assert abs((w / h) - ref.shape[1] / ref.shape[0]) < 0.02 + 1 / h  # never stretched (a pixel's rounding aside)
    assert slot.contains(Box(x, y, w, h))
    room = 0.45 if segment == "proof" else 0.75               # (the proof shares its slot with five stars)
    assert w >= slot.w * room or h >= slot.h * room           # and as large as the slot allows


def test_without_a_photo_the_product_name_is_set_inside_the_steady_box():
    W, H = 360, 640
    sc = scene(segment="hook", camera="pan_right")
    img = np.asarray(compose_key_image(sc, W, H, "Daybreak Espresso"))
    base = np.asarray(compose_key_image(sc, W, H, "\u200b"))  # same scene, no visible name
    diff = np.abs(img.astype(int) - base.astype(int)).max(axis=2) > 40
    ys, xs = np.nonzero(diff)
    slot = product_slot(sc, W, H)
    assert len(xs) > 500
    assert slot.x - 3 <= xs.min() and xs.max() <= slot.right + 3 and slot.y - 3 <= ys.min() and ys.max() <= slot.bottom + 3


def test_still_image_is_lossless_content_addressed_and_says_when_it_is_gone(tmp_path):
    rng = np.random.default_rng(3)
    arr = (rng.random((50, 30, 3)) * 255).astype(np.uint8)
    a = StillImage.save(Image.fromarray(arr), str(tmp_path))
    b = StillImage.save(Image.fromarray(arr.copy()), str(tmp_path))
    assert a == b and len(os.listdir(tmp_path)) == 1 and a.shape == (50, 30, 3)
    assert np.array_equal(a.load(), arr)
    os.remove(a.path)
    with pytest.raises(AdReelInputError) as exc:
        a.load()
    assert exc.value.field == "image" and "queue the prompt again" in exc.value.message


def test_a_key_image_replaced_in_temp_never_reaches_the_ad(tmp_path):
    """ComfyUI's /upload/image writes into temp/ with overwrite: a visitor who replaces another prompt's key image
    file (same name, same size, other pixels; or not an image at all) gets that prompt an error, not their picture."""
    arr = (np.random.default_rng(4).random((40, 24, 3)) * 255).astype(np.uint8)
    still = StillImage.save(Image.fromarray(arr), str(tmp_path))
    Image.fromarray(255 - arr).save(still.path)  # same name and size, another picture
    with pytest.raises(AdReelInputError) as exc:
        still.load()
    assert "was changed" in exc.value.message and os.path.basename(still.path) in exc.value.message
    with open(still.path, "wb") as f:
        f.write(b"#EXTM3U\n#EXT-X-ENDLIST\n")
    with pytest.raises(AdReelInputError) as exc:
        still.load()
    assert "not its PNG" in exc.value.message


def test_camera_move_over_a_still_on_disk_matches_the_one_in_memory_and_keeps_no_pixels(tmp_path):
    rng = np.random.default_rng(4)
    arr = (rng.random((96, 54, 3)) * 255).astype(np.uint8)
    still = StillImage.save(Image.fromarray(arr), str(tmp_path))
    mem = CameraMoveClip(arr, "drift", 20, 30, 54, 96)
    disk = CameraMoveClip(still, "drift", 20, 30, 54, 96)
    for f_mem, f_disk in zip(mem.yuv_frames(0, 20), disk.yuv_frames(0, 20)):
        assert np.array_equal(f_mem, f_disk)
    assert disk._planes is None                              # decoded for the pass, not kept
    assert all(np.array_equal(x, y) for x, y in zip(mem.rgb_frames(0, 3), disk.rgb_frames(0, 3)))
    with pytest.raises(ValueError):
        CameraMoveClip(object(), "drift", 20, 30, 54, 96)


def demo_brief(**kw) -> Brief:
    base = dict(brand="Acme", product="Daybreak Espresso", cta="Shop now at acme.com",
                brand_colors=["#2E1A12", "#B5502F", "#E8C38A"], product_image_path=COFFEE)
    base.update(kw)
    return Brief(**base)


@pytest.mark.parametrize("aspect", ASPECTS)
@pytest.mark.parametrize("position", ["top-right", "top-left", "bottom-right", "bottom-left"])
def test_corner_logo_sits_in_the_safe_zone_clear_of_the_product(aspect, position):
    W, H = (v * 5 for v in ASPECTS[aspect])
    lay = frame_layout(W, H)
    for logo in (None, load_image_file(LOGO, "logo")):
        img, x, y = logo_overlay(demo_brief(), logo, W, H, 0.22, 0.9, position)
        box = Box(x, y, img.width, img.height)
        assert lay.safe.contains(box), (box, lay.safe)
        if position.startswith("top"):
            assert box.bottom <= lay.hero.y                 # never over the packshot
        else:
            assert box.bottom <= lay.subtitles.y            # never under the subtitles


@pytest.mark.parametrize("aspect", ASPECTS)
def test_end_card_shows_logo_packshot_and_cta_inside_the_safe_zone(aspect):
    W, H = ASPECTS[aspect]  # the layout scales with the frame: a draft-sized card shows the same geometry
    lay = frame_layout(W, H)
    logo = load_image_file(LOGO, "logo")
    card = np.asarray(end_card(demo_brief(), W, H, logo))
    plain = np.asarray(end_card(demo_brief(product_image_path=None), W, H, logo))
    # the photograph is on the card, whole and at its proportions
    ref = np.asarray(_coffee().convert("RGB"))
    best = max((cv2.minMaxLoc(cv2.matchTemplate(card, cv2.resize(ref, (w, round(w * 2 / 3)), interpolation=cv2.INTER_AREA),
                                                cv2.TM_CCOEFF_NORMED))[1], w)
               for w in range(W // 8, lay.safe.w) if round(w * 2 / 3) < H)
    assert best[0] > 0.95, best
    # everything drawn (logo, photo, type; not the soft light behind the photo) differs from the
    # bare gradient only inside the safe zone, above the subtitles
    bg = np.asarray(end_card(demo_brief(product_image_path=None, brand="\u200b", product="\u200b", cta="\u200b"),
                             W, H, None)).astype(int)
    for img in (card, plain):
        drawn = np.abs(img.astype(int) - bg).max(axis=2) > 60
        ys, xs = np.nonzero(drawn)
        assert lay.safe.x <= xs.min() and xs.max() <= lay.safe.right
        assert lay.safe.y <= ys.min() and ys.max() <= lay.subtitles.y


# ---- the key image as a native IMAGE that keeps its pixels on disk ---------------------------------

def _node_layer():
    """The node layer imports ComfyUI's API: found through ADREEL_COMFYUI (set by `make test`)."""
    import importlib
    import sys
    comfy = os.environ.get("ADREEL_COMFYUI") or os.path.join(ROOT, ".runtime", "ComfyUI")
    assert os.path.isfile(os.path.join(comfy, "main.py")), f"no ComfyUI at {comfy} to import the node layer from (run `make setup`)"
    if comfy not in sys.path:
        sys.path.append(comfy)
    return importlib.import_module("nodes.comfy_nodes.lazy_image")


def test_key_image_tensor_is_an_ordinary_image_to_every_other_node(tmp_path):
    lazy = _node_layer()
    import torch
    import comfy.utils  # ComfyUI's own image helpers, as core nodes call them
    rng = np.random.default_rng(5)
    arr = (rng.random((64, 36, 3)) * 255).astype(np.uint8)
    still = StillImage.save(Image.fromarray(arr), str(tmp_path))
    x = lazy.StillTensor(still)
    plain = torch.from_numpy(arr.astype(np.float32) / 255).unsqueeze(0)
    assert isinstance(x, torch.Tensor) and x.shape == (1, 64, 36, 3) and x.dtype == torch.float32
    assert x.device.type == "cpu" and len(x) == 1 and x.ndim == 4
    # what core nodes do with an IMAGE: SaveImage/PreviewImage, VAEEncode, upscalers, batching
    for image in x:
        assert np.allclose(255.0 * image.cpu().numpy(), arr, atol=1e-3)
    assert torch.equal(x[:, :, :, :3], plain) and torch.equal(x.cpu(), plain)
    up = comfy.utils.common_upscale(x.movedim(-1, 1), 18, 32, "bilinear", "disabled")
    assert torch.allclose(up, comfy.utils.common_upscale(plain.movedim(-1, 1), 18, 32, "bilinear", "disabled"))
    assert torch.equal(torch.cat([x, plain]), torch.cat([plain, plain]))
    assert type(x * 1.0) is torch.Tensor and type(x.clone()) is torch.Tensor   # results are plain tensors
    assert lazy.still_of(x) == still and lazy.still_of(plain) is None
    import copy
    import pickle
    assert torch.equal(pickle.loads(pickle.dumps(x)), plain) and lazy.still_of(copy.deepcopy(x)) == still


def test_thirty_key_images_at_1080x1920_hold_no_pixels_in_memory(tmp_path):
    """Measured: what 30 scenes' key images add to the process while ComfyUI caches them
    (as plain float IMAGEs they would be 30 x 25 MB)."""
    lazy = _node_layer()
    import gc
    import psutil
    rng = np.random.default_rng(6)
    stills = [StillImage.save(Image.fromarray((rng.random((1920 // 8, 1080 // 8, 3)) * 255).astype(np.uint8))
                              .resize((1080, 1920), Image.NEAREST), str(tmp_path)) for _ in range(30)]
    def use(t):  # what MotionClip asks of it: its batch size, and the still behind it
        assert t.shape[0] == 1 and lazy.still_of(t).shape == (1920, 1080, 3)

    gc.collect()
    before = psutil.Process().memory_info().rss
    cache = [lazy.StillTensor(s) for s in stills]
    for t in cache:
        use(t)
    gc.collect()
    added = psutil.Process().memory_info().rss - before
    assert added < 4 * 2**20, f"{added / 2**20:.1f} MB for 30 cached key images"
    # a node that does want the pixels gets them decoded for the moment it uses them: nothing stays
    import ctypes
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc keeps freed blocks until asked
    for t in cache[:6]:
        assert float(t[0, 0, 0, 0]) >= 0
    gc.collect()
    if trim:
        trim(0)
        assert psutil.Process().memory_info().rss - before < 12 * 2**20
    assert sum(t.numel() * t.element_size() for t in cache) == 30 * 1920 * 1080 * 3 * 4  # what they stand for
