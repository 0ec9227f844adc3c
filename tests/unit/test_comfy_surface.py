"""Every ComfyUI name AdReel touches exists in every core it supports.

The node layer's source is read for the names it takes from ComfyUI: what it imports from
``comfy_api.latest`` (``io.Combo.Input``, ``InputImpl.VideoFromFile`` …) and the attributes it uses of
ComfyUI's modules (``folder_paths``, ``comfy.utils``, ``comfy.model_management``, ``server.PromptServer``,
core's ``nodes``). Each core that is set up (the pinned 0.3.75, and 0.33.0 when the set-up found it) is then
asked, in its own Python, whether each name resolves. A pack that loads on one core and not on the next
fails here, naming the name and the core, before any user meets it.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE_LAYER = [os.path.join(ROOT, "__init__.py")] + sorted(
    os.path.join(ROOT, "nodes", "comfy_nodes", f) for f in os.listdir(os.path.join(ROOT, "nodes", "comfy_nodes"))
    if f.endswith(".py"))
COMFY_MODULES = ("comfy_api", "folder_paths", "comfy", "server", "nodes", "node_helpers", "latent_preview",
                 "comfy_execution", "comfy_extras")
# Names current core no longer exports from ``comfy_api.latest.io`` (its curated public surface; see the
# README's "ComfyUI versions"): a pack using them breaks on upgrade even where 0.33 still has them.
LEFT_THE_PUBLIC_SURFACE = {"io.ExecutionBlocker", "io.NodeInfoV3", "io.Resources", "io.MESH", "io.VOXEL",
                           "io.MODEL_PATCH", "io.ComboDynamic", "io.AutogrowDynamic"}


def _bindings(tree: ast.AST) -> dict[str, str]:
    """local name → the ComfyUI object it stands for (``io`` → ``comfy_api.latest:io``, ``mm`` →
    ``comfy.model_management``), for every import of a ComfyUI module, at any depth (lazy imports too)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] in COMFY_MODULES:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}:{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in COMFY_MODULES:
                    if a.asname:
                        names[a.asname] = a.name
                    else:
                        names[a.name.split(".")[0]] = a.name.split(".")[0]
    return names


def _chain(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id] + parts[::-1]
    return None


def touched_names() -> dict[str, set[str]]:
    """``{"module[:object]": {"attr.attr", …}}``: what the node layer uses of each ComfyUI object."""
    used: dict[str, set[str]] = {}
    for path in NODE_LAYER:
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        _mark_parents(tree)
        bound = _bindings(tree)
        # api.py re-exports comfy_api's names to the other node modules
        for name in ("io", "ui", "Input", "InputImpl", "Types", "ComfyExtension", "ComfyAPI"):
            bound.setdefault(name, f"comfy_api.latest:{name}")
        for target in set(bound.values()):
            used.setdefault(target, set())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or isinstance(getattr(node, "_parent", None), ast.Attribute):
                continue
            chain = _chain(node)
            if not chain or chain[0] not in bound:
                continue
            target = bound[chain[0]]
            rest = chain[1:]
            if ":" not in target and rest and target.count(".") == 0 and target in ("comfy",):
                # ``import comfy.utils`` binds ``comfy``: the submodule is the first attribute
                target, rest = f"comfy.{rest[0]}", rest[1:]
            if rest:
                used.setdefault(target, set()).add(".".join(rest))
    # keep only the longest chains (``io.Combo.Input`` covers ``io.Combo``)
    for target, chains in used.items():
        used[target] = {c for c in chains if not any(o != c and o.startswith(c + ".") for o in chains)}
    return used


def _mark_parents(tree: ast.AST) -> None:
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            child._parent = parent


RESOLVE = r"""
import importlib, inspect, json, sys
sys.argv = ["main.py", "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()  # as main.py does: --cpu, so nothing looks for a GPU
import utils.extra_config  # as main.py does first: core's own ``utils`` package before any other
used = json.loads(sys.stdin.read())
missing = []
for target, chains in sorted(used.items()):
    module, _, obj_name = target.partition(":")
    try:
        obj = importlib.import_module(module)
        if obj_name:
            obj = getattr(obj, obj_name)
    except Exception as e:
        missing.append(f"{target} ({type(e).__name__}: {e})")
        continue
    for chain in sorted(chains):
        o = obj
        parts = chain.split(".")
        if parts[0] == "instance" and getattr(o, "__name__", "") == "PromptServer":
            # the running server's instance: a method of its class, or an attribute its __init__ sets
            if not (hasattr(o, parts[1]) or f"self.{parts[1]} =" in inspect.getsource(o.__init__)):
                missing.append(f"{target}.{chain}")
            continue
        for part in parts:
            if not hasattr(o, part):
                missing.append(f"{target}.{chain}")
                break
            o = getattr(o, part)
print(json.dumps(missing))
"""


def cores() -> list[tuple[str, str]]:
    found = []
    pinned = os.environ.get("ADREEL_COMFYUI") or os.path.join(ROOT, ".runtime", "ComfyUI")
    found.append((pinned, os.environ.get("ADREEL_PYTHON") or os.path.join(ROOT, ".runtime", "venv", "bin", "python")))
    nxt = os.environ.get("ADREEL_NEXT_COMFYUI") or os.path.join(ROOT, ".runtime", "ComfyUI-0.33.0")
    if os.path.isfile(os.path.join(nxt, "main.py")) and os.path.realpath(nxt) != os.path.realpath(pinned):
        found.append((nxt, os.environ.get("ADREEL_NEXT_PYTHON")
                      or os.path.join(ROOT, ".runtime", "venv-0.33.0", "bin", "python")))
    return [(c, p) for c, p in found if os.path.isfile(os.path.join(c, "main.py"))]


def _version(core: str) -> str:
    text = open(os.path.join(core, "comfyui_version.py")).read()
    return text.split('"')[-2]


def test_the_scan_finds_what_the_node_layer_uses():
    used = touched_names()
    assert "Combo.Input" in used["comfy_api.latest:io"]
    assert "VideoFromFile" in used["comfy_api.latest:InputImpl"]
    assert any(c.startswith("get_output_directory") for c in used["folder_paths"])
    assert any("ProgressBar" in c for c in used["comfy.utils"])
    assert "common_ksampler" in used["nodes"]


def test_no_name_that_left_the_public_surface():
    used = {f"io.{c.split('.')[0]}" for c in touched_names()["comfy_api.latest:io"]}
    assert not used & LEFT_THE_PUBLIC_SURFACE, sorted(used & LEFT_THE_PUBLIC_SURFACE)


@pytest.mark.parametrize("core,python", cores(), ids=lambda v: _version(v) if os.path.isdir(v) else "python")
def test_every_name_resolves_in_the_core(core, python):
    used = {k: sorted(v) for k, v in touched_names().items()}
    out = subprocess.run([python, "-c", RESOLVE], input=json.dumps(used), capture_output=True, text=True,
                         cwd=core, timeout=300, env=dict(os.environ, PYTHONPATH=core))
    assert out.returncode == 0, out.stderr[-3000:]
    missing = json.loads(out.stdout.strip().splitlines()[-1])
    assert not missing, f"ComfyUI {_version(core)} lacks: {missing}"
