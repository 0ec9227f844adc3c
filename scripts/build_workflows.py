#!/usr/bin/env python3
"""`make workflows`: keep the shipped workflows in step with the nodes.

1. Variants of the demo are derived from example_workflows/api/brief_to_ad.json (one
   source of truth): brief_to_ad_upload (+ AssetUpload) and brief_to_ad_cloud
   (ProviderRender instead of MotionClip, its provider_report into FFmpegAssemble).
2. Every API workflow gets the default of any widget it does not set yet,
   read from a real ComfyUI's /object_info.
3. Every example_workflows/api/NAME.json is written as the UI-format example_workflows/NAME.json.
"""
import copy
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness import ComfyServer  # noqa: E402
from workflow_format import _inputs, api_to_ui, is_widget  # noqa: E402

API_DIR = os.path.join(ROOT, "example_workflows", "api")


def _node(api, class_type):
    (nid,) = [k for k, v in api.items() if v["class_type"] == class_type]
    return nid


def upload_variant(demo: dict) -> dict:
    api = copy.deepcopy(demo)
    asm = _node(api, "FFmpegAssemble")
    api[asm]["inputs"]["filename_prefix"] = "AdReel/brief_to_ad_upload"
    api[str(max(map(int, api)) + 1)] = {
        "class_type": "AssetUpload", "_meta": {"title": "Asset Upload (S3)"},
        "inputs": {"video": [asm, 0], "path": [asm, 1], "prefix_pattern": "{brand}/{date}/{run}/",
                   "url_mode": "auto", "url_expiry_hours": 24.0}}
    return api


def cloud_variant(demo: dict) -> dict:
    api = copy.deepcopy(demo)
    motion, split, key = _node(api, "MotionClip"), _node(api, "StoryboardSplit"), _node(api, "SceneKeyImage")
    api[motion] = {"class_type": "ProviderRender", "_meta": {"title": "Provider Render (cloud video)"},
                   "inputs": {"scenes": [split, 1], "key_images": [key, 0], "provider": "runway",
                              "model": "gen4_turbo", "max_cost_usd": 2.0, "fallback": "error",
                              "quality": "balanced", "chain": "", "timeout_s": 900, "options_json": ""}}
    assemble = api[_node(api, "FFmpegAssemble")]["inputs"]
    assemble["filename_prefix"] = "AdReel/brief_to_ad_cloud"
    assemble["provider_report"] = [motion, 2]  # the jobs and costs, for the manifest
    return api


def product_variant(demo: dict) -> dict:
    api = copy.deepcopy(demo)
    brief = api[_node(api, "BrandBrief")]
    page = brief["inputs"]["product_image"][0]  # the demo's bundled product photo's node: the page gives its own
    api[page] = {"class_type": "ProductPage", "_meta": {"title": "Product Page"},
                 "inputs": {"url": "https://shop.example.com/products/daybreak-espresso",
                            "cta": "Order now — {price}", "brand_fallback": ""}}
    for slot, name in enumerate(("product", "description", "price", "brand", "cta", "product_image")):
        brief["inputs"][name] = [page, slot]
    api[_node(api, "FFmpegAssemble")]["inputs"]["filename_prefix"] = "AdReel/product_to_ad"
    return api


VARIANTS = {"brief_to_ad_upload.json": upload_variant, "brief_to_ad_cloud.json": cloud_variant,
            "product_to_ad.json": product_variant}


def fill_defaults(api: dict, info: dict) -> None:
    for node in api.values():
        for name, typ, opts in _inputs(info[node["class_type"]]):
            if name not in node["inputs"] and is_widget(typ, opts) and "default" in opts:
                node["inputs"][name] = opts["default"]


def write_json(path: str, data: dict, indent: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=indent)
        f.write("\n")


def main() -> None:
    with ComfyServer() as server:
        info = server.get_json("/object_info")
    demo_path = os.path.join(API_DIR, "brief_to_ad.json")
    demo = json.load(open(demo_path, encoding="utf-8"))
    fill_defaults(demo, info)
    write_json(demo_path, demo, 2)
    for name, derive in VARIANTS.items():
        write_json(os.path.join(API_DIR, name), derive(demo), 2)
    for name in sorted(os.listdir(API_DIR)):
        if not name.endswith(".json"):
            continue
        path = os.path.join(API_DIR, name)
        api = json.load(open(path, encoding="utf-8"))
        missing = {n["class_type"] for n in api.values()} - set(info)
        if missing:
            sys.exit(f"{name}: nodes the server does not have: {sorted(missing)}")
        fill_defaults(api, info)
        write_json(path, api, 2)
        write_json(os.path.join(ROOT, "example_workflows", name), api_to_ui(api, info), 1)
        print(f"wrote example_workflows/{name} and example_workflows/api/{name}")


if __name__ == "__main__":
    main()
