"""Channels choose the formats, through the real ComfyUI: the shipped demo with ``aspect_ratio`` ``auto``.

* "Instagram feed" renders a 4:5 ad, "TikTok" a 9:16 one;
* in every scene and on the end card, the product photo and the logo (template matching) and every word
  of the headline, the subtitles, the product's name and the CTA that Tesseract finds (its word boxes)
  lie inside the channel's published safe zone — for TikTok, clear of its right-side action rail and
  its bottom caption;
* a length TikTok does not take is refused before anything renders, naming the field and the limits.

The zones are written out from the platforms' guides (docs/channels.md), not read from the code.
"""
from __future__ import annotations

import subprocess
import tempfile

import cv2
import numpy as np
import pytest
from PIL import Image

from harness import PromptError, node_by_type
from media import TESSERACT_ENV, ffprobe, normalise_text, stream
from nodes.engine.media.layout import Box
from test_demo_visuals import DOWN, demo_prompt, frame, photo_and_logo, render, scene_frames

pytestmark = pytest.mark.comfy


def zone_720(channel: str) -> tuple[tuple[int, int], Box]:
    """(frame size at 720p, the published safe zone in it)."""
    if channel == "Instagram feed":  # 4:5 720×900; 64 px at 1080 wide of title-safe margin on every side
        m = round(64 * 720 / 1080)
        return (720, 900), Box(m, m, 720 - 2 * m, 900 - 2 * m)
    # TikTok 9:16 720×1280; at 1080×1920: 150 px top, 440 px bottom (caption), 150 px right (rail), 60 px left
    s = 720 / 1080
    left, top, right, bottom = round(60 * s), round(150 * s), round(150 * s), round(440 * s)
    return (720, 1280), Box(left, top, 720 - left - right, 1280 - top - bottom)


def channel_prompt(channel: str, seconds: float = 8.5) -> dict:
    """The demo for ``channel``: 8.5 s is the shortest the template still writes all three scene kinds for (hook,
    solution, CTA), each with its own layout to check; ultrafast, as the checks read the frames, not the codec."""
    prompt = demo_prompt("auto", seconds)
    node_by_type(prompt, "BrandBrief")[1]["inputs"]["channels"] = channel
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["preset"] = "ultrafast"
    return prompt


def ocr_words(img: np.ndarray) -> list[tuple[str, Box]]:
    """Tesseract's words (confidence above 60) and their boxes in frame pixels, read 2× enlarged, as the
    frame is and inverted (white type on a card reads either way)."""
    up = cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (img.shape[1] * 2, img.shape[0] * 2),
                    interpolation=cv2.INTER_CUBIC)
    words = []
    for variant in (up, 255 - up):
        with tempfile.NamedTemporaryFile(suffix=".png") as f:
            Image.fromarray(variant).save(f.name)
            out = subprocess.run(["tesseract", f.name, "stdout", "-l", "eng", "--psm", "11", "tsv"],
                                 capture_output=True, text=True, env=TESSERACT_ENV).stdout
        for line in out.splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) < 12 or cols[0] != "5" or float(cols[10]) < 60:
                continue
            x, y, w, h = (int(v) // 2 for v in cols[6:10])
            words.append((cols[11], Box(x, y, max(1, w), max(1, h))))
    return words


def brand_words(sb) -> set[str]:
    """The words AdReel itself puts on screen: headlines, narration (the subtitles), product, brand, CTA."""
    texts = [sc.on_screen_text for sc in sb.scenes] + [sc.narration for sc in sb.scenes] + \
        [sb.brief.product, sb.brief.brand, sb.brief.cta]
    return {normalise_text(w) for t in texts for w in t.split() if len(normalise_text(w)) >= 4}


@pytest.fixture(scope="module", params=["Instagram feed", "TikTok"])
def channel_ad(comfy, request):
    channel = request.param
    prompt = channel_prompt(channel)
    path, manifest, sb = render(comfy, prompt)
    size, zone = zone_720(channel)
    end_card = round(node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["end_card_seconds"] * sb.fps)
    return dict(aspect=channel, path=path, sb=sb, size=size, zone=zone, end_start=sb.total_frames - end_card)


def test_the_channel_chooses_the_aspect(channel_ad):
    v = stream(ffprobe(channel_ad["path"]), "video")
    assert (v["width"], v["height"]) == channel_ad["size"]


def test_every_brand_element_lies_inside_the_channels_safe_zone(channel_ad):
    d, zone = channel_ad, channel_ad["zone"]
    slack = zone.inset(-DOWN)  # a reduced-scale pixel of the template matching
    expected = brand_words(d["sb"])
    read_total = 0
    frames = [(f"scene {sc.index}", mid) for sc, _, mid, _, _, _ in scene_frames(d)]
    for where, k in frames + [("end card", d["sb"].total_frames - 3)]:
        img = frame(d, k)
        (score, photo), (mark, logo) = photo_and_logo(d, k)
        assert score > 0.75 and slack.contains(photo), f"{d['aspect']} {where}: photo {photo} ({score:.2f}), zone {zone}"
        assert mark > 0.7 and slack.contains(logo), f"{d['aspect']} {where}: logo {logo} ({mark:.2f}), zone {zone}"
        read = [(t, b) for t, b in ocr_words(img) if normalise_text(t) in expected]
        read_total += len(read)
        for text, box in read:
            assert zone.inset(-2).contains(box), f"{d['aspect']} {where}: {text!r} at {box}, zone {zone}"
    # the check saw the type: headlines, subtitles, the CTA
    assert read_total >= 2 * len(frames), read_total


def test_a_length_tiktok_does_not_take_is_refused_before_anything_renders(comfy):
    with pytest.raises(PromptError) as exc:
        comfy.run(channel_prompt("TikTok", 75.0), timeout=300)
    text = str(exc.value)
    assert "brief.duration_seconds" in text and "TikTok takes 5–60 s" in text, text
