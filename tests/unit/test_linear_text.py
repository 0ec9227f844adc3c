"""Every text transform of the engine runs in time linear in its input: no regex that backtracks quadratically.

A narration of ``a-a.`` repeated 12,000 times once held the GIL for 43 s inside the spoken form, and every
HTTP request (``/interrupt`` included) waited. The class of bug is a pattern that, at each of n start
positions, scans on to the end of a run before failing. These tests find it the way an attacker would:
with hostile inputs of growing size, timing each one at 1× and 8× the size in the same run. Linear work
grows about 8×, quadratic about 64×; the bound, 30×, leaves room for a noisy machine (times are the
thread's CPU time, best of interleaved runs). No absolute time is asserted anywhere.

* Every regex in ``nodes/engine`` — compiled at module level (also inside lists and tuples) or written
  inline as ``re.sub(r"…")`` and friends — is found by itself (importing every engine module and parsing
  its source), so a pattern added tomorrow is audited too. A pattern used only anchored (``match``,
  ``fullmatch``) is timed that way; every other one scans (``finditer``), as ``sub``/``search`` do.
* The transforms that take visitor text (the spoken form in several languages, the subtitle display form,
  the speech estimate, subtitle cues, the script-answer parser, language checks, the provider chain,
  credential-name checks) are timed on the inputs that were hostile to them.
"""
from __future__ import annotations

import ast
import importlib
import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "nodes" / "engine"
SIZE_FACTOR = 8
MAX_GROWTH = 30.0          # linear: ~8, quadratic: ~64
SCREEN_SECONDS = 0.002     # an 8× input scanned faster than this cannot be quadratic: not worth timing closely
_SCAN_METHODS = {"search", "sub", "subn", "findall", "finditer", "split"}
_ANCHORED_METHODS = {"match", "fullmatch"}

# Short units repeated into long inputs: every character that means something to a pattern in the engine,
# pairs of the commonest ones, and the shapes that were hostile before.
_CHARS = list("a1 .-@,%(_:/\n`{[#'$|=;+smA\t)\"}]<>*\\~!?é가0")
_PAIR_CHARS = "a1 .-@,%(_:/\n`{"
HOSTILE_UNITS = sorted(set(
    _CHARS + [a + b for a in _PAIR_CHARS for b in _PAIR_CHARS if a != b]
    + ["a-a.", "```{", "1.1,", "a@a.", "1 1-", "Key ", "http://", "www.", "1,000", ",111", "111,", "$1", "a.a",
       "Bearer ", "n: 1 ", "Parsed_showinfo ", "-a", "a--", "1s", "1m", "\n\n1%|", "1%|", "1.5", "10-", "1~",
       "a%a", "%a@", "a-", "12:", "1/1", "(1", "+1", "#1", "1st ", "a'b ", "x.com", "a.b-", "\ue000"]))


def engine_modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ENGINE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _method_uses(tree: ast.AST) -> dict[str, set[str]]:
    """name → methods called on it in the module (``_X.sub(...)`` → {"_X": {"sub"}})."""
    uses: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            uses.setdefault(node.value.id, set()).add(node.attr)
    return uses


def engine_patterns() -> dict[str, tuple[re.Pattern, bool]]:
    """Every regex of the engine: label → (pattern, scanned). ``scanned`` is False only for a pattern that
    the module uses with ``match``/``fullmatch`` alone."""
    found: dict[str, tuple[re.Pattern, bool]] = {}
    for name, path in engine_modules().items():
        module = importlib.import_module(name)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        uses = _method_uses(tree)
        for attr, value in vars(module).items():
            values = value if isinstance(value, (list, tuple)) else [value]
            for i, item in enumerate(values):
                if isinstance(item, re.Pattern):
                    methods = uses.get(attr, set())
                    scanned = bool(methods & _SCAN_METHODS) or not (methods & _ANCHORED_METHODS)
                    label = f"{name}.{attr}" + (f"[{i}]" if isinstance(value, (list, tuple)) else "")
                    found[label] = (item, scanned)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "re" and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                    and node.func.attr in _SCAN_METHODS | _ANCHORED_METHODS | {"compile"}):
                flags = 0
                for kw in node.keywords:
                    if kw.arg == "flags" and isinstance(kw.value, ast.Attribute) and kw.value.attr in ("I", "IGNORECASE"):
                        flags = re.IGNORECASE
                found[f"{name}:{node.lineno}"] = (re.compile(node.args[0].value, flags),
                                                  node.func.attr not in _ANCHORED_METHODS)
    return found


def _time(fn, arg) -> float:
    """CPU seconds of this thread: what the work costs, not what other processes on a busy machine take."""
    t0 = time.thread_time()
    fn(arg)
    return time.thread_time() - t0


def growth(fn, make, n: int, repeats: int = 3) -> tuple[float, float, float]:
    """(time at size n, time at size 8n, their ratio), each the best of ``repeats`` interleaved runs."""
    small_input, big_input = make(n), make(SIZE_FACTOR * n)
    fn(small_input)  # warm (caches, lazy imports)
    small, big = [], []
    for _ in range(repeats):
        small.append(_time(fn, small_input))
        big.append(_time(fn, big_input))
    return min(small), min(big), min(big) / max(min(small), 1e-7)


def _probe(pattern: re.Pattern, scanned: bool):
    if scanned:
        return lambda s: sum(1 for _ in pattern.finditer(s))
    return lambda s: pattern.match(s)


def test_the_audit_finds_the_engines_patterns():
    patterns = engine_patterns()
    labels = set(patterns)
    # a few known ones, compiled and inline, so a broken discovery cannot pass silently
    assert {"nodes.engine.speech.spoken._BARE_DOMAIN", "nodes.engine.speech.spoken._EMAIL",
            "nodes.engine.script.reference._SHOWINFO_N"} <= labels
    assert any(label.startswith("nodes.engine.speech.spoken:") for label in labels)
    assert any(label.startswith("nodes.engine.cloud.redaction._PATTERNS[") for label in labels)
    assert len(patterns) > 100


def test_every_engine_regex_is_linear_on_hostile_input():
    """Each pattern × each hostile unit repeated to ~1,000 and ~8,000 characters: the 8× input takes < 30× the
    time. The few pairs whose 8× input takes long enough to measure are timed closely (best of three)."""
    slow = []
    for label, (pattern, scanned) in engine_patterns().items():
        probe = _probe(pattern, scanned)
        for unit in HOSTILE_UNITS:
            if isinstance(pattern.pattern, bytes):  # a pattern over bytes (a fetched page) gets the UTF-8 bytes
                unit = unit.encode("utf-8", "surrogatepass")
            n = max(1, 1000 // len(unit))
            if _time(probe, unit * (SIZE_FACTOR * n)) < SCREEN_SECONDS:
                continue
            small, big, ratio = growth(probe, lambda k: unit * k, n)
            if ratio > MAX_GROWTH:
                slow.append(f"{label} on {unit!r}×{n}: {small * 1e3:.2f} ms, ×{SIZE_FACTOR}: {big * 1e3:.1f} ms "
                            f"({ratio:.0f}×)")
    assert not slow, "regexes that grow faster than linear:\n" + "\n".join(slow)


def _transforms():
    from nodes.engine.audio import subtitles
    from nodes.engine.cloud import redaction
    from nodes.engine.providers import request, routes
    from nodes.engine.script import language, schema
    from nodes.engine.speech import spoken, voice

    def answer(s):
        try:
            schema.parse_answer(s)
        except Exception:  # a clear refusal is fine; the time is what counts
            pass

    def chain(s):
        try:
            routes.parse_chain(s)
        except Exception:
            pass

    out = {f"spoken_form[{lang}]": (lambda s, lang=lang: spoken.spoken_form(s, lang))
           for lang in ("en", "ko", "de", "ja", "xx")}
    out.update({
        "display_form": spoken.display_form,
        "estimate_seconds": lambda s: voice.estimate_seconds(s, "en") + voice.estimate_seconds(s, "ko"),
        "make_cues": lambda s: subtitles.make_cues(s, 0.0, 10.0, 40.0),
        "parse_answer": answer,
        "language_problem": lambda s: language.language_problem(s, "en", ["Acme"]),
        "speech_units": lambda s: language.speech_units(s, "en") + language.speech_units(s, "ko"),
        "provider_chain": chain,
        "is_secret_name": request.is_secret_name,
        "redact": redaction.redact,
    })
    return out


TRANSFORM_INPUTS = {
    "a-a.": "a-a.", "percent signs": "%", "digits": "1", "thousands groups": "111,", "dashes": "-",
    "spaces": " ", "newlines": "\n", "e-mail-ish": "a%a@", "dotted labels": "a.b-", "fences": "```{",
    "brackets": "[", "mixed": "Call 555-0100 or visit www.a-b.com/x?y=1 for 50% off $19.99 (1+1) 10~20 ",
    "hangul": "가나다 3개 ", "emoji": "😀\u200d", "placeholder": "\ue000\ue100",
}


@pytest.mark.parametrize("case", sorted(TRANSFORM_INPUTS))
def test_every_text_transform_is_linear(case):
    unit = TRANSFORM_INPUTS[case]
    slow = []
    for name, fn in _transforms().items():
        n = max(1, 3000 // len(unit))
        small, big, ratio = growth(fn, lambda k: unit * k, n, repeats=2)
        if ratio > MAX_GROWTH and big > SCREEN_SECONDS:
            small, big, ratio = growth(fn, lambda k: unit * k, n, repeats=3)  # once more, closely
            if ratio > MAX_GROWTH:
                slow.append(f"{name}: {small * 1e3:.2f} ms → {big * 1e3:.1f} ms ({ratio:.0f}×)")
    assert not slow, f"on {case!r} repeated, transforms that grow faster than linear:\n" + "\n".join(slow)


def test_the_48kb_narration_that_stalled_the_server_is_said_in_linear_time():
    """The reported attack itself, 12,000 × ``a-a.``, against 1,500 ×: the spoken form grows linearly."""
    from nodes.engine.speech.spoken import spoken_form
    small, big, ratio = growth(lambda s: spoken_form(s, "en"), lambda k: "a-a." * k, 1500, repeats=2)
    assert ratio < MAX_GROWTH, (small, big, ratio)
