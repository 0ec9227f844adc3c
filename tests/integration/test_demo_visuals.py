"""What a viewer sees in the shipped demo, at every aspect, through the real ComfyUI.

The demo brief has a product photo (assets/demo/coffee.png) and a logo
(assets/demo/acme_logo.png). The demo (15 s) is rendered at 720p in all four
aspects: 9:16 at the shipped 30 fps, the other three at 24 fps (a frame rate a
user can pick; the scenes, moves and layout are the same, in fewer frames).
Read from the finished MP4s, frame by frame:

* the real photograph is on screen in every scene (multi-scale template
  matching), and so is the logo;
* at the first, middle and last frame of every scene (the two ends of each
  camera move and its middle) Tesseract reads the whole headline and the
  whole wordmark: nothing the brand says is cut by the frame or the move;
* the brand mark appears once per frame: one logo, and no second wordmark
  anywhere else in the picture;
* the end card shows the logo, the packshot and the CTA;
* every brand element (photo, logo, headline) lies inside the aspect's safe zone;
* a 180 s brief, the longest BrandBrief allows, renders with its natural
  number of scenes, for exactly 180 s in exactly its frame count.

Where each check runs: the template matching (photo and logo at both ends
and the middle of every move, the safe zone, no second logo, the end card)
runs at every aspect. OCR runs in full at 9:16 (FULL): the headline and the
wordmark at the first, middle and last frame of every scene, and the whole
picture searched for a second wordmark at two moments of every scene. At the
other aspects, where the same overlays and transitions are only laid out
differently, Tesseract reads the headline at the first frame (the slide-in,
whose distance follows the frame height) and the middle of every scene, the
wordmark and the whole picture at the middle: what the aspect changes (the
layout, the wrap of the headline, the key image's composition) is read in
every scene, and what it does not (a transition's blend over the headline,
the static badge at other moments) once, at 9:16. The photo is found by a
coarse-to-fine search over sizes (a subset of the sizes: never a better score
than trying all). The frames the checks read are decoded once per render (one
ffmpeg pass), each template search runs once per frame. The 180 s brief is
rendered as a 360p draft at 1:1 (the fewest pixels a user can ask for that
still shows the photo: it is found in every scene at 360×360).
"""
from __future__ import annotations

import copy
import difflib
import json
import os
import re

import cv2
import numpy as np
import pytest
from PIL import Image

from harness import load_api_workflow, node_by_type, output_files
from media import decode_frames, ffprobe, frames_by_index, normalise_text, ocr, read_small_type, shot_boundaries, stream
from nodes.engine.assembly.encode import transition_half_widths
from nodes.engine.media.layout import Box, frame_layout
from nodes.engine.models import Brief, Storyboard
from nodes.engine.script import write_template_script

pytestmark = pytest.mark.comfy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COFFEE = np.asarray(Image.open(os.path.join(ROOT, "assets", "demo", "coffee.png")).convert("RGB"))
LOGO = np.asarray(Image.open(os.path.join(ROOT, "assets", "demo", "acme_logo.png")).convert("RGBA"))
# Every check runs at every aspect; the OCR that proves nothing new at another aspect runs at FULL only
# (see the module docstring).
FULL = "9:16"
SIZES_720 = {"9:16": (720, 1280), "4:5": (720, 900), "1:1": (720, 720), "16:9": (1280, 720)}
DOWN = 3  # template matching on frames reduced 3x: fast, and still the photo's own detail


def demo_prompt(aspect: str, seconds: float | None = None) -> dict:
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad.json"))
    brief = node_by_type(prompt, "BrandBrief")[1]["inputs"]
    brief["aspect_ratio"] = aspect
    if seconds:
        brief["duration_seconds"] = seconds
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"]["resolution"] = "720p"
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["preset"] = "veryfast"
    if aspect != FULL:
        node_by_type(prompt, "StoryboardSplit")[1]["inputs"]["fps"] = "24"
    return prompt


def render(comfy, prompt, timeout=1800):
    result = comfy.run(prompt, timeout=timeout)
    node_id, _ = node_by_type(prompt, "FFmpegAssemble")
    (path,) = output_files(comfy, result, node_id)
    manifest = json.load(open(os.path.splitext(path)[0] + ".json", encoding="utf-8"))
    return path, manifest, Storyboard.model_validate(manifest["storyboard"])


@pytest.fixture(scope="module", params=list(SIZES_720))
def demo(comfy, request):
    aspect = request.param
    prompt = demo_prompt(aspect)
    path, manifest, sb = render(comfy, prompt)
    end_card = round(node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["end_card_seconds"] * sb.fps)
    d = dict(aspect=aspect, path=path, sb=sb, end_start=sb.total_frames - end_card, size=SIZES_720[aspect])
    d["wanted"] = {sb.total_frames - 3}.union(*(set(ks[1:]) for ks in scene_frames(d)))
    return d


def frame(d, k: int) -> np.ndarray:
    """Frame ``k`` of the MP4, read-only. The frames the module's checks read (``d["wanted"]``) are
    decoded in one pass and kept with the render, so each is decoded once whichever tests read it."""
    frames = d.setdefault("frames", {})
    if k not in frames:
        W, H = d["size"]
        frames.update(frames_by_index(d["path"], set(d.get("wanted", ())) | {k}, W, H))
    return frames[k]


def photo_in(d, k: int):
    """``find_photo`` on frame ``k``, once per render."""
    found = d.setdefault("found", {})
    if ("photo", k) not in found:
        found["photo", k] = find_photo(frame(d, k))
    return found["photo", k]


def logo_in(d, k: int):
    """``find_logo`` on frame ``k``, once per render."""
    found = d.setdefault("found", {})
    if ("logo", k) not in found:
        found["logo", k] = find_logo(frame(d, k))
    return found["logo", k]


def scene_frames(d) -> list[tuple[object, int, int, int, int, int]]:
    """Per scene: (scene, first, middle, last frame of the scene on screen, and the first and last
    frame outside its transitions) — the end card ends the last scene early."""
    sb = d["sb"]
    hw = transition_half_widths(sb)
    out = []
    for j, sc in enumerate(sb.scenes):
        first = sc.start_frame
        last = min(sc.start_frame + sc.frame_count, d["end_start"]) - 1
        lead = hw[j - 1] if j > 0 else 0
        tail = hw[j] if j < len(sb.scenes) - 1 else 0
        out.append((sc, first, (first + last) // 2, last, first + lead + 1, last - tail - 1))
    return out


def _match(g: np.ndarray, template: np.ndarray, w: int):
    h = max(4, round(w * template.shape[0] / template.shape[1]))
    if w >= g.shape[1] or h >= g.shape[0] or w < 8:
        return None
    t = cv2.cvtColor(cv2.resize(template, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    _, score, _, loc = cv2.minMaxLoc(cv2.matchTemplate(g, t, cv2.TM_CCOEFF_NORMED))
    return score, (loc[0], loc[1], w, h)


def best_match(img: np.ndarray, template: np.ndarray, widths, coarse: int = 1) -> tuple[float, tuple[int, int, int, int]]:
    """The best normalised correlation of ``template`` in ``img`` over the template widths tried,
    and where (x, y, w, h), both at the reduced scale. ``coarse`` > 1 tries every coarse-th width,
    then every width near the best of those: a subset of the widths, so never a better score than
    trying them all (for finding what must be there, not for proving something is absent)."""
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    widths = list(widths)
    tried = {}

    def best_of(ws):
        for w in ws:
            if w not in tried:
                tried[w] = _match(g, template, w)
        found = [tried[w] for w in ws if tried[w] is not None]
        return max(found, key=lambda r: r[0], default=(-1.0, (0, 0, 0, 0)))

    if coarse <= 1:
        return best_of(widths)
    _, (_, _, w, _) = best_of(widths[coarse // 2::coarse])
    i = widths.index(w) if w in widths else 0
    return best_of(widths[max(0, i - coarse):i + coarse + 1])


def small(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (img.shape[1] // DOWN, img.shape[0] // DOWN), interpolation=cv2.INTER_AREA)


def geometric(lo: float, hi: float, step: float = 1.035):
    w, out = lo, []
    while w <= hi:
        out.append(int(round(w)))
        w *= step
    return sorted(set(out))


def find_photo(img: np.ndarray):
    s = small(img)
    return best_match(s, COFFEE, geometric(s.shape[1] * 0.15, s.shape[1] * 0.95, 1.045), coarse=4)


LOGO_CORE = np.ascontiguousarray(LOGO[int(LOGO.shape[0] * 0.2):int(LOGO.shape[0] * 0.8),
                                      int(LOGO.shape[1] * 0.12):int(LOGO.shape[1] * 0.88), :3])


def find_logo(img: np.ndarray):
    """The logo's opaque core (roundel, bean, wordmark on the pill), at any size from a corner
    badge to the end card's (every size tried: a small badge's match is sharp in scale)."""
    s = small(img)
    return best_match(s, LOGO_CORE, geometric(s.shape[1] * 0.08, s.shape[1] * 0.7, 1.045))


def photo_and_logo(d, k: int) -> tuple[tuple[float, Box], tuple[float, Box]]:
    """The product photo and the whole logo found in frame ``k``: (score, box in frame pixels) each."""
    score, (x, y, w, h) = photo_in(d, k)
    photo = (score, Box(x * DOWN, y * DOWN, w * DOWN, h * DOWN))
    score, (x, y, w, h) = logo_in(d, k)
    # the matched core is the logo's middle 60 % of height and 76 % of width: grow it to the whole logo
    gx, gy = round(w * 0.12 / 0.76), round(h * 0.2 / 0.6)
    return photo, (score, Box((x - gx) * DOWN, (y - gy) * DOWN, (w + 2 * gx) * DOWN, (h + 2 * gy) * DOWN))


def fuzzy_contains(read: str, text: str) -> float:
    """How well ``text`` appears somewhere in ``read`` (1.0: exactly), ignoring case and punctuation."""
    r, t = normalise_text(read), normalise_text(text)
    if not t:
        return 1.0
    best = 0.0
    for i in range(max(1, len(r) - len(t) + 1)):
        best = max(best, difflib.SequenceMatcher(None, r[i:i + len(t) + 2], t).ratio())
    return best


def ocr_big(img: np.ndarray, psm: int = 6) -> str:
    up = cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    return ocr(up, "eng", psm)


def read_text(crop: np.ndarray, text: str) -> tuple[float, str]:
    """How well Tesseract finds ``text`` in ``crop``: read as it is, and read from the pixels
    as light as white type (or as dark as dark type) only — over a scene fading through black
    an orange card and its white type binarise alike, which is Tesseract's problem, not the
    viewer's. The best reading counts."""
    lum = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    light = np.where(lum > 185, 0, 255).astype(np.uint8)
    dark = np.where(lum < 70, 0, 255).astype(np.uint8)
    best = (0.0, "")
    for img in (crop, np.repeat(light[..., None], 3, 2), np.repeat(dark[..., None], 3, 2)):
        read = ocr_big(img)
        best = max(best, (fuzzy_contains(read, text), read))
        if best[0] >= 0.95:
            break
    return best


def logo_box(loc, shape) -> tuple[int, int, int, int]:
    """The whole logo around its matched core, in frame pixels (x0, y0, x1, y1)."""
    x, y, w, h = (v * DOWN for v in loc)
    pad = h // 2
    return max(0, x - pad), max(0, y - pad), min(shape[1], x + w + pad), min(shape[0], y + h + pad)


def wordmark_at(img: np.ndarray, loc) -> str:
    x0, y0, x1, y1 = logo_box(loc, img.shape)
    return read_small_type(img[y0:y1, x0:x1], "ACME")


def test_the_product_photo_and_the_logo_are_in_every_scene(demo):
    """Both ends of every camera move (outside the transitions) and its middle."""
    for sc, _, mid, _, a, b in scene_frames(demo):
        for k in (a, mid, b):
            photo, _ = photo_in(demo, k)
            assert photo > 0.75, f"{demo['aspect']} scene {sc.index} frame {k}: no product photo ({photo:.2f})"
            logo, _ = logo_in(demo, k)
            assert logo > 0.7, f"{demo['aspect']} scene {sc.index} frame {k}: no logo ({logo:.2f})"


def test_headline_and_wordmark_read_whole_at_both_ends_and_the_middle_of_every_move(demo):
    W, H = demo["size"]
    lay = frame_layout(W, H)
    box = lay.headline
    slide = max(20, H // 24)  # the headline's slide-in, still under way on a scene's first frame
    full = demo["aspect"] == FULL
    for sc, first, mid, last, _, _ in scene_frames(demo):
        for k in (first, mid, last) if full else (first, mid):
            img = frame(demo, k)
            crop = img[box.y:min(H, box.bottom + slide), box.x:box.right]
            score, read = read_text(crop, sc.on_screen_text)
            assert score >= 0.85, \
                f"{demo['aspect']} scene {sc.index} frame {k}: headline {sc.on_screen_text!r}, read {read!r}"
            if not full and k != mid:
                continue
            score, loc = logo_in(demo, k)
            mark = wordmark_at(img, loc)
            assert "ACME" in mark.upper().replace(" ", ""), \
                f"{demo['aspect']} scene {sc.index} frame {k}: wordmark read {mark!r} (logo match {score:.2f})"


def test_every_brand_element_lies_inside_the_safe_zone(demo):
    """The photo and the whole logo, found in the pixels of every scene and of the end card, lie inside
    the platforms' safe zone (a reduced-scale pixel of slack); the headline box, where the headline is read
    above, lies inside it too."""
    W, H = demo["size"]
    lay = frame_layout(W, H)
    assert lay.safe.contains(lay.headline) and lay.safe.contains(lay.subtitles)
    slack = lay.safe.inset(-DOWN)
    frames = [(f"scene {sc.index}", mid) for sc, _, mid, _, _, _ in scene_frames(demo)]
    for where, k in frames + [("end card", demo["sb"].total_frames - 3)]:
        (score, photo), (mark, logo) = photo_and_logo(demo, k)
        assert score > 0.75 and slack.contains(photo), f"{demo['aspect']} {where}: photo {photo} ({score:.2f}), safe {lay.safe}"
        assert mark > 0.7 and slack.contains(logo), f"{demo['aspect']} {where}: logo {logo} ({mark:.2f}), safe {lay.safe}"


BRAND_WORD = re.compile(r"\bacme\b(?!\s*[.,]\s*com)", re.IGNORECASE)


def test_the_brand_mark_appears_once_per_frame(demo):
    """One logo; painted out, no other wordmark is left anywhere in the picture (the CTA's
    ``acme.com`` is an address, not a mark; the subtitles say what the voice says, the brand's
    name included, and are painted out too)."""
    W, H = demo["size"]
    subs = frame_layout(W, H).subtitles
    for sc, _, mid, _, a, b in scene_frames(demo):
        for k in (a, mid):
            img = frame(demo, k).copy()
            score, loc = logo_in(demo, k)
            assert score > 0.7
            x0, y0, x1, y1 = logo_box(loc, img.shape)
            fill = np.median(img.reshape(-1, 3), axis=0)
            img[y0:y1, x0:x1] = fill
            img[max(0, subs.y - subs.h // 2):subs.bottom + subs.h // 2, :] = fill  # two-line cues overflow the box
            second, _ = find_logo(img)
            # a real second mark matches like the first (≥ 0.9); the blurred backdrop's textures reach about 0.76
            assert second < 0.8, \
                f"{demo['aspect']} scene {sc.index} frame {k}: a second logo ({second:.2f} beside {score:.2f})"
            if demo["aspect"] != FULL and k != mid:
                continue
            read = ocr(img, "eng", 11)
            assert not BRAND_WORD.search(read), f"{demo['aspect']} scene {sc.index} frame {k}: {read!r}"


def test_the_end_card_shows_logo_packshot_and_cta(demo):
    sb = demo["sb"]
    img = frame(demo, sb.total_frames - 3).copy()
    photo, (x, y, w, h) = photo_in(demo, sb.total_frames - 3)
    assert photo > 0.75
    score, loc = logo_in(demo, sb.total_frames - 3)
    assert score > 0.7 and "ACME" in wordmark_at(img, loc).upper().replace(" ", "")
    # the type, read with the photograph and the logo painted out
    fill = np.median(img.reshape(-1, 3), axis=0)
    img[y * DOWN:(y + h) * DOWN, x * DOWN:(x + w) * DOWN] = fill
    x0, y0, x1, y1 = logo_box(loc, img.shape)
    img[y0:y1, x0:x1] = fill
    # white type on the orange CTA card: read as the headlines are (read_text), not from the
    # subtitles of a line still being said
    W, H = demo["size"]
    subs = frame_layout(W, H).subtitles
    img[subs.y:subs.y + subs.h, subs.x:subs.x + subs.w] = fill
    score, read = read_text(img, sb.brief.cta)
    assert score >= 0.85, read
    score, read = read_text(img, sb.brief.product)
    assert score >= 0.85, read


def test_a_180_second_brief_renders_with_its_natural_number_of_scenes(comfy):
    """The longest ad a brief allows, at the cheapest settings a user can pick (the 360p draft at 1:1,
    24 fps, preset ultrafast): every scene is there (the template's own count for this brief), the MP4 lasts
    exactly 180 s in exactly 180 × 24 frames, a new shot starts where each scene does, and the
    scenes show the product."""
    prompt = demo_prompt("1:1", seconds=180.0)
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"].update(fps="24", resolution="360p")
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["preset"] = "ultrafast"
    path, manifest, sb = render(comfy, prompt, timeout=3000)
    brief = Brief.model_validate(manifest["brief"])
    natural = write_template_script(brief, node_by_type(prompt, "ScriptLLM")[1]["inputs"]["seed"])
    assert len(sb.scenes) == len(natural.scenes) >= 20
    info = ffprobe(path, count_frames=False)
    assert abs(float(info["format"]["duration"]) - 180.0) <= 0.1
    v = stream(info, "video")
    assert (v["width"], v["height"]) == (360, 360)
    # every frame, decoded (small): exactly 180 × 24 of them
    frames = decode_frames(path, 48, 48)
    assert len(frames) == 180 * 24
    # a new shot wherever the storyboard starts a scene (the detector needs a second between changes),
    # looked for at 6 frames a second
    found = shot_boundaries(frames[::4], 6, window=2)
    starts = [s.start_frame / sb.fps for s in sb.scenes[1:]]
    hits = sum(1 for t in starts if min((abs(t - f) for f in found), default=9) <= 0.7)
    assert hits >= 0.8 * len(starts), (hits, len(starts))
    d = dict(aspect="1:1 180 s", path=path, sb=sb, size=(360, 360), end_start=sb.total_frames - 2 * sb.fps)
    d["wanted"] = {mid for _, _, mid, _, _, _ in scene_frames(d)[::4]}
    for sc, _, mid, _, _, _ in scene_frames(d)[::4]:
        assert photo_in(d, mid)[0] > 0.75, f"scene {sc.index}"
