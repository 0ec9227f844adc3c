"""The JSON an LLM writes, derived from models.Script, and its way back to a Script.

LLMs add badly: the schema asks each scene for its ``duration`` (not start / end)
and AdReel lays out the timeline itself. Everything else is the Scene's own
fields, with the camera moves, transitions and segments as enums.
"""
from __future__ import annotations

import copy
import json
import re

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..models import CAMERA_MOVES, SEGMENTS, TRANSITIONS, Brief, Scene, SceneContent, Script
from .plan import Plan
from .quality import DURATION_TOLERANCE, Issue

MAX_BRAND_ELEMENTS = 20
MAX_BRAND_ELEMENT_CHARS = 100
MAX_MUSIC_MOOD_CHARS = 200
MAX_NOTE_CHARS = 1000
MAX_NOTES = 50

# LLM scene fields, in the order a writer thinks of them
SCENE_FIELDS = ("segment", "duration", "on_screen_text", "narration", "visual_direction", "image_prompt",
                "negative_prompt", "camera", "transition", "music_mood", "brand_elements")
_DESCRIPTIONS = {
    "segment": "the scene's role in the ad",
    "duration": "seconds this scene lasts; all scenes add up to the ad's length",
    "on_screen_text": "short text shown on screen (a few words), in the ad's language",
    "narration": "voice-over spoken during this scene, in the ad's language; short enough to say in the scene",
    "visual_direction": "what the viewer sees, for the art director",
    "image_prompt": "an English text-to-image prompt for the scene's key image (subject, setting, light, style)",
    "negative_prompt": "what the image must not contain (English)",
    "camera": "camera move",
    "transition": "transition into this scene",
    "music_mood": "the music's mood in this scene",
    "brand_elements": "brand elements visible, e.g. logo, product, colours",
}
_ALIASES = {"call_to_action": "cta", "calltoaction": "cta", "closing": "cta", "opening": "hook",
            "zoomin": "zoom_in", "zoomout": "zoom_out", "push_in": "zoom_in", "pull_out": "zoom_out",
            "dissolve": "crossfade", "cross_fade": "crossfade", "none": "cut", "hard_cut": "cut"}


class AnswerProblem(Exception):
    """The answer cannot become a Script; ``issues`` say why (sent back to the LLM)."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("; ".join(map(str, issues)))


def _enum_value(v, allowed, what):
    if not isinstance(v, str):
        raise ValueError(f"must be a string, one of {', '.join(allowed)}")
    key = re.sub(r"[\s\-]+", "_", v.strip().lower())
    key = _ALIASES.get(key, _ALIASES.get(key.replace("_", ""), key))
    if key not in allowed:
        raise ValueError(f"is not a {what}: use one of {', '.join(allowed)}")
    return key


class LLMScene(SceneContent):
    """A scene as an LLM writes it: SceneContent's fields read leniently (unknown keys ignored, synonyms of
    the enums mapped), a segment and an image prompt required, and ``duration`` in place of start / end."""
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    segment: str
    image_prompt: str = Field(max_length=2000)
    music_mood: str = Field(default="", max_length=MAX_MUSIC_MOOD_CHARS)
    brand_elements: list[Annotated[str, Field(max_length=MAX_BRAND_ELEMENT_CHARS)]] = Field(
        default_factory=list, max_length=MAX_BRAND_ELEMENTS)
    duration: float = Field(gt=0, le=180)

    @field_validator("segment", mode="before")
    @classmethod
    def _segment(cls, v):
        return _enum_value(v, SEGMENTS, "segment")

    @field_validator("camera", mode="before")
    @classmethod
    def _camera(cls, v):
        return _enum_value(v, CAMERA_MOVES, "camera move")

    @field_validator("transition", mode="before")
    @classmethod
    def _transition(cls, v):
        return _enum_value(v, TRANSITIONS, "transition")


class LLMScript(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=200)
    scenes: list[LLMScene] = Field(min_length=1, max_length=60)


def json_schema(plan: Plan | None = None, portable: bool = False) -> dict:
    """The JSON Schema sent as Ollama's ``format`` / OpenAI's ``json_schema``.

    Scene properties are models.Scene's (types, lengths) minus index / start /
    end, plus ``duration``. ``portable`` leaves out string lengths, which
    OpenAI's strict mode rejects.
    """
    base = Scene.model_json_schema()["properties"]
    props = {}
    for name in SCENE_FIELDS:
        if name == "duration":
            prop = {"type": "number", "minimum": 0.04}
        else:
            prop = {k: v for k, v in copy.deepcopy(base[name]).items() if k not in ("default", "title")}
        if portable:
            prop.pop("maxLength", None)
        prop["description"] = _DESCRIPTIONS[name]
        props[name] = prop
    props["segment"]["enum"] = list(SEGMENTS)
    props["camera"]["enum"] = list(CAMERA_MOVES)
    props["transition"]["enum"] = list(TRANSITIONS)
    scene = {"type": "object", "properties": props, "required": list(SCENE_FIELDS), "additionalProperties": False}
    scenes = {"type": "array", "items": scene, "description": "the scenes in order"}
    if plan is not None:
        lo, hi = plan.count_range
        scenes["minItems"], scenes["maxItems"] = lo, hi
    title = {"type": "string", "description": "a short working title for the ad"}
    if not portable:
        title["maxLength"] = 200
    return {"type": "object", "properties": {"title": title, "scenes": scenes},
            "required": ["title", "scenes"], "additionalProperties": False}


def _loc(loc, root: str = "answer") -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or root


_NAMED = re.compile(r"^(scenes\[\d+\]\.\w+) (.*)$", re.DOTALL)


def validation_issues(err: ValidationError, root: str = "answer") -> list[Issue]:
    """One Issue per pydantic error, its field written like ``scenes[2].camera``."""
    issues = []
    for item in err.errors():
        msg = item.get("msg", "invalid value")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if item.get("type") == "missing":
            msg = "is missing"
        where = _loc(item.get("loc", ()), root)
        m = _NAMED.match(msg)
        if not item.get("loc") and m:  # a model-level check that names the scene itself
            where, msg = m.group(1), m.group(2)
        issues.append((_field_rank(item.get("loc", ())), Issue(where, msg)))
    return [issue for _, issue in sorted(issues, key=lambda pair: pair[0])]  # stable: same rank keeps its order


def _field_rank(loc) -> tuple:
    """A scene's problems in the order the schema asks for its fields (pydantic reports a subclass's
    inherited fields first: LLMScene's ``duration`` would come last)."""
    if len(loc) >= 3 and loc[0] == "scenes" and isinstance(loc[1], int) and loc[2] in SCENE_FIELDS:
        return (1, loc[1], SCENE_FIELDS.index(loc[2]))
    return (0 if loc[:1] != ("scenes",) else 1, -1, -1)


_DECODER = json.JSONDecoder()
MAX_FENCES = 16  # fenced blocks tried in one answer


def _loads(text: str):
    """``json.loads`` that reports a too-deep nesting as a JSON error, never a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None


def _raw_object(text: str, start: int):
    """The JSON object that begins at ``text[start]`` (``raw_decode``: reads only as far as the object), or None."""
    try:
        data, _ = _DECODER.raw_decode(text, start)
    except (json.JSONDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _fenced_objects(text: str):
    """Objects inside ```` ``` ```` / ```` ```json ```` fences, found by a linear scan (no backtracking regex)."""
    pos, tried = 0, 0
    while tried < MAX_FENCES:
        at = text.find("```", pos)
        if at < 0:
            return
        i = at + 3
        if text.startswith("json", i):
            i += 4
        n = len(text)
        while i < n and text[i] in " \t\r\n":
            i += 1
        pos = at + 3
        if i < n and text[i] == "{":
            tried += 1
            data = _raw_object(text, i)
            if data is not None:
                yield data


def parse_answer(text: str, max_chars: int | None = None) -> tuple[dict, list[str]]:
    """The JSON object in an answer, plus the repairs needed to find it.

    Linear in the answer's length whatever it holds: a whole-text parse, then
    the fenced blocks (``raw_decode`` from each opening brace, at most
    ``MAX_FENCES``), then the span from the first ``{`` to the last ``}``. An
    answer longer than ``max_chars`` (``ADREEL_MAX_LLM_ANSWER_BYTES``) or nested
    too deeply is an answer problem, never a RecursionError.
    """
    from .. import limits
    limit = limits.MAX_LLM_ANSWER_BYTES.read() if max_chars is None else max_chars
    text = (text or "").strip()
    if not text:
        raise AnswerProblem([Issue("answer", "is empty: answer with the JSON object")])
    if len(text) > limit:
        raise AnswerProblem([Issue("answer", f"is {len(text)} characters, more than the {limit} allowed: "
                                             "answer with only the JSON object")])
    try:
        data = _loads(text)
        repairs = []
    except json.JSONDecodeError as err:
        data, repairs = None, []
        found = next(_fenced_objects(text), None)
        if found is None:
            first, last = text.find("{"), text.rfind("}")
            if 0 <= first < last:
                try:
                    candidate = _loads(text[first:last + 1])
                    found = candidate if isinstance(candidate, dict) else None
                except json.JSONDecodeError:
                    found = None
        if found is not None:
            data, repairs = found, ["took the JSON object out of the prose around it"]
        if data is None:
            raise AnswerProblem([Issue("answer", f"is not JSON ({err.msg} at line {err.lineno} column {err.colno}). "
                                                 "Answer with only the JSON object")])
    if not isinstance(data, dict):
        raise AnswerProblem([Issue("answer", f"is a JSON {type(data).__name__}, not an object with title and scenes")])
    return data, repairs


def to_script(data: dict, brief: Brief, source: str) -> Script:
    """An LLM's JSON as a timed Script for ``brief`` (raises AnswerProblem)."""
    try:
        llm = LLMScript.model_validate(data)
    except ValidationError as err:
        raise AnswerProblem(validation_issues(err)) from None
    total = sum(sc.duration for sc in llm.scenes)
    if abs(total - brief.duration_seconds) > DURATION_TOLERANCE:
        lengths = " + ".join(f"{sc.duration:g}" for sc in llm.scenes)
        raise AnswerProblem([Issue("scenes", f"durations add up to {total:.2f} s ({lengths}); the ad lasts "
                                             f"{brief.duration_seconds:g} s: make them add up to exactly "
                                             f"{brief.duration_seconds:g}")])
    scenes, t = [], 0.0
    for i, sc in enumerate(llm.scenes):
        end = brief.duration_seconds if i == len(llm.scenes) - 1 else round(t + sc.duration, 3)
        if end <= t:
            raise AnswerProblem([Issue(f"scenes[{i}].duration", "is too short")])
        scenes.append(Scene(index=i, start=round(t, 3), end=end, **sc.content()))
        t = end
    return Script(title=llm.title, language=brief.language, total_duration=brief.duration_seconds,
                  scenes=scenes, source=source)


def edit_bound_issues(data: dict) -> list[Issue]:
    """Size bounds of an edited script that the Script model itself leaves open (free-text fields that would
    bloat the manifest, the node's ui, the history and the stored objects)."""
    issues = []
    scenes = data.get("scenes")
    if isinstance(scenes, list) and len(scenes) > 60:
        return [Issue("scenes", f"has {len(scenes)} scenes; at most 60")]
    for i, sc in enumerate(scenes if isinstance(scenes, list) else []):
        if not isinstance(sc, dict):
            issues.append(Issue(f"scenes[{i}]", "must be an object"))
            continue
        mood = sc.get("music_mood", "")
        if not isinstance(mood, str) or len(mood) > MAX_MUSIC_MOOD_CHARS:
            issues.append(Issue(f"scenes[{i}].music_mood", f"must be text of at most {MAX_MUSIC_MOOD_CHARS} characters"))
        elems = sc.get("brand_elements", [])
        if not isinstance(elems, list) or len(elems) > MAX_BRAND_ELEMENTS:
            issues.append(Issue(f"scenes[{i}].brand_elements", f"must be a list of at most {MAX_BRAND_ELEMENTS} items"))
        elif any(not isinstance(e, str) or len(e) > MAX_BRAND_ELEMENT_CHARS for e in elems):
            issues.append(Issue(f"scenes[{i}].brand_elements",
                                f"items must be text of at most {MAX_BRAND_ELEMENT_CHARS} characters"))
        for key in ("segment", "camera", "transition"):
            v = sc.get(key, "")
            if isinstance(v, str) and len(v) > 60:
                issues.append(Issue(f"scenes[{i}].{key}", "is far too long for a name"))
    return issues

