"""The engine's import graph: no cycle (module-level or inside functions) and no borrowed private names.

Every module under ``nodes/engine`` is parsed with ``ast`` (nothing is imported), every ``import`` /
``from … import`` statement is collected wherever it sits — at the top, inside a function, under ``if`` or
``try`` — and relative imports are resolved against the module's package. ``from pkg import name`` points
at ``pkg.name`` when that is a module, else at ``pkg`` itself (its ``__init__``). The implicit import of a
submodule's parent package is not an edge: a package ``__init__`` that imports its own submodules is the
normal shape, and it only becomes a cycle when a submodule imports names back from that ``__init__``.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "nodes" / "engine"

# Known debts (code review §1.3, §7.5): none are left; an entry here would be left out of the checks.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()  # none left
KNOWN_PRIVATE_IMPORTS: set[tuple[str, str]] = set()  # none left (nodes/engine/media/imaging.py, motion.inverse_affine)


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(top: Path = ENGINE, root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(top.rglob("*.py")) if "__pycache__" not in p.parts}


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(target module, imported name or "", line) for every import in ``path`` that lands in ``known``."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    out.append((alias.name, "", node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in known:
                    out.append((sub, "", node.lineno))
                elif source in known:
                    out.append((source, alias.name, node.lineno))
    return out


def graph(known: dict[str, Path], skip=frozenset()) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in known}
    for name, path in known.items():
        for target, _, _ in imports(name, path, known):
            if target != name and (name, target) not in skip:
                edges[name].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def private_imports(known: dict[str, Path], root: Path = ROOT, known_private=frozenset()) -> list[str]:
    bad = []
    for name, path in known.items():
        for target, imported, line in imports(name, path, known):
            where = path.relative_to(root).as_posix()
            if target == name or not imported.startswith("_") or imported.startswith("__"):
                continue
            if (where, imported) not in known_private:
                bad.append(f"{where}:{line} imports {imported} from {target}")
    return bad


def test_the_checker_sees_cycles_and_function_level_imports(tmp_path):
    """The checker itself: a cycle closed only by an import inside a function is found."""
    pkg = tmp_path / "nodes" / "engine" / "pkg"
    pkg.mkdir(parents=True)
    (tmp_path / "nodes" / "engine" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from .a import f\nREGISTRY = {}\n")
    (pkg / "a.py").write_text("def f():\n    from . import REGISTRY\n    return REGISTRY\n")
    (pkg / "b.py").write_text("from .a import _hidden\n")
    known = modules(tmp_path / "nodes" / "engine", tmp_path)
    assert find_cycle(graph(known)) == ["nodes.engine.pkg", "nodes.engine.pkg.a", "nodes.engine.pkg"]
    assert private_imports(known, tmp_path) == ["nodes/engine/pkg/b.py:1 imports _hidden from nodes.engine.pkg.a"]


def test_engine_import_graph_is_acyclic():
    known = modules()
    assert len(known) > 50  # the walk found the engine
    cycle = find_cycle(graph(known, KNOWN_CYCLE_EDGES))
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_no_module_imports_another_modules_private_names():
    assert private_imports(modules(), known_private=KNOWN_PRIVATE_IMPORTS) == []


# The shared layers point down only: media (frames, fonts, text, layout, ffmpeg) and cloud (the safety layer)
# may import each other, the data model and the ceilings — never a stage.
SHARED_LAYERS = {"nodes.engine.media": {"nodes.engine.media", "nodes.engine.cloud", "nodes.engine.models",
                                        "nodes.engine.limits"},
                 "nodes.engine.cloud": {"nodes.engine.cloud", "nodes.engine.models", "nodes.engine.limits"}}


def upward_imports(known: dict[str, Path]) -> list[str]:
    out = []
    for name, path in known.items():
        layer = next((lay for lay in SHARED_LAYERS if name == lay or name.startswith(lay + ".")), None)
        if layer is None:
            continue
        for target, _, line in imports(name, path, known):
            if not any(target == ok or target.startswith(ok + ".") for ok in SHARED_LAYERS[layer]):
                out.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    return out


def test_shared_layers_import_no_stage():
    assert upward_imports(modules()) == []


def test_an_upward_import_is_reported(tmp_path, monkeypatch):
    pkg = tmp_path / "nodes" / "engine"
    (pkg / "media").mkdir(parents=True)
    (pkg / "motion").mkdir()
    for f in ("__init__.py", "media/__init__.py", "motion/__init__.py", "motion/camera.py", "models.py"):
        (pkg / f).write_text("")
    (pkg / "media" / "layout.py").write_text("from ..models import X\n\ndef f():\n    from ..motion.camera import y\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    known = modules(pkg, tmp_path)
    assert upward_imports(known) == ["nodes/engine/media/layout.py:4 imports nodes.engine.motion.camera"]
