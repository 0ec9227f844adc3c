"""Every function in nodes/ and fleet/ takes at most 8 parameters (self/cls not counted) and is at most
100 lines long: a longer list belongs in an object, a longer body in named steps.

``*args``/``**kwargs`` are not counted: a V3 node gets each widget as a keyword and reads ``**widgets``
into one typed object (``WidgetValues``)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("nodes", "fleet")
MAX_PARAMETERS = 8
MAX_LINES = 100


def parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Named parameters (positional-only, ordinary, keyword-only), less a leading self or cls."""
    a = fn.args
    names = [p.arg for p in (*a.posonlyargs, *a.args)]
    count = len(names) + len(a.kwonlyargs)
    return count - 1 if names and names[0] in ("self", "cls") else count


def offenders(source: str, name: str) -> list[str]:
    """``name:function (n parameters, m lines)`` for each function of ``source`` above the limits."""
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n, lines = parameters(node), node.end_lineno - node.lineno + 1
            if n > MAX_PARAMETERS or lines > MAX_LINES:
                found.append(f"{name}:{node.name} ({n} parameters, {lines} lines)")
    return found


def all_offenders() -> dict[str, str]:
    out = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for line in offenders(path.read_text(encoding="utf-8"), rel):
                out.setdefault(line.split(" (")[0], line)
    return out


def test_no_function_in_nodes_or_fleet_takes_too_many_parameters_or_lines():
    new = sorted(all_offenders().values())
    assert not new, "functions above 8 parameters or 100 lines:\n" + "\n".join(new)


def test_the_check_names_a_long_list_and_a_long_body():
    """On code written to break it: a method of 9 parameters besides self and a function of 101 lines are
    named; 8 besides cls (and *args, **kw) and 100 lines pass."""
    nine = ", ".join(f"p{i}" for i in range(9))
    eight = ", ".join(f"p{i}" for i in range(8))
    body = "".join(f"    x{i} = {i}\n" for i in range(98))
    source = (f"class A:\n"
              f"    def wide(self, {nine}):\n        pass\n\n"
              f"    @classmethod\n    def fits(cls, {eight}, *args, **kw):\n        pass\n\n\n"
              f"def long():\n{body}    x = 0\n    return x\n\n\n"
              f"def short():\n{body}    return 0\n")
    assert sorted(offenders(source, "x.py")) == ["x.py:long (0 parameters, 101 lines)",
                                                 "x.py:wide (9 parameters, 2 lines)"]
