"""The two workflow formats: UI (what the editor opens) and API (what /prompt takes).

``api_to_ui`` lays an API workflow out as a litegraph graph using the server's
``/object_info`` (widget order, socket types, seed control widgets);
``ui_to_api`` reads a UI workflow back the way the frontend's graphToPrompt
does, so a test can prove the two shipped files describe the same graph.
"""
from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _inputs(info: dict) -> list[tuple[str, str, dict]]:
    out = []
    for group in ("required", "optional"):
        for name in info.get("input_order", {}).get(group, []):
            spec = info["input"][group][name]
            typ = spec[0] if not isinstance(spec[0], list) else "COMBO"
            opts = spec[1] if len(spec) > 1 else {}
            out.append((name, typ, opts))
    return out


def is_widget(typ: str, opts: dict) -> bool:
    return typ in WIDGET_TYPES and not opts.get("forceInput")


def has_control(typ: str, opts: dict) -> bool:
    return typ in ("INT", "FLOAT") and bool(opts.get("control_after_generate"))


def api_to_ui(api: dict, object_info: dict, extra: dict | None = None) -> dict:
    ids = sorted(api, key=int)
    # columns by dependency depth
    depth: dict[str, int] = {}

    def d(nid):
        if nid not in depth:
            ups = [v[0] for v in api[nid]["inputs"].values() if isinstance(v, list)]
            depth[nid] = 1 + max((d(u) for u in ups), default=-1)
        return depth[nid]

    for nid in ids:
        d(nid)
    rows: dict[int, int] = {}
    nodes, links = [], []
    out_links: dict[tuple[str, int], list[int]] = {}
    for nid in ids:
        node = api[nid]
        info = object_info[node["class_type"]]
        inputs, widgets = [], []
        for name, typ, opts in _inputs(info):
            val = node["inputs"].get(name, opts.get("default"))
            if isinstance(val, list) and len(val) == 2 and isinstance(val[0], str):  # a link
                link_id = len(links) + 1
                src, slot = val
                src_info = object_info[api[src]["class_type"]]
                links.append([link_id, int(src), slot, int(nid), None, src_info["output"][slot]])
                out_links.setdefault((src, slot), []).append(link_id)
                entry = {"name": name, "type": typ, "link": link_id}
                if is_widget(typ, opts):
                    entry["widget"] = {"name": name}
                    widgets.append(opts.get("default"))
                    if has_control(typ, opts):
                        widgets.append("fixed")
                inputs.append(entry)
            elif is_widget(typ, opts):
                widgets.append(val)
                if has_control(typ, opts):
                    widgets.append("fixed")
            else:
                inputs.append({"name": name, "type": typ, "link": None})
        for slot_index, entry in enumerate(inputs):
            if entry["link"] is not None:
                links[entry["link"] - 1][4] = slot_index
        col = depth[nid]
        row = rows.get(col, 0)
        height = 80 + 26 * (len(widgets) + max(len(inputs), len(info["output"])))
        rows[col] = row + height + 40
        nodes.append({
            "id": int(nid), "type": node["class_type"], "pos": [40 + col * 380, 40 + row],
            "size": [340, height], "flags": {}, "order": 0, "mode": 0,
            "inputs": inputs,
            "outputs": [{"name": n, "type": t, "links": None, "slot_index": i}
                        for i, (n, t) in enumerate(zip(info["output_name"], info["output"]))],
            "properties": {"Node name for S&R": node["class_type"]},
            "widgets_values": widgets,
            **({"title": node["_meta"]["title"]} if node.get("_meta", {}).get("title") else {}),
        })
    for n in nodes:
        for o in n["outputs"]:
            o["links"] = out_links.get((str(n["id"]), o["slot_index"])) or None
    order = sorted(ids, key=lambda i: depth[i])
    for n in nodes:
        n["order"] = order.index(str(n["id"]))
    return {"last_node_id": max(int(i) for i in ids), "last_link_id": len(links), "nodes": nodes,
            "links": links, "groups": [], "config": {}, "extra": extra or {"ds": {"scale": 0.8, "offset": [0, 0]}},
            "version": 0.4}


def ui_to_api(ui: dict, object_info: dict) -> dict:
    links = {l[0]: l for l in ui["links"]}
    api = {}
    for node in ui["nodes"]:
        if node.get("mode", 0) in (2, 4):  # muted / bypassed
            continue
        info = object_info[node["type"]]
        values = list(node.get("widgets_values") or [])
        by_name = {i["name"]: i for i in node.get("inputs", [])}
        inputs = {}
        for name, typ, opts in _inputs(info):
            linked = by_name.get(name, {}).get("link")
            if is_widget(typ, opts):
                val = values.pop(0) if values else opts.get("default")
                if has_control(typ, opts) and values:
                    values.pop(0)
                if linked is None:
                    inputs[name] = val
            if linked is not None:
                l = links[linked]
                inputs[name] = [str(l[1]), l[2]]
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return api


def strip_meta(api: dict) -> dict:
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}


# The template browser shows a pack's example_workflows/NAME.json with NAME as its title and its
# description (every frontend up to 1.58 does): so the UI files are named by a sentence that says what
# the workflow needs, and each names its API twin (example_workflows/api/) in ``extra.adreel_api``.
TITLES = {
    "brief_to_ad.json": "Brief to ad (the offline demo, needs no model, key or network)",
    "brief_to_ad_ollama.json": "Brief to ad, scripted by Ollama (needs an Ollama server, else the template writes)",
    "brief_to_ad_sdxl.json": "Brief to ad, key images from SDXL (needs the SDXL base checkpoint)",
    "brief_to_ad_i2v.json": "Brief to ad, motion from SVD (needs the SDXL base and SVD XT checkpoints)",
    "brief_to_ad_cloud.json": "Brief to ad, scenes from a cloud video API (needs a provider key)",
    "brief_to_ad_upload.json": "Brief to ad, uploaded to S3 storage (needs storage settings)",
    "product_to_ad.json": "Product page to ad (needs a product page URL the server can reach)",
}


def shipped_workflows(root: str) -> dict[str, str]:
    """{title (the UI file's name, without .json): its API file's name} for every shipped UI workflow."""
    import json
    import os
    folder = os.path.join(root, "example_workflows")
    found = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                found[name[:-5]] = json.load(f)["extra"]["adreel_api"]
    return found
