#!/usr/bin/env python3
"""`make workflows`: keep the shipped workflows in step with the nodes.

1. Variants of the demo are derived from example_workflows/api/brief_to_ad.json (one
   source of truth): brief_to_ad_upload (+ AssetUpload) and brief_to_ad_cloud
   (ProviderRender instead of MotionClip, its provider_report into FFmpegAssemble).
2. Every API workflow gets the default of any widget it does not set yet,
   read from a real ComfyUI's /object_info.
3. Every example_workflows/api/NAME.json is written as the UI-format example_workflows/TITLE.json, TITLE
   the sentence the template browser shows (workflow_format.TITLES), naming NAME in extra.adreel_api.
4. The demo's chain after the brief (script → storyboard → key images → motion → narration, music →
   assembly) is written as a subgraph blueprint, subgraphs/AdReel brief to ad.json: one collapsible
   node that takes an ADREEL_BRIEF and gives the finished ad's VIDEO and path (ComfyUI 0.33+ offers a
   pack's subgraphs/ in the editor's node library).
"""
import copy
import json
import os
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness import ComfyServer  # noqa: E402
from workflow_format import TITLES, _inputs, api_to_ui, is_widget  # noqa: E402

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


SUBGRAPH_NAME = "AdReel brief to ad"
# a fixed id, so rebuilding the blueprint gives the same file
SUBGRAPH_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "adreel:subgraph:brief_to_ad"))


def brief_to_ad_subgraph(demo_api: dict, info: dict) -> dict:
    """The demo after its brief as one subgraph: input ``brief`` (ADREEL_BRIEF), outputs the assembly's
    ``video`` and ``path``; its nodes and widget values are the demo's own, laid out by ``api_to_ui``."""
    brief_id = _node(demo_api, "BrandBrief")
    feeds_brief = {v[0] for v in demo_api[brief_id]["inputs"].values() if isinstance(v, list)}
    inner_api = {k: v for k, v in demo_api.items() if k != brief_id and k not in feeds_brief}
    assemble_id = _node(inner_api, "FFmpegAssemble")
    # the brief arrives from the subgraph's input node; api_to_ui cannot lay out a link to a node that
    # is not there, so lay the inner graph out with the brief as a placeholder link and cut it after
    ui = api_to_ui(demo_api, info)
    keep = {int(k) for k in inner_api}
    nodes = [n for n in ui["nodes"] if n["id"] in keep]
    links, next_link = [], max((l[0] for l in ui["links"]), default=0) + 1
    input_links = []
    for lid, src, src_slot, dst, dst_slot, typ in ui["links"]:
        if dst not in keep:
            continue
        origin = -10 if src == int(brief_id) else src
        if origin == -10:
            input_links.append(lid)
        links.append({"id": lid, "origin_id": origin, "origin_slot": 0 if origin == -10 else src_slot,
                      "target_id": dst, "target_slot": dst_slot, "type": typ})
    assemble = next(n for n in nodes if n["id"] == int(assemble_id))
    outputs = []
    for slot, out in enumerate(assemble["outputs"]):
        lid = next_link
        next_link += 1
        out["links"] = list(out.get("links") or []) + [lid]
        links.append({"id": lid, "origin_id": assemble["id"], "origin_slot": slot, "target_id": -20,
                      "target_slot": slot, "type": out["type"]})
        outputs.append({"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"adreel:subgraph:out:{slot}")),
                        "name": out["name"], "type": out["type"], "linkIds": [lid], "localized_name": out["name"],
                        "label": out["name"]})
    xs = [n["pos"][0] for n in nodes]
    definition = {
        "id": SUBGRAPH_ID, "version": 1, "revision": 0, "config": {}, "name": SUBGRAPH_NAME,
        "state": {"lastGroupId": 0, "lastNodeId": max(keep), "lastLinkId": next_link - 1, "lastRerouteId": 0},
        "inputNode": {"id": -10, "bounding": [min(xs) - 200, 0, 120, 60]},
        "outputNode": {"id": -20, "bounding": [max(xs) + 420, 0, 120, 60]},
        "inputs": [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "adreel:subgraph:in:brief")), "name": "brief",
                    "type": "ADREEL_BRIEF", "linkIds": input_links, "localized_name": "brief", "label": "brief"}],
        "outputs": outputs, "widgets": [], "nodes": nodes, "groups": [], "links": links,
        "extra": {}, "category": "AdReel",
        "description": "The whole ad after the brief: script, storyboard, composed key images, camera moves, "
                       "narration, the music bed and the one-pass assembly. Connect a Brand Brief; "
                       "needs no model, key or network.",
    }
    wrapper = {
        "id": 1, "type": SUBGRAPH_ID, "pos": [0, 0], "size": [300, 120], "flags": {}, "order": 0, "mode": 0,
        "inputs": [{"name": "brief", "localized_name": "brief", "label": "brief", "type": "ADREEL_BRIEF",
                    "link": None}],
        "outputs": [{"name": o["name"], "localized_name": o["name"], "label": o["name"], "type": o["type"],
                     "links": []} for o in outputs],
        "properties": {"proxyWidgets": []}, "widgets_values": [], "title": SUBGRAPH_NAME,
    }
    return {"revision": 0, "last_node_id": 1, "last_link_id": 0, "nodes": [wrapper], "links": [],
            "version": 0.4, "definitions": {"subgraphs": [definition]}, "extra": {}}


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
        title = TITLES[name]
        ui = api_to_ui(api, info)
        ui["extra"]["adreel_api"] = name
        write_json(os.path.join(ROOT, "example_workflows", f"{title}.json"), ui, 1)
        print(f"wrote example_workflows/{title}.json and example_workflows/api/{name}")
    os.makedirs(os.path.join(ROOT, "subgraphs"), exist_ok=True)
    write_json(os.path.join(ROOT, "subgraphs", f"{SUBGRAPH_NAME}.json"), brief_to_ad_subgraph(demo, info), 1)
    print(f"wrote subgraphs/{SUBGRAPH_NAME}.json")


if __name__ == "__main__":
    main()
