"""The script stage reads top to bottom: once the brief enters it, no module is come back to after it was left.

What ScriptLLM.execute hands the brief to (``generate_script``) is traced with ``sys.setprofile`` — on the
event loop's thread and the thread an answer is read on — against contract-faithful fake LLM servers. Every
call of a function of ``nodes/engine/script`` is a stop in the module that defines it, called from the
nearest stage module below it on the stack. The path enters a module again after leaving it when

* a module calls back into one below it on the stack (``check`` → ``template`` → ``check``), or
* a module is called from a second module (the checker asking the template for scene bounds, after the flow
  had called the template): whoever reads the code goes back to a file already read.

A loop that asks again (a repair) calls the same modules from the same place: that is one pass, repeated.
A value's own protocol (``Issue.__str__``, a dataclass's ``__init__``) is part of the value, not a stop;
coroutine and generator frames count when they start, not each time they resume, and a task a module starts
counts as that module's. The backend is built before the brief enters (the node's widgets), so its
constructor is outside the traced path.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import sys
import threading
from pathlib import Path

import pytest

from fakes.llm_servers import FakeOllama, FakeOpenAICompatible, PlanModel
from nodes.engine.models import Brief
from nodes.engine.script import generate
from nodes.engine.script.generate import generate_script
from nodes.engine.script.llm import ScriptOptions
from nodes.engine.script.ollama_backend import OllamaBackend
from nodes.engine.script.openai_backend import OpenAIBackend
from nodes.engine.script.schema import SCENE_FIELDS

STAGE = Path(generate.__file__).resolve().parent
FLOW = "generate"
RESUMABLE = inspect.CO_COROUTINE | inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


_MODULES: dict[str, str | None] = {}


def stage_module(frame) -> str | None:
    filename = frame.f_code.co_filename
    if filename not in _MODULES:
        path = Path(filename).resolve()
        _MODULES[filename] = path.stem if path.parent == STAGE else None
    return _MODULES[filename]


class ModuleTrace:
    """The calls into the script stage's modules: (caller module or None at a thread's root, callee module,
    the callee's stack of stage modules, outermost first)."""

    def __init__(self):
        self.calls: list[tuple[str | None, str, list[str]]] = []
        self._started: set = set()
        self._lock = threading.Lock()

    def profile(self, frame, event, arg):
        if event != "call":
            return
        module = stage_module(frame)
        name = frame.f_code.co_name
        if module is None or (name.startswith("__") and name.endswith("__")):
            return
        if frame.f_code.co_flags & RESUMABLE:
            with self._lock:
                if frame in self._started:
                    return  # a coroutine or generator resuming, not a new call
                self._started.add(frame)
        stack, f = [], frame.f_back
        while f is not None:
            m = stage_module(f)
            if m is not None and (not stack or stack[-1] != m):
                stack.append(m)
            f = f.f_back
        stack.reverse()
        with self._lock:
            if not stack and frame.f_code.co_flags & inspect.CO_COROUTINE and \
                    any(module == entered for _, entered, _ in self.calls):
                return  # a task a module started (asyncio.wait_for …) runs on the loop's own stack: that module's
            self.calls.append((stack[-1] if stack else None, module, stack))

    def run(self, coro):
        sys.setprofile(self.profile)
        threading.setprofile(self.profile)  # the worker thread an answer is read and checked on
        try:
            return asyncio.run(coro)
        finally:
            sys.setprofile(None)
            threading.setprofile(None)

    def reentries(self) -> list[str]:
        """Each way the path comes back to a module it had left (once per caller → callee)."""
        first_caller: dict[str, str | None] = {}
        found = []
        for caller, module, stack in self.calls:
            if caller == module:
                continue
            if module in stack:
                what = f"{' → '.join(stack)} → {module} (calls back into a module below it)"
            elif module in first_caller and first_caller[module] != caller:
                what = f"{caller} → {module} (entered before from {first_caller[module]})"
            else:
                first_caller.setdefault(module, caller)
                continue
            if what not in found:
                found.append(what)
        return found

    def modules(self) -> list[str]:
        return list(dict.fromkeys(module for _, module, _ in self.calls))

    def roots(self) -> set[str]:
        return {module for caller, module, _ in self.calls if caller is None}


BRIEF = Brief(brand="Acme", product="RoboVac X2", cta="Shop now at acme.com", audience="busy parents",
              duration_seconds=15)


@pytest.fixture
def ollama(monkeypatch):
    monkeypatch.setenv("ADREEL_LLM_ALLOWED_HOSTS", "127.0.0.1")  # the fakes listen on loopback
    with FakeOllama(hang_seconds=30) as fake:
        yield fake


def traced(llm, **options):
    trace = ModuleTrace()
    gen = trace.run(generate_script(BRIEF, llm, ScriptOptions(**options)))
    return trace, gen


def test_the_template_path_plans_writes_and_checks_in_one_pass():
    trace, gen = traced(None, seed=1)
    assert not gen.fell_back and gen.script.source == "template"
    assert trace.reentries() == []
    assert trace.modules()[:2] == [FLOW, "plan"] and {"quality", "template"} <= set(trace.modules())
    assert trace.roots() == {FLOW}


def test_an_llm_answer_repaired_once_passes_through_each_module_once(ollama):
    ollama.script(PlanModel("long_narration"))  # the first answer overruns its scenes, the next is good
    trace, gen = traced(OllamaBackend("qwen2.5:7b", ollama.url, timeout=10), seed=1)
    assert [a.outcome for a in gen.attempts] == ["invalid", "ok"] and not gen.fell_back
    assert trace.reentries() == []
    assert {"plan", "quality", "llm", "prompting", "schema", "ollama_backend"} <= set(trace.modules())
    assert trace.roots() == {FLOW}  # the flow, and its reading of the answer on the worker thread


def test_repairs_that_never_meet_the_bar_fall_back_in_one_pass(ollama):
    ollama.model = PlanModel("durations")  # every answer is 20 % short
    trace, gen = traced(OllamaBackend("qwen2.5:7b", ollama.url, timeout=10), seed=1, max_attempts=2)
    assert gen.fell_back and gen.script.source == "template"
    assert trace.reentries() == []
    assert "template" in trace.modules()


def test_a_small_context_goes_compact_and_repairs_in_one_pass(monkeypatch):
    """An OpenAI-compatible server with a small context: the conversation's budget picks the compact
    prompt; a first answer that misses is repaired, within the same budget."""
    good = generate.write_template_script(BRIEF, seed=3)
    scenes = [{k: round(sc.duration, 3) if k == "duration" else getattr(sc, k) for k in SCENE_FIELDS}
              for sc in good.scenes]
    answer = json.dumps({"title": good.title, "scenes": scenes}, ensure_ascii=False)
    monkeypatch.setenv("ADREEL_LLM_ALLOWED_HOSTS", "127.0.0.1")
    with FakeOpenAICompatible(models=("local-model",), hang_seconds=30) as fake:
        fake.script(answer.replace("Shop now at acme.com", "Buy it"), answer)  # the first misses the CTA
        llm = OpenAIBackend("local-model", fake.url + "/v1", "none", timeout=10, context_size=2560)
        trace, gen = traced(llm, seed=3)
    assert [a.outcome for a in gen.attempts] == ["invalid", "ok"], gen.attempts
    assert any("compact prompt" in n for n in gen.script.notes), gen.script.notes
    assert trace.reentries() == []
    assert {"context", "openai_backend"} <= set(trace.modules())
