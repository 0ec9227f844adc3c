"""The brief → ad chain as one subgraph blueprint (``subgraphs/AdReel brief to ad.json``).

ComfyUI serves a pack's ``subgraphs/*.json`` at ``/global_subgraphs`` and the editor offers them as
reusable nodes. This checks what a user meets: the server lists the blueprint under AdReel's pack, its
one node takes a brief and gives a VIDEO, and the graph inside — expanded the way the editor expands a
subgraph when it queues (inner nodes as ``wrapper:inner``, the subgraph's input resolved to what feeds
it) — with the demo's own Brand Brief in front renders an ad of the brief's length.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess

import pytest

from harness import PACK_LINK_NAME, load_api_workflow, node_by_type

pytestmark = [pytest.mark.comfy, pytest.mark.cores]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME = "AdReel brief to ad"


def expand(blueprint: dict, wrapper_id: str, outer_inputs: dict[int, list]) -> dict:
    """API-format nodes of the blueprint's subgraph instance, as the editor queues them: ``wrapper:inner``
    ids, widget values by the node's inputs' order, links inside resolved, the subgraph's inputs replaced by
    ``outer_inputs`` (slot → ``[node, output]``)."""
    (definition,) = blueprint["definitions"]["subgraphs"]
    links = {link["id"]: link for link in definition["links"]}
    api = {}
    for node in definition["nodes"]:
        inputs = {}
        for inp in node.get("inputs", []):
            link = links.get(inp.get("link"))
            if link is None:
                continue
            if link["origin_id"] == -10:
                inputs[inp["name"]] = outer_inputs[link["origin_slot"]]
            else:
                inputs[inp["name"]] = [f"{wrapper_id}:{link['origin_id']}", link["origin_slot"]]
        api[f"{wrapper_id}:{node['id']}"] = {"class_type": node["type"], "inputs": inputs,
                                             "widgets_values": node.get("widgets_values", [])}
    return api


def widgets_from_demo(api: dict, demo: dict, wrapper_id: str) -> None:
    """The inner nodes' widget values are the demo's own (the blueprint was laid out from it): take them by
    node id, which the blueprint keeps."""
    for key, node in api.items():
        inner = key.split(":")[1]
        for name, value in demo[inner]["inputs"].items():
            if not isinstance(value, list):
                node["inputs"].setdefault(name, value)
        node.pop("widgets_values")


def test_the_blueprint_is_served_and_renders_the_brief(comfy, tmp_path):
    listed = comfy.get_json("/global_subgraphs")
    ours = {k: v for k, v in listed.items() if v.get("name") == NAME}
    assert len(ours) == 1, sorted(v.get("name") for v in listed.values())
    entry_id, entry = next(iter(ours.items()))
    assert entry["info"]["node_pack"] == f"custom_nodes.{PACK_LINK_NAME}"
    blueprint = json.loads(comfy.get_json(f"/global_subgraphs/{entry_id}")["data"])
    (wrapper,) = blueprint["nodes"]
    assert [i["type"] for i in wrapper["inputs"]] == ["ADREEL_BRIEF"]
    assert [o["type"] for o in wrapper["outputs"]] == ["VIDEO", "STRING"]
    (definition,) = blueprint["definitions"]["subgraphs"]
    assert definition["id"] == wrapper["type"] and definition["description"]

    demo = load_api_workflow("brief_to_ad.json")
    brief_id, brief = node_by_type(demo, "BrandBrief")
    prompt = {k: v for k, v in demo.items() if k == brief_id or k in {v[0] for v in brief["inputs"].values()
                                                                       if isinstance(v, list)}}
    prompt = copy.deepcopy(prompt)
    prompt[brief_id]["inputs"]["duration_seconds"] = 6.0
    inner = expand(blueprint, "100", {0: [brief_id, 0]})
    widgets_from_demo(inner, demo, "100")
    assert {n["class_type"] for n in inner.values()} == {v["class_type"] for k, v in demo.items()
                                                          if k not in prompt}
    prompt.update(inner)
    for node in prompt.values():  # the draft size the corpus renders at
        if node["class_type"] == "StoryboardSplit":
            node["inputs"]["resolution"] = "180p"
        if node["class_type"] == "FFmpegAssemble":
            node["inputs"]["preset"] = "ultrafast"
    result = comfy.run(prompt, timeout=900)
    (assemble_key,) = [k for k, v in prompt.items() if v["class_type"] == "FFmpegAssemble"]
    files = result.ui(assemble_key).get("images", [])
    assert files, result.outputs
    path = os.path.join(comfy.folder("output"), files[0].get("subfolder", ""), files[0]["filename"])
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", path],
                           capture_output=True, text=True, check=True)
    assert abs(float(json.loads(probe.stdout)["format"]["duration"]) - 6.0) < 0.1
