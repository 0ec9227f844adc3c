"""The JSON an LLM writes, derived from models.Script, and its way back to a Script.

LLMs add badly: the schema asks each scene for its ``duration`` (not start / end)
and AdReel lays out the timeline itself. Everything else is the Scene's own
fields, with the camera moves, transitions and segments as enums.
"""
from __future__ import annotations

import copy
import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..models import CAMERA_MOVES, SEGMENTS, TRANSITIONS, Brief, Scene, Script
from .quality import DURATION_TOLERANCE, Issue, Pacing

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
        raise ValueError(f"{v!r} is not a {what}: use one of {', '.join(allowed)}")
    return key


class LLMScene(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    segment: str
    duration: float = Field(gt=0, le=180)
    on_screen_text: str = Field(default="", max_length=200)
    narration: str = Field(default="", max_length=1000)
    visual_direction: str = Field(default="", max_length=1000)
    image_prompt: str = Field(max_length=2000)
    negative_prompt: str = Field(default="", max_length=2000)
    camera: str = "zoom_in"
    transition: str = "cut"
    music_mood: str = Field(default="", max_length=200)
    brand_elements: list[str] = Field(default_factory=list, max_length=20)

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


def json_schema(pacing: Pacing | None = None, portable: bool = False) -> dict:
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
    if pacing is not None:
        lo, hi = pacing.count_range()
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
        issues.append(Issue(where, msg))
    return issues


_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


def parse_answer(text: str) -> tuple[dict, list[str]]:
    """The JSON object in an answer, plus the repairs needed to find it."""
    text = (text or "").strip()
    if not text:
        raise AnswerProblem([Issue("answer", "is empty: answer with the JSON object")])
    try:
        data = json.loads(text)
        repairs = []
    except json.JSONDecodeError as err:
        data, repairs = None, []
        for candidate in [m.group(1) for m in _FENCE.finditer(text)] + [text[text.find("{"):text.rfind("}") + 1]]:
            if not candidate:
                continue
            try:
                data = json.loads(candidate)
                repairs = ["took the JSON object out of the prose around it"]
                break
            except json.JSONDecodeError:
                continue
        if data is None:
            start = " ".join(text[:80].split())
            raise AnswerProblem([Issue("answer", f"is not JSON ({err.msg} at line {err.lineno} column {err.colno}); "
                                                 f"it begins {start!r}. Answer with only the JSON object")])
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
        fields = sc.model_dump(exclude={"duration"})
        scenes.append(Scene(index=i, start=round(t, 3), end=end, **fields))
        t = end
    return Script(title=llm.title, language=brief.language, total_duration=brief.duration_seconds,
                  scenes=scenes, source=source)


def script_to_llm_json(script: Script) -> dict:
    """A Script in the LLM's shape (for examples and for showing what to fix)."""
    return {"title": script.title, "scenes": [
        {"segment": sc.segment, "duration": round(sc.duration, 3),
         **{k: getattr(sc, k) for k in SCENE_FIELDS if k not in ("segment", "duration")}}
        for sc in script.scenes]}
