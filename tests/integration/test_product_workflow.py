"""The shipped product workflow (example_workflows/api/product_to_ad.json) through a real ComfyUI:
ProductPage reads a page the suite serves on 127.0.0.1 (the operator allows that host with
ADREEL_FETCH_ALLOWED_HOSTS), BrandBrief takes its product, price, brand, CTA and photo, and the ad's end
card shows the page's product name, its price and its photo — read by OCR and template matching."""
from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest

from harness import ComfyServer, PromptError, load_api_workflow, node_by_type, output_files
from media import ffprobe, frame_at, ocr, stream
from shop_pages import Shop, product_photo
from test_demo_visuals import best_match, fuzzy_contains, geometric, read_text, small

pytestmark = pytest.mark.comfy
PHOTO = np.asarray(product_photo().convert("RGB"))


@pytest.fixture(scope="module")
def shop():
    with Shop() as s:
        yield s


@pytest.fixture(scope="module")
def server(shop):
    comfy = ComfyServer(env={"ADREEL_FETCH_ALLOWED_HOSTS": shop.host})
    comfy.start()
    yield comfy
    comfy.stop()
    comfy.cleanup()


def product_prompt(url: str) -> dict:
    prompt = copy.deepcopy(load_api_workflow("product_to_ad.json"))
    node_by_type(prompt, "ProductPage")[1]["inputs"]["url"] = url
    node_by_type(prompt, "BrandBrief")[1]["inputs"]["duration_seconds"] = 8.0
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"]["resolution"] = "720p"
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["preset"] = "veryfast"
    return prompt


def test_the_shipped_workflow_reads_its_product_from_the_page_widget():
    prompt = load_api_workflow("product_to_ad.json")
    page_id, page = node_by_type(prompt, "ProductPage")
    assert page["inputs"]["url"].startswith("https://")
    brief = node_by_type(prompt, "BrandBrief")[1]["inputs"]
    assert all(brief[k][0] == page_id for k in ("product", "price", "brand", "cta", "product_image"))


def render_end_card(server, shop, page: str, **brief) -> np.ndarray:
    """The product workflow on ``page`` (8 s, 720p): the end card's frame, the page's photo painted out
    once it is found there by template matching."""
    prompt = product_prompt(shop.url(page))
    node_by_type(prompt, "BrandBrief")[1]["inputs"].update(brief)
    if brief.get("language") == "ko":
        node_by_type(prompt, "ProductPage")[1]["inputs"]["cta"] = "지금 주문하세요 {price}"
    result = server.run(prompt, timeout=1800)
    (path,) = output_files(server, result, node_by_type(prompt, "FFmpegAssemble")[0])
    v = stream(ffprobe(path), "video")
    assert (v["width"], v["height"]) == (720, 1280)
    assert page in shop.paths() and "/img/photo.png" in shop.paths()
    fps = json.load(open(os.path.splitext(path)[0] + ".json", encoding="utf-8"))["storyboard"]["fps"]
    end = frame_at(path, 8.0 - 3 / fps, 720, 1280).copy()
    score, (x, y, w, h) = best_match(small(end), PHOTO, geometric(720 / 3 * 0.15, 720 / 3 * 0.95, 1.045))
    assert score > 0.75, score  # the page's photo is the packshot
    down = 3
    end[y * down:(y + h) * down, x * down:(x + w) * down] = np.median(end.reshape(-1, 3), axis=0)
    return end


def test_a_product_page_becomes_an_ad_naming_the_product_and_price_and_showing_its_photo(server, shop):
    end = render_end_card(server, shop, "/p/jsonld")
    for text in ("Daybreak Espresso Mug", "$19.99"):  # the page's product name and price
        got, read = read_text(end, text)
        assert got >= 0.85, (text, read)


def test_a_korean_euc_kr_page_becomes_a_korean_ad_with_its_won_price(server, shop):
    end = render_end_card(server, shop, "/p/ko", language="ko")
    read = ocr(end, "kor+eng")
    assert fuzzy_contains(read, "한빛 보온 머그") >= 0.8, read
    assert "12,900" in read.replace(" ", ""), read


@pytest.mark.parametrize("url,why", [
    ("https://10.0.0.1/product", "private network"),
    ("file:///etc/passwd", "not a web address"),
])
def test_a_refused_url_fails_the_node_naming_the_field(server, url, why):
    with pytest.raises(PromptError) as exc:
        server.run(product_prompt(url))
    assert "ProductPage" in str(exc.value) and "url:" in str(exc.value) and why in str(exc.value)
    assert server.alive()
