"""Approval before spending: the same workflow runs to the storyboard, waits, and resumes with the edited script.

A job submitted with ``"approval": true`` is two fleet jobs, both signed as
``python -m fleet submit`` signs its jobs (``Records.admit``):

1. the *prefix* — the workflow cut down to what its SceneKeyImage nodes need
   (BrandBrief → ScriptLLM → StoryboardSplit → SceneKeyImage, with ComfyUI's
   own PreviewImage as the output). No video, narration, music or provider
   node is in it, so nothing is paid for. Its worker records what ScriptLLM
   and StoryboardSplit show (``runner.collect_outputs``: ``previews``), so the
   API can show the script, the storyboard and, for a ProviderRender, the cost
   estimate (the engine's ``providers.estimate``, the editor's cost badge).
   The job then waits in ``awaiting_approval``.
2. on approval, the *render*: the whole workflow, held (signed) since the
   submit, with every ScriptLLM given the approved script in its
   ``edited_script`` input — the script as edited through the API, or as the
   prefix wrote it. It runs under the job's own id, so its outputs, cost,
   webhooks and deletion are those of any other job; ProviderRender checks its
   budget and the server's ceilings again before anything is sent.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Optional

from ..jobs import nodes_of

#: the node classes a prefix stops at (the key images), and what shows them (ComfyUI's own output node)
STOP_AT = "SceneKeyImage"
PREVIEW_CLASS = "PreviewImage"
PREVIEW_ID = "adreel_approval_preview_"
MAX_SCRIPT_BYTES = 256 * 1024


class NoPrefix(ValueError):
    """The workflow cannot stop for approval (no ScriptLLM, StoryboardSplit or SceneKeyImage)."""


def _ancestors(prompt: dict, roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        node_id = todo.pop()
        if node_id in seen or node_id not in prompt:
            continue
        seen.add(node_id)
        for value in prompt[node_id]["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                todo.append(value[0])
    return seen


def prefix_prompt(prompt: dict) -> dict:
    """The part of ``prompt`` that writes the script, the storyboard and the key images, and nothing after."""
    for cls in ("ScriptLLM", "StoryboardSplit", STOP_AT):
        if not nodes_of(prompt, cls):
            raise NoPrefix(f"'approval' needs a workflow with a {cls} node (it stops after the script, the "
                           "storyboard and the key images)")
    stops = [node_id for node_id, _ in nodes_of(prompt, STOP_AT)]
    keep = _ancestors(prompt, stops)
    out = {node_id: copy.deepcopy(prompt[node_id]) for node_id in prompt if node_id in keep}
    for n, node_id in enumerate(stops):
        out[f"{PREVIEW_ID}{n}"] = {"class_type": PREVIEW_CLASS, "inputs": {"images": [node_id, 0]}}
    return out


def with_script(prompt: dict, script_text: str) -> dict:
    """The whole workflow with every ScriptLLM writing ``script_text`` (its ``edited_script`` input)."""
    out = copy.deepcopy(prompt)
    for _, node in nodes_of(out, "ScriptLLM"):
        node["inputs"]["edited_script"] = script_text
    return out


def previews_of(outputs: dict, prompt: dict) -> tuple[Optional[dict], Optional[dict]]:
    """(the script, the storyboard) the prefix's ScriptLLM and StoryboardSplit showed, from its record."""
    shown = (outputs or {}).get("previews") or {}
    script = storyboard = None
    for node_id, _ in nodes_of(prompt, "ScriptLLM"):
        script = script or (shown.get(node_id) or {}).get("adreel_script")
    for node_id, _ in nodes_of(prompt, "StoryboardSplit"):
        storyboard = storyboard or (shown.get(node_id) or {}).get("adreel_storyboard")
    return script, storyboard


def key_images(outputs: dict, prompt: dict) -> list[dict]:
    """The key images the prefix's SceneKeyImage nodes made ({filename, subfolder, type} on the worker's
    ComfyUI), in scene order."""
    shown = (outputs or {}).get("previews") or {}
    return [img for node_id, _ in nodes_of(prompt, STOP_AT) for img in (shown.get(node_id) or {}).get("images") or []]


def brief_of(prompt: dict):
    """The engine's Brief from the workflow's BrandBrief widgets (images are not needed to check a script)."""
    from nodes.engine.models import Brief, parse_model

    (_, node), = nodes_of(prompt, "BrandBrief")
    v = {k: x for k, x in node["inputs"].items() if not isinstance(x, list)}
    channels = v.get("channels") or ""
    return parse_model(Brief, dict(
        brand=v.get("brand", ""), product=v.get("product", ""), audience=v.get("audience", ""),
        goal=v.get("goal", ""), duration_seconds=v.get("duration_seconds", 15.0), tone=v.get("tone", "confident"),
        aspect_ratio=v.get("aspect_ratio", "9:16"), language=v.get("language", "en"),
        brand_colors=v.get("brand_colors", ""), cta=v.get("cta", ""),
        channels=[c.strip() for c in str(channels).split(",") if c.strip()]), "brief")


def check_script(prompt: dict, script: Any) -> str:
    """The edited script as ScriptLLM's ``edited_script`` text, after the checks ScriptLLM applies (the brief's
    durations, pacing, language, CTA …); ``AdReelInputError`` naming the field otherwise. Where a ScriptLLM
    takes a reference's pacing, ScriptLLM checks that part itself when the render starts."""
    from nodes.engine.models import AdReelInputError
    from nodes.engine.script.generate import parse_edited_script
    from nodes.engine.script.plan import plan_for

    if not isinstance(script, dict):
        raise AdReelInputError("script", "must be a script object with a \"scenes\" list (as GET …/script gives it)")
    text = json.dumps(script, ensure_ascii=False, allow_nan=False)
    if len(text.encode("utf-8")) > MAX_SCRIPT_BYTES:
        raise AdReelInputError("script", f"is larger than {MAX_SCRIPT_BYTES} bytes")
    (_, node), = nodes_of(prompt, "ScriptLLM")[:1]
    brief = brief_of(prompt)
    shot = node["inputs"].get("shot_seconds", 0.0)
    shot = float(shot) if isinstance(shot, (int, float)) and not isinstance(shot, bool) else 0.0
    if isinstance(node["inputs"].get("reference"), list):
        # the reference's pacing is known only on the worker: ScriptLLM checks the script when the render starts
        if not isinstance(script.get("scenes"), list) or not script["scenes"]:
            raise AdReelInputError("script.scenes", "must be a non-empty list of scenes")
        return text
    parse_edited_script(text, brief, plan_for(brief, None, shot), field_name="script")
    return text


def estimate(prompt: dict, storyboard: Optional[dict]) -> dict:
    """What the render's paid provider calls would cost: ProviderRender's own estimate (the editor's cost badge,
    ``providers.estimate``) over the storyboard's scenes, per ProviderRender node; zero when it has none."""
    from nodes.engine.models import AdReelInputError
    from nodes.engine.providers.estimate import estimate as provider_estimate

    renders = nodes_of(prompt, "ProviderRender")
    if not renders:
        return {"total_usd": 0.0, "providers": [], "note": "no paid provider in this workflow: the render runs on "
                                                            "the fleet's own servers"}
    scenes = [(float(s.get("duration") or 0.0), str(s.get("narration") or ""))
              for s in (storyboard or {}).get("scenes") or []]
    brief = brief_of(prompt)
    out, total = [], 0.0
    for node_id, node in renders:
        w = node["inputs"]
        budget = w.get("max_cost_usd")
        try:
            est = provider_estimate(str(w.get("provider", "")), str(w.get("model", "")), scenes,
                                    aspect_ratio=brief.aspect_ratio, options_json=str(w.get("options_json") or ""),
                                    max_cost_usd=float(budget) if isinstance(budget, (int, float)) else None)
        except AdReelInputError as exc:
            out.append({"node_id": node_id, "error": str(exc)})
            continue
        total += float(est.get("total_usd") or 0.0)
        out.append({"node_id": node_id, **est})
    return {"total_usd": round(total, 6), "providers": out}
