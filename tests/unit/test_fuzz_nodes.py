"""Property-based fuzzing of every text and number input of every AdReel node (hypothesis).

The node list is the pack's own: what ``comfy_entrypoint().get_node_list()`` registers with ComfyUI (loaded
here on the CPU from the runtime's ComfyUI), so a node added to the pack is fuzzed without touching this
file. For each node, every STRING, FLOAT and INT input is driven with hostile values — long (just over
ADREEL_MAX_TEXT_CHARS, lowered here so that is cheap), nested brackets, any unicode (lone surrogates, NUL,
private use, emoji joiners), regex-hostile repetitions, NaN / ±inf / huge numbers — while the other inputs
keep their defaults. Each value must end one of two ways, within a generous time and memory bound:

* refused at ``/prompt`` time by the node's ``validate_inputs`` (what the pack's guards install) or by
  ComfyUI's own min/max check, with a message naming the input; or
* accepted, and then the node's ``execute`` either works or fails with a clear error (a ``ValueError``
  such as AdReelInputError or LimitExceeded, naming a field; never a TypeError, RecursionError,
  ZeroDivisionError, UnicodeError …), short (a long value is never echoed whole; what a message may quote
  at all is the redaction policy's business, tested with it).

``execute`` runs for every node whose other inputs can be made offline from the pack's own nodes (a brief,
its script from the template, the storyboard and a scene); a node that needs media (IMAGE, VIDEO, AUDIO) or
a model is checked at ``validate_inputs`` only. A backend combo is set to its offline choice (``template``),
and name resolution fails in this process while the fuzz runs: it never reaches the network (a node that
fetches meets a network that is down, and must say so clearly). The HTTP-level sample against the real ComfyUI is in
tests/integration/test_security_round2_bounds.py.
"""
from __future__ import annotations

import asyncio
import inspect
import math
import os
import resource
import socket
import sys
import time

import psutil
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

COMFYUI = os.environ.get("ADREEL_COMFYUI") or os.environ.get("COMFYUI_PATH")
pytestmark = pytest.mark.skipif(not COMFYUI or not os.path.isdir(str(COMFYUI)),
                                reason="needs the runtime's ComfyUI (source .runtime/env.sh)")

TEXT_CAP = 4000                 # ADREEL_MAX_TEXT_CHARS for this module: over-long inputs stay cheap
EXAMPLE_SECONDS = 60.0          # one value, validate + execute, on a busy machine
RSS_GROWTH_BYTES = 1536 * 1024 ** 2
EXAMPLES = int(os.environ.get("ADREEL_FUZZ_EXAMPLES", "10"))
TRIED: dict[str, int] = {}      # node.input → values tried (printed at the end)

UNITS = ["a-a.", "%", "1,", "111,", "```{", "[", '{"a":', "\ue000", "😀\u200d", "가", "\ud800", "\x00", "../",
         "%s%n{0}", "$1,000 ", "a@b.", "-", " ", "\n", "1st ", "#1", "\\", "'\"", "[[ ]]", "<script>", "ǅ\u0301"]
NUMBERS = [math.nan, math.inf, -math.inf, 1e308, -1e308, 10 ** 30, -(10 ** 30), 2 ** 63, -0.0, 0, 1e-320,
           "NaN", "1e999", None]


def hostile_text():
    return st.one_of(
        st.text(max_size=80),                                                            # any unicode
        st.builds(lambda u, n: u * n, st.sampled_from(UNITS), st.integers(1, 300)),     # regex-hostile
        st.builds(lambda u: u * (TEXT_CAP // len(u) + 1), st.sampled_from(UNITS)),      # just over the cap
        st.builds(lambda n: "[" * n + "]" * n, st.integers(1, TEXT_CAP // 2)),          # nested
        st.builds(lambda n: '{"scenes":' * n, st.integers(1, 1000)),
    )


def hostile_number():
    return st.one_of(st.sampled_from(NUMBERS), st.floats(allow_nan=True, allow_infinity=True),
                     st.integers(min_value=-(2 ** 80), max_value=2 ** 80))


@pytest.fixture(scope="module")
def pack_nodes():
    """The pack's registered nodes, as ComfyUI gets them (guards installed), on the CPU."""
    import nodes.engine  # noqa: F401 - the pack's ``nodes`` package first: ComfyUI has a top-level nodes.py too
    if COMFYUI not in sys.path:
        sys.path.append(COMFYUI)
    argv = sys.argv
    sys.argv = ["main.py", "--cpu"]
    try:
        import comfy.options
        comfy.options.enable_args_parsing()
        from nodes.comfy_nodes import comfy_entrypoint
        extension = asyncio.run(comfy_entrypoint())
        nodes = asyncio.run(extension.get_node_list())
    finally:
        sys.argv = argv
    assert len(nodes) >= 10
    return nodes


@pytest.fixture(autouse=True)
def low_text_cap(monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_TEXT_CHARS", str(TEXT_CAP))
    monkeypatch.delenv("ADREEL_PAID_PROVIDERS", raising=False)  # offline: nothing is ever paid for or sent

    def no_network(*args, **kwargs):  # a node that fetches (a page, a model list) meets a network that is down
        raise socket.gaierror(socket.EAI_NONAME, "the fuzz runs offline")
    monkeypatch.setattr(socket, "getaddrinfo", no_network)


@pytest.fixture(autouse=True)
def own_brands_folder(monkeypatch, tmp_path_factory):
    """BrandKitSave writes kits: into a folder of this test's, never the runtime's shared models/brands."""
    if COMFYUI not in sys.path:
        sys.path.append(COMFYUI)
    import folder_paths
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "brands",
                        ([str(tmp_path_factory.mktemp("brands"))], set()))


def schema_inputs(node):
    return list(node.define_schema().inputs or [])


def widget_defaults(node) -> dict:
    values = {}
    for inp in schema_inputs(node):
        if inp.io_type == "COMBO":
            options = list(inp.options or [])
            values[inp.id] = "template" if inp.id == "backend" and "template" in options else \
                (inp.default if inp.default is not None else options[0])  # offline: never the network
        elif inp.io_type in ("STRING", "INT", "FLOAT", "BOOLEAN") and not getattr(inp, "force_input", False):
            if inp.default is not None:
                values[inp.id] = inp.default
            elif not inp.optional:
                values[inp.id] = "" if inp.io_type == "STRING" else 0
    return values


def fuzzed_inputs(node) -> list:
    return [i for i in schema_inputs(node) if i.io_type in ("STRING", "FLOAT", "INT")]


def comfy_range_problem(inp, value) -> str | None:
    """ComfyUI 0.3.75's own check of a widget value at /prompt (type conversion, min/max), for the inputs
    the node's validate_inputs does not take over."""
    if inp.io_type in ("INT", "FLOAT"):
        try:
            v = int(value) if inp.io_type == "INT" else float(value)
        except (TypeError, ValueError, OverflowError):
            return f"{inp.id}: not a number"
        if getattr(inp, "min", None) is not None and v < inp.min:
            return f"{inp.id}: below min"
        if getattr(inp, "max", None) is not None and v > inp.max:
            return f"{inp.id}: above max"
    elif inp.io_type == "STRING" and value is not None and not isinstance(value, str):
        return f"{inp.id}: {str(value)[:20]}"  # ComfyUI converts with str(): see the integration sample
    return None


def validate(node, values: dict):
    """The node's validate_inputs as ComfyUI calls it: exactly the inputs its signature names."""
    fn = node.validate_inputs
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn(**values)
    return fn(**{k: v for k, v in values.items() if k in params})


def run(node, values: dict):
    if getattr(node.define_schema(), "is_input_list", False):  # ComfyUI hands such a node every input as a list
        values = {k: [v] for k, v in values.items()}
    clone = node.PREPARE_CLASS_CLONE({})
    if inspect.iscoroutinefunction(node.execute):
        return asyncio.run(clone.EXECUTE_NORMALIZED_ASYNC(**values))
    return clone.EXECUTE_NORMALIZED(**values)


@pytest.fixture(scope="module")
def upstream(pack_nodes):
    """The pack's own objects for the inputs a node takes from another node: a brief (BrandBrief's
    defaults), its script (ScriptLLM's template), the storyboard and a scene (StoryboardSplit at 180p)."""
    by_id = {n.define_schema().node_id: n for n in pack_nodes}
    made = {}
    for node_id in ("BrandBrief", "ScriptLLM", "StoryboardSplit"):
        node = by_id[node_id]
        values = widget_defaults(node)
        if node_id == "StoryboardSplit":
            values["resolution"] = "180p" if "180p" in [o for i in schema_inputs(node) if i.id == "resolution"
                                                        for o in i.options] else values["resolution"]
        for inp in schema_inputs(node):
            if inp.io_type in made and inp.id not in values:
                values[inp.id] = made[inp.io_type]
        out = run(node, values)
        for spec, value in zip(node.define_schema().outputs, out.result):
            if getattr(spec, "is_output_list", False):
                value = value[0]
            made.setdefault(spec.io_type, value)
    return made


def executable(node, made) -> dict | None:
    """The node's inputs for ``execute`` (defaults + the pack's objects), or None when one it needs is media."""
    values = widget_defaults(node)
    for inp in schema_inputs(node):
        if inp.id in values or inp.io_type in ("STRING", "INT", "FLOAT", "BOOLEAN", "COMBO"):
            continue
        if inp.io_type in made:
            values[inp.id] = made[inp.io_type]
        elif not inp.optional:
            return None
    return values


def is_clear(exc: BaseException, value) -> bool:
    """A refusal a user can act on: a ValueError (AdReelInputError, LimitExceeded, a validation error) or one of
    the pack's own errors (e.g. paid providers off), short. Not a crash in the middle of the code."""
    if isinstance(exc, UnicodeError) or not (isinstance(exc, ValueError)
                                             or type(exc).__module__.startswith("nodes.")):
        return False
    msg = str(exc)
    return bool(msg) and len(msg) <= 3000  # a short message: never the whole of a long value


def check_value(node, inp, values: dict, value, execute: bool) -> None:
    node_id = node.define_schema().node_id
    TRIED[f"{node_id}.{inp.id}"] = TRIED.get(f"{node_id}.{inp.id}", 0) + 1
    values = {**values, inp.id: value}
    t0 = time.monotonic()
    verdict = validate(node, values) if not getattr(inp, "force_input", False) else True
    assert verdict is True or (isinstance(verdict, str) and inp.id in verdict), (node_id, inp.id, verdict)
    if isinstance(value, str) and len(value) > TEXT_CAP:
        assert isinstance(verdict, str) and "ADREEL_MAX_TEXT_CHARS" in verdict or \
            getattr(inp, "force_input", False), (node_id, inp.id, verdict)
    if verdict is not True or comfy_range_problem(inp, value):
        return
    if execute:
        try:
            run(node, values)
        except Exception as exc:  # noqa: BLE001 - what kind of error is the point
            assert is_clear(exc, value), f"{node_id}.{inp.id}={value!r:.120}: {type(exc).__name__}: {exc!s:.300}"
    assert time.monotonic() - t0 < EXAMPLE_SECONDS, (node_id, inp.id, repr(value)[:120])


def test_the_fuzz_covers_every_registered_node(pack_nodes, upstream):
    """Discovery, not a list: every node the pack registers has its text and number inputs fuzzed, and the
    nodes that can run offline run (a brief, a script, a scene)."""
    fuzzed = [n for n in pack_nodes if fuzzed_inputs(n)]
    runnable = [n for n in pack_nodes if executable(n, upstream) is not None]
    assert len(fuzzed) >= 8 and len(runnable) >= 4
    assert {"ADREEL_BRIEF", "ADREEL_SCRIPT", "ADREEL_SCENE"} <= set(upstream)


def fuzz_input(node, inp, values: dict, execute: bool) -> None:
    strategy = hostile_text() if inp.io_type == "STRING" else hostile_number()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(value=strategy)
    def fuzz(value):
        check_value(node, inp, values, value, execute)

    fuzz()


def test_every_text_and_number_input_of_every_node_is_bounded(pack_nodes, upstream):
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for node in pack_nodes:
        values = executable(node, upstream)
        execute = values is not None
        values = values if execute else widget_defaults(node)
        for inp in fuzzed_inputs(node):
            fuzz_input(node, inp, values, execute)
    rss_growth = proc.memory_info().rss - rss0
    peak_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak0
    print(f"fuzzed {sum(TRIED.values())} values over {len(TRIED)} inputs; RSS +{rss_growth / 2 ** 20:.0f} MiB, "
          f"peak +{peak_growth / 2 ** 20:.0f} MiB")
    assert rss_growth < RSS_GROWTH_BYTES and peak_growth < RSS_GROWTH_BYTES, (rss_growth, peak_growth)
