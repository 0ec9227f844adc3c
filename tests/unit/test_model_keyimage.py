"""Key images from a model, the parts without the model: sizes per family, prompts, seeds, finishing."""
import numpy as np
import pytest
from PIL import Image

from nodes.engine.layout import frame_layout
from nodes.engine.model_sizes import FAMILIES, family_from_config_names, sample_size
from nodes.engine.models import AdReelInputError, StoryboardScene
from nodes.engine.sampled_keyimage import (colour_name, finish_sampled, name_hex_colours, palette_phrase,
                                           sampled_problem, scene_prompts, scene_seed)


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


@pytest.mark.parametrize("names,family", [
    (["SD15", "BASE", "object"], "sd15"), (["SSD1B", "SDXL", "BASE", "object"], "sdxl"),
    (["FluxSchnell", "Flux", "BASE", "object"], "flux"), (["SD15_instructpix2pix", "SD15", "BASE"], "sd15"),
    (["SomethingNew", "BASE", "object"], "other"),
])
def test_family_from_comfyui_model_config(names, family):
    assert family_from_config_names(names).name == family


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
