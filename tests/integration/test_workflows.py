"""Shipped workflows: both formats describe the same graph, with nodes the server has."""
import json
import os

import pytest

from harness import ROOT
from workflow_format import TITLES, shipped_workflows, strip_meta, ui_to_api

pytestmark = [pytest.mark.comfy, pytest.mark.cores]
API_DIR = os.path.join(ROOT, "example_workflows", "api")
API_NAMES = sorted(n for n in os.listdir(API_DIR) if n.endswith(".json"))
SHIPPED = shipped_workflows(ROOT)


def load(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def object_info(comfy):
    return comfy.get_json("/object_info")


@pytest.mark.parametrize("name", API_NAMES)
def test_ui_and_api_formats_are_the_same_graph(name, object_info):
    assert list(SHIPPED.values()).count(name) == 1, f"{name} has no UI twin in example_workflows/"
    title = next(t for t, a in SHIPPED.items() if a == name)
    api, ui = load("example_workflows", "api", name), load("example_workflows", f"{title}.json")
    missing = {n["type"] for n in ui["nodes"]} - set(object_info)
    assert not missing, f"{name} uses nodes the server lacks: {missing}"
    assert ui_to_api(ui, object_info) == strip_meta(api)


def test_every_workflow_is_in_the_template_browser_under_a_title_that_says_what_it_needs(comfy):
    templates = comfy.get_json("/workflow_templates")
    assert sorted(templates.get("ComfyUI-AdReel", [])) == sorted(SHIPPED), templates
    for title, api_name in SHIPPED.items():
        assert title == TITLES[api_name] and "needs " in title, title


def _model_missing(err: dict) -> bool:
    """A rejection only because a model file the workflow names is not installed here."""
    return err.get("type") == "value_not_in_list" and str(err.get("extra_info", {}).get("received_value", "")) \
        .endswith((".safetensors", ".ckpt", ".pt", ".pth", ".gguf"))


@pytest.mark.parametrize("name", API_NAMES)
def test_every_shipped_workflow_validates_at_prompt(comfy, name):
    """POST /prompt accepts each shipped API workflow as it is (a workflow naming a checkpoint is refused only
    for that file, which this server does not have); what it queued is then taken back, so nothing runs."""
    status, body = comfy.post_json("/prompt", {"prompt": load("example_workflows", "api", name),
                                               "client_id": comfy.client_id})
    if status == 200:
        comfy.post_json("/queue", {"delete": [body["prompt_id"]]})
        comfy.interrupt()
        return
    problems = [e for info in (body.get("node_errors") or {}).values() for e in info.get("errors", [])
                if not _model_missing(e)]
    assert status == 400 and body.get("node_errors") and not problems, json.dumps(body)[:3000]
