"""Brief validation, the template script and the storyboard's timing."""
import re

import pytest

from nodes.engine.models import AdReelInputError, Brief, Script, parse_model
from nodes.engine.script import write_template_script
from nodes.engine.storyboard import build_storyboard, output_size

GOOD = dict(brand="Acme", product="RoboVac X2", cta="Shop now", duration_seconds=15, aspect_ratio="9:16")


def brief(**kw):
    return parse_model(Brief, {**GOOD, **kw}, "brief")


@pytest.mark.parametrize("field,value,fragment", [
    ("brand", "   ", "brief.brand: must not be empty"),
    ("product", "", "brief.product: must not be empty"),
    ("cta", "", "brief.cta: must not be empty"),
    ("duration_seconds", 0, "brief.duration_seconds: must be more than 0"),
    ("duration_seconds", -3, "brief.duration_seconds: must be more than 0"),
    ("duration_seconds", 180.5, "brief.duration_seconds: must be at most 180"),
    ("aspect_ratio", "4:3", "brief.aspect_ratio: is not one of 9:16, 4:5, 1:1, 16:9"),
    ("brand_colors", "#12345, blue", "brief.brand_colors"),
    ("language", "english!", "brief.language"),
])
def test_bad_brief_names_the_field(field, value, fragment):
    with pytest.raises(AdReelInputError) as exc:
        brief(**{field: value})
    assert fragment in str(exc.value)
    assert exc.value.field.startswith(f"brief.{field}")


def test_literal_text_is_kept_verbatim():
    text = 'Say "hi": 100% C:\\path\\ 🎉 한국어'
    b = brief(cta=text, product=text)
    assert b.cta == text and b.product == text


def test_colours_are_normalised():
    assert brief(brand_colors="1e3a8a,#f59e0b").brand_colors == ["#1E3A8A", "#F59E0B"]


@pytest.mark.parametrize("duration", [0.5, 3, 7.3, 15, 29.97, 60, 121.4, 180])
@pytest.mark.parametrize("seed", [0, 1, 99])
def test_template_durations_add_up(duration, seed):
    b = brief(duration_seconds=duration)
    s = write_template_script(b, seed=seed)
    assert abs(sum(sc.duration for sc in s.scenes) - duration) <= 0.05
    assert s.scenes[0].start == 0 and s.scenes[-1].end == pytest.approx(duration)
    for a, c in zip(s.scenes, s.scenes[1:]):
        assert c.start == pytest.approx(a.end)
    # the script survives its own schema
    Script.model_validate_json(s.model_dump_json())


def test_template_respects_the_brief():
    b = brief(duration_seconds=15, cta="Order at acme.com today")
    s = write_template_script(b, seed=3)
    assert [sc.segment for sc in s.scenes] == ["hook", "problem", "solution", "proof", "cta"]
    assert s.scenes[-1].on_screen_text == "Order at acme.com today"
    text = " ".join(sc.narration + " " + sc.on_screen_text for sc in s.scenes)
    assert "Acme" in text and "RoboVac X2" in text
    assert all(sc.camera != "static" for sc in s.scenes), "every scene should move"


def test_korean_brief_gets_korean_text():
    s = write_template_script(brief(language="ko"), seed=0)
    hangul = re.compile(r"[\uac00-\ud7a3]")
    assert all(hangul.search(sc.narration) for sc in s.scenes)
    assert s.language == "ko"


def test_unsupported_language_is_said_plainly():
    s = write_template_script(brief(language="sw"), seed=0)
    assert any("no phrasing in the brief's language" in n for n in s.notes)


def test_seed_decides_the_script():
    b = brief()
    assert write_template_script(b, 5) == write_template_script(b, 5)
    variants = {write_template_script(b, seed).model_dump_json() for seed in range(6)}
    assert len(variants) > 1


@pytest.mark.parametrize("fps", [24, 25, 30])
@pytest.mark.parametrize("duration", [0.5, 7.3, 15, 59.99, 180])
def test_storyboard_frames_are_exact(fps, duration):
    b = brief(duration_seconds=duration)
    sb = build_storyboard(b, write_template_script(b, 1), fps=fps)
    assert sb.total_frames == round(duration * fps)
    assert sum(s.frame_count for s in sb.scenes) == sb.total_frames
    assert all(s.frame_count >= 1 for s in sb.scenes)
    starts = [s.start_frame for s in sb.scenes]
    assert starts == sorted(starts) and starts[0] == 0


@pytest.mark.parametrize("aspect,res,size", [
    ("9:16", "1080p", (1080, 1920)), ("1:1", "1080p", (1080, 1080)), ("16:9", "1080p", (1920, 1080)),
    ("9:16", "720p", (720, 1280)), ("16:9", "4k", (3840, 2160)),
    ("9:16", "180p", (180, 320)), ("16:9", "360p", (640, 360)), ("1:1", "180p", (180, 180)),
])
def test_output_sizes(aspect, res, size):
    assert output_size(aspect, res) == size


def test_the_longest_names_briefbrand_accepts_make_a_valid_script():
    """80-character brand, 200-character product, 120-character CTA, in a 5 s ad: a valid script
    whose narration fits, the brand and product shown where they are not said."""
    from nodes.engine.script.generate import bar_for
    b = brief(brand="B" * 40 + " Brand " + "b" * 33, product="P" * 100 + " Product " + "p" * 91,
              cta="Call 010-1234-5678 or visit https://acme.example/deal?utm=1 " + "x" * 60, duration_seconds=5)
    assert len(b.brand) == 80 and len(b.product) == 200 and len(b.cta) == 120
    s = write_template_script(b, seed=0)
    Script.model_validate_json(s.model_dump_json())
    assert [i for i in bar_for(b).check(s) if i.field.endswith("narration")] == []
