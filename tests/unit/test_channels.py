"""Channels choose the formats, at engine level: the aspect a brief's channels choose, the lengths they
refuse, and the geometry of every brand element inside each channel's safe zone.

The zones here are the platforms' published numbers, written out by the test (pixels at 1080×1920,
Meta's percentages), not read back from the table: a table that drifted from them fails."""
from __future__ import annotations

import os

import numpy as np
import pytest

from nodes.engine import channels
from nodes.engine.assembly.cards import end_card, intro_card, logo_overlay
from nodes.engine.assembly.render import render_plan
from nodes.engine.audio.subtitles import Cue, write_ass
from nodes.engine.keyimage.composed import load_image_file, product_slot
from nodes.engine.media.layout import Box, frame_layout
from nodes.engine.models import ASPECT_RATIOS, AdReelInputError, Brief, parse_model
from nodes.engine.script import write_template_script
from nodes.engine.storyboard import build_storyboard, output_size

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COFFEE = os.path.join(ROOT, "assets", "demo", "coffee.png")
LOGO = os.path.join(ROOT, "assets", "demo", "acme_logo.png")


def published_zone(name: str, W: int, H: int) -> Box:
    """Where a brand element may sit, from the platforms' own guides (docs/channels.md)."""
    px = W / 1080  # TikTok / Shorts guides give pixels at 1080×1920
    if name == "tiktok":         # 150 px top, 440 px bottom, 150 px right rail, 60 px left
        return Box(round(60 * px), round(150 * px), W - round(150 * px) - round(60 * px),
                   H - round(440 * px) - round(150 * px))
    if name == "reels":          # Meta: top 14 %, bottom 35 %, sides 6 %
        return Box(round(W * 0.06), round(H * 0.14), round(W * 0.88), round(H * 0.51))
    if name == "instagram feed":  # the whole 4:5 frame is seen: 64 px title-safe at 1080 wide
        return Box(round(64 * px), round(64 * px), W - 2 * round(64 * px), H - 2 * round(64 * px))
    raise KeyError(name)


def brief(**kw) -> Brief:
    base = dict(brand="Acme", product="Daybreak Espresso", cta="Shop now at acme.com", duration_seconds=15.0,
                brand_colors=["#2E1A12", "#B5502F", "#E8C38A"], product_image_path=COFFEE)
    return parse_model(Brief, {**base, **kw}, "brief")


def grow(box: Box, d: int) -> Box:
    return Box(box.x - d, box.y - d, box.w + 2 * d, box.h + 2 * d)


def test_the_table_is_consistent():
    for c in channels.CHANNELS.values():
        assert c.aspects and all(a in ASPECT_RATIOS for a in c.aspects), c.id
        assert set(c.zones) <= set(c.aspects), c.id
        assert c.max_seconds is None or c.min_seconds < c.max_seconds
        lo, hi = c.recommended
        assert c.min_seconds <= lo < hi and (c.max_seconds is None or hi <= c.max_seconds)
    # every name resolves, whatever its case and separators; all of them in one line of the error
    assert [c.id for c in channels.resolve(["TikTok", "REELS", "youtube-shorts", "IG", "fb_feed", "YouTube"])] == \
        ["tiktok", "reels", "shorts", "instagram feed", "facebook feed", "youtube"]


@pytest.mark.parametrize("names, aspect", [("TikTok", "9:16"), ("Reels", "9:16"), ("Shorts", "9:16"),
                                           ("YouTube", "16:9"), ("Instagram feed", "4:5"),
                                           ("facebook feed, tiktok", "4:5"), ("", "9:16")])
def test_auto_lets_the_channels_choose_the_aspect(names, aspect):
    b = brief(aspect_ratio="auto", channels=names)
    assert b.aspect_ratio == aspect and b.formats_from_channels
    assert Brief.model_validate(b.model_dump()) == b          # the manifest's copy reads back the same


def test_several_channels_render_one_output_per_aspect(monkeypatch):
    b = brief(aspect_ratio="auto", channels="tiktok, reels, instagram feed, youtube", duration_seconds=20)
    sb = build_storyboard(b, write_template_script(b, 1), fps=24, resolution="360p")
    assert [(a, w, h) for a, w, h in render_plan(sb, ())] == [("9:16", 360, 640), ("4:5", 360, 450),
                                                               ("16:9", 640, 360)]
    with pytest.raises(Exception, match=r"channels and extra_aspects: 3 distinct extra aspects .*at most 2"):
        render_plan(sb, ("1:1", "4:5"))
    monkeypatch.setenv("ADREEL_MAX_EXTRA_ASPECTS", "3")
    assert [a for a, _, _ in render_plan(sb, ("1:1", "4:5"))] == ["9:16", "4:5", "16:9", "1:1"]


def test_an_explicit_aspect_wins_and_keeps_its_own_layout():
    b = brief(aspect_ratio="1:1", channels="tiktok, reels", duration_seconds=75)
    assert b.aspect_ratio == "1:1" and not b.formats_from_channels
    for aspect in ASPECT_RATIOS:
        W, H = output_size(aspect, "1080p")
        assert channels.brief_layout(b, W, H) == frame_layout(W, H)
    sb = build_storyboard(b, write_template_script(b, 1), fps=24, resolution="360p")
    assert [a for a, _, _ in render_plan(sb, ())] == ["1:1"]
    assert "TikTok shows 9:16; this ad is 1:1 (aspect_ratio chosen; set it to auto to let the channels choose)" \
        in sb.notes
    assert "TikTok takes 5–60 s; this ad lasts 75 s" in sb.notes
    # the shipped workflows' brief (9:16, "tiktok, reels") keeps today's layout
    shipped = brief(aspect_ratio="9:16", channels="tiktok, reels")
    assert channels.brief_zone(shipped, 1080, 1920) is None


@pytest.mark.parametrize("names, seconds, words", [
    ("TikTok", 75, ["75 s", "TikTok takes 5–60 s", "make the ad 5–60 s"]),
    ("tiktok", 3, ["3 s", "TikTok takes 5–60 s"]),
    ("reels, shorts", 90, ["Shorts takes up to 60 s", "at most 60 s"]),
    ("instagram feed", 0.5, ["Instagram feed takes at least 1 s", "at least 1 s"]),
])
def test_a_length_a_channel_does_not_take_is_refused_naming_the_channel(names, seconds, words):
    with pytest.raises(AdReelInputError) as exc:
        brief(aspect_ratio="auto", channels=names, duration_seconds=seconds)
    assert exc.value.field == "brief.duration_seconds"
    for w in words:
        assert w in exc.value.message, exc.value.message
    assert brief(aspect_ratio="auto", channels=names, duration_seconds=15).duration_seconds == 15


def test_an_unknown_channel_is_refused_by_position_without_repeating_it():
    with pytest.raises(AdReelInputError) as exc:
        brief(aspect_ratio="auto", channels="tiktok, <script>x</script>")
    assert exc.value.field == "brief.channels"
    assert "channel 2 is not one AdReel knows" in exc.value.message and "TikTok, Reels, Shorts" in exc.value.message
    assert "script" not in exc.value.message
    with pytest.raises(AdReelInputError, match="at most 12 channels"):
        brief(channels=",".join(["tiktok"] * 13))


@pytest.mark.parametrize("names, aspect", [("tiktok", "9:16"), ("reels", "9:16"), ("instagram feed", "4:5"),
                                           ("tiktok, reels", "9:16")])
@pytest.mark.parametrize("resolution", ["360p", "1080p"])
def test_every_brand_element_lies_inside_the_channels_published_zone(names, aspect, resolution):
    """The layout's boxes, the corner logo (all four corners, the logo and the wordmark), the product's
    steady slot in the key image, the subtitles' margins and everything drawn on the end card and the
    intro card: inside every named channel's published zone."""
    W, H = output_size(aspect, resolution)
    b = brief(aspect_ratio="auto", channels=names)
    zones = [published_zone(c.id, W, H) for c in channels.known(b.channels)]
    lay = channels.brief_layout(b, W, H)
    boxes = {n: getattr(lay, n) for n in ("brand_bar", "hero", "headline", "subtitles")}
    logo = load_image_file(LOGO, "logo")
    for position in ("top-right", "top-left", "bottom-right", "bottom-left"):
        for mark in (None, logo):
            img, x, y = logo_overlay(b, mark, W, H, 0.22, 0.9, position)
            boxes[f"logo {position} {mark is not None}"] = Box(x, y, img.width, img.height)
    sb = build_storyboard(b, write_template_script(b, 1), fps=24, resolution=resolution)
    for sc in sb.scenes:
        boxes[f"product, scene {sc.index} {sc.camera}"] = product_slot(sc, W, H, zone=channels.brief_zone(b, W, H))
    for zone in zones:
        for name, box in boxes.items():
            assert zone.contains(box), (names, name, box, zone)
    # the headline type shrinks with a smaller zone, never grows
    assert lay.font_px <= frame_layout(W, H).font_px
    # the subtitles: libass centres each line between MarginL and MarginR, its bottom MarginV up
    ass = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"adreel_channels_{os.getpid()}.ass")
    write_ass([Cue(0, 1, "hello")], W, H, ass, zone=channels.brief_zone(b, W, H))
    style = next(line for line in open(ass, encoding="utf-8") if line.startswith("Style:")).split(",")
    os.remove(ass)
    ml, mr, mv = int(style[19]), int(style[20]), int(style[21])
    for zone in zones:
        assert ml >= zone.x and W - mr <= zone.right and H - mv <= zone.bottom, (ml, mr, mv, zone)
    # the end card (logo, packshot, product name, CTA) and the intro card: what differs from the bare
    # gradient lies inside the zone (a few pixels of slack for the button's soft shadow)
    bg = np.asarray(end_card(brief(product_image_path=None, brand="\u200b", product="\u200b", cta="\u200b",
                                   aspect_ratio="auto", channels=names), W, H, None)).astype(int)
    for card in (end_card(b, W, H, logo), end_card(b, W, H, None)):
        drawn = np.abs(np.asarray(card).astype(int) - bg).max(axis=2) > 60
        ys, xs = np.nonzero(drawn)
        found = Box(int(xs.min()), int(ys.min()), int(xs.max() - xs.min()), int(ys.max() - ys.min()))
        for zone in zones:
            assert grow(zone, max(2, W // 100)).contains(found), (names, "end card", found, zone)
    intro = np.asarray(intro_card(b, W, H, logo)).astype(int)
    bare = np.asarray(intro_card(brief(brand="\u200b", aspect_ratio="auto", channels=names), W, H, None)).astype(int)
    ys, xs = np.nonzero(np.abs(intro - bare).max(axis=2) > 60)
    for zone in zones:
        assert zone.contains(Box(int(xs.min()), int(ys.min()), int(xs.max() - xs.min()), int(ys.max() - ys.min())))


def test_tiktok_keeps_the_right_rail_and_the_caption_clear_where_the_default_layout_does_not():
    """The point of the zone: today's 9:16 layout puts the headline and the subtitles under TikTok's
    action rail and caption; the TikTok brief's layout does not."""
    W, H = 1080, 1920
    rail = Box(W - 150, 0, 150, H)           # the like/comment/share column
    caption = Box(0, H - 440, W, 440)         # the caption and the sound

    def overlaps(a: Box, b: Box) -> bool:
        return a.x < b.right and b.x < a.right and a.y < b.bottom and b.y < a.bottom

    plain = frame_layout(W, H)
    assert overlaps(plain.headline, rail) or overlaps(plain.subtitles, caption)
    lay = channels.brief_layout(brief(aspect_ratio="auto", channels="tiktok"), W, H)
    for name in ("brand_bar", "hero", "headline", "subtitles"):
        assert not overlaps(getattr(lay, name), rail) and not overlaps(getattr(lay, name), caption), name

