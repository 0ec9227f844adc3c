"""AdReel's data model: brief, script, storyboard, reference style, manifest.

Plain pydantic v2; nothing here knows about ComfyUI. Every model validates its
own invariants so that a bad value is reported with the field that holds it.
"""
from __future__ import annotations

import re
from dataclasses import fields
from typing import Annotated, Any, Literal, Mapping, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from . import channels as channel_table


class WidgetValues:
    """Base of a node's widget values held as one frozen dataclass: V3 nodes get each input as a keyword,
    and ``execute(cls, <connected inputs>, **widgets)`` reads the widgets into one typed object."""

    @classmethod
    def from_values(cls, values: Mapping[str, Any]):
        """From the node's input values: each field its value; a missing or None value keeps the default."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if values.get(f.name) is not None})


ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "9:16": (1080, 1920),
    "4:5": (1080, 1350),   # the feed format Meta recommends for Instagram and Facebook feeds
    "1:1": (1080, 1080),
    "16:9": (1920, 1080),
}
# Output resolutions by the short side of the frame.
RESOLUTIONS: dict[str, int] = {"720p": 720, "1080p": 1080, "4k": 2160}
MAX_DURATION_SECONDS = 180.0
SEGMENTS = ("hook", "problem", "solution", "proof", "benefit", "offer", "cta", "intro", "outro", "scene")
CAMERA_MOVES = (
    "zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down",
    "drift", "rotate", "pulse", "static",
)
TRANSITIONS = ("cut", "fade", "crossfade", "wipeleft", "wiperight", "wipeup", "wipedown",
               "slideleft", "slideright", "slideup", "slidedown")
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


class AdReelInputError(ValueError):
    """Bad input, reported with the field that holds it (e.g. ``brief.brand``)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def describe_validation_error(err: ValidationError, prefix: str) -> str:
    """One line per problem, each naming the field the way a user sees it."""
    lines = []
    for item in err.errors():
        loc = ".".join(str(p) for p in item.get("loc", ()) if p != "__root__")
        field = f"{prefix}.{loc}" if loc else prefix
        msg = item.get("msg", "invalid value")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        lines.append(f"{field}: {msg}")
    return "; ".join(lines)


def parse_model(model: type[BaseModel], data, prefix: str):
    """Validate ``data`` as ``model``; raise AdReelInputError naming every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        exc = AdReelInputError(f"{prefix}.{loc}" if loc else prefix, "")
        exc.message = describe_validation_error(err, prefix)
        exc.args = (exc.message,)
        raise exc from None


def normalise_hex(value: str) -> str:
    m = _HEX.match(value.strip())
    if not m:
        raise ValueError("is not a colour like #1E3A8A")
    return "#" + m.group(1).upper()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def one_of(allowed) -> AfterValidator:
    """A field validator: the value must be one of ``allowed`` (the message lists them)."""
    def check(v):
        if v not in allowed:
            raise ValueError(f"is not one of {', '.join(allowed)}")
        return v
    return AfterValidator(check)


CameraMove = Annotated[str, one_of(CAMERA_MOVES)]
Transition = Annotated[str, one_of(TRANSITIONS)]
AspectRatio = Annotated[str, one_of(ASPECT_RATIOS)]


class ReferenceStyle(_Model):
    """What a reference ad contributes to a new script: its pacing and structure."""

    duration_seconds: float = Field(gt=0)
    shot_count: int = Field(ge=1)
    mean_shot_seconds: float = Field(gt=0)
    median_shot_seconds: float = Field(gt=0)
    shot_boundaries: list[float] = Field(default_factory=list, description="cut times in seconds")
    structure: list[str] = Field(default_factory=list, description="segment per shot, if known")
    aspect_ratio: Optional[str] = None
    tone: Optional[str] = None


def _split_names(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


class BrandRules(_Model):
    """What a brand kit (engine/brand/kit.py) brings to a brief beyond its widgets: the kit's name, the
    voice, font and music the ad uses, the script's rules, and the passages of the brand's documents
    relevant to this brief (BrandKnowledge)."""

    name: str = Field(max_length=64)
    voice: str = Field(default="", max_length=120)
    font: str = Field(default="", max_length=4096)
    music_path: Optional[str] = None
    words_to_use: list[str] = Field(default_factory=list, max_length=50)
    words_never: list[str] = Field(default_factory=list, max_length=50)
    legal_lines: list[str] = Field(default_factory=list, max_length=3)
    passages: list[str] = Field(default_factory=list, max_length=8)

    @field_validator("passages")
    @classmethod
    def _passages(cls, v: list[str]) -> list[str]:
        if any(len(p) > 1200 for p in v):
            raise ValueError("a passage is at most 1200 characters")
        return v


class Brief(_Model):
    brand: str = Field(max_length=80)
    product: str = Field(max_length=200)
    audience: str = Field(default="", max_length=400)
    goal: str = Field(default="", max_length=400)
    duration_seconds: float = Field(default=15.0)
    tone: str = Field(default="confident", max_length=80)
    aspect_ratio: AspectRatio = "9:16"
    language: str = Field(default="en", max_length=16)
    brand_colors: list[str] = Field(default_factory=lambda: ["#1E3A8A", "#F59E0B"])
    cta: str = Field(max_length=120)
    channels: list[str] = Field(default_factory=list)   # where the ad runs (channels.py), as the user wrote them
    formats_from_channels: bool = False  # aspect_ratio was "auto": the channels chose aspect, length, safe zone
    price: str = Field(default="", max_length=40)          # as the shop writes it, e.g. ₩12,900 (ProductPage)
    description: str = Field(default="", max_length=1000)  # the product's own description (ProductPage)
    logo_path: Optional[str] = None
    product_image_path: Optional[str] = None
    reference_style: Optional[ReferenceStyle] = None
    brand_kit: Optional[BrandRules] = None                 # the brand kit applied (BrandBrief's brand_kit)

    @field_validator("brand", "product", "cta")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="before")
    @classmethod
    def _channels_choose_the_aspect(cls, data):
        """``aspect_ratio`` ``auto``: the first named channel's aspect (9:16 when none is named)."""
        if isinstance(data, dict) and str(data.get("aspect_ratio", "")).strip().lower() == channel_table.AUTO:
            names = data.get("channels") or []
            chosen = channel_table.known(_split_names(names) if isinstance(names, str) else names)
            data = {**data, "aspect_ratio": (channel_table.output_aspects(chosen) or ["9:16"])[0],
                    "formats_from_channels": True}
        return data

    @field_validator("channels", mode="before")
    @classmethod
    def _channel_list(cls, v):
        return _split_names(v) if isinstance(v, str) else v

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, v: list[str]) -> list[str]:
        channel_table.resolve(v)
        return v

    @model_validator(mode="after")
    def _channel_lengths(self):
        if self.formats_from_channels:
            problem = channel_table.length_problem(channel_table.known(self.channels), self.duration_seconds)
            if problem:
                raise ValidationError.from_exception_data("Brief", [InitErrorDetails(
                    type=PydanticCustomError("channel_length", problem), loc=("duration_seconds",),
                    input=self.duration_seconds)])
        return self

    @field_validator("duration_seconds")
    @classmethod
    def _duration(cls, v: float) -> float:
        if not (v > 0):
            raise ValueError(f"must be more than 0 seconds (got {v:g})")
        if v > MAX_DURATION_SECONDS:
            raise ValueError(f"must be at most {MAX_DURATION_SECONDS:g} seconds (got {v:g})")
        return round(float(v), 3)

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        v = v.strip().replace("_", "-")
        if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", v):
            raise ValueError("is not a language code like en or ko")
        return v.lower()

    @field_validator("brand_colors", mode="before")
    @classmethod
    def _colors(cls, v):
        if isinstance(v, str):
            v = [p for p in re.split(r"[,\s]+", v) if p]
        if not v:
            raise ValueError("give at least one colour like #1E3A8A")
        if len(v) > 8:
            raise ValueError("at most 8 colours")
        return [normalise_hex(str(c)) for c in v]

    @property
    def base_language(self) -> str:
        return self.language.split("-")[0]


class SceneContent(_Model):
    """What a scene says and shows: the fields a script's scene, the LLM's scene and a storyboard
    scene share (each adds its own timing)."""

    segment: str = "scene"
    narration: str = Field(default="", max_length=1000)
    on_screen_text: str = Field(default="", max_length=200)
    visual_direction: str = Field(default="", max_length=1000)
    image_prompt: str = Field(default="", max_length=2000)
    negative_prompt: str = Field(default="", max_length=2000)
    camera: CameraMove = "zoom_in"
    transition: Transition = "cut"
    music_mood: str = ""
    brand_elements: list[str] = Field(default_factory=list)

    def content(self) -> dict:
        """The shared fields only, as a dict (for the next stage's scene)."""
        return self.model_dump(include=set(SceneContent.model_fields))


class Scene(SceneContent):
    index: int = Field(ge=0)
    start: float = Field(ge=0)
    end: float = Field(gt=0)

    @property
    def duration(self) -> float:
        return round(self.end - self.start, 6)

    @model_validator(mode="after")
    def _order(self):
        if self.end <= self.start:
            raise ValueError(f"scene {self.index}: end ({self.end:g}) must be after start ({self.start:g})")
        return self


class Script(_Model):
    title: str = Field(min_length=1, max_length=200)
    language: str = "en"
    total_duration: float = Field(gt=0, le=MAX_DURATION_SECONDS)
    scenes: list[Scene] = Field(min_length=1, max_length=60)
    source: str = Field(default="template", description="template | ollama:<model> | openai:<model> | edited")
    notes: list[str] = Field(default_factory=list, description="what a user should know: fallbacks, repairs")

    @model_validator(mode="after")
    def _timeline(self):
        t = 0.0
        for i, sc in enumerate(self.scenes):
            if sc.index != i:
                raise ValueError(f"scenes[{i}].index is {sc.index}, expected {i}")
            if abs(sc.start - t) > 0.011:
                raise ValueError(f"scenes[{i}].start is {sc.start:g}s but the previous scene ends at {t:g}s")
            t = sc.end
        if abs(t - self.total_duration) > 0.05:
            raise ValueError(f"scene durations add up to {t:g}s, not total_duration {self.total_duration:g}s")
        return self


class StoryboardScene(SceneContent):
    index: int
    start: float
    duration: float
    start_frame: int
    frame_count: int
    palette: list[str] = Field(default_factory=list)


class Storyboard(_Model):
    brief: Brief
    title: str
    language: str
    width: int
    height: int
    fps: int
    total_duration: float
    total_frames: int
    scenes: list[StoryboardScene]
    script_source: str = "template"
    notes: list[str] = Field(default_factory=list)


class AdScript(_Model):
    """What flows from ScriptLLM to StoryboardSplit: the script and the brief it serves."""

    brief: Brief
    script: Script


class SceneSpec(_Model):
    """One scene with everything a per-scene node needs (ADREEL_SCENE)."""

    scene: StoryboardScene
    width: int
    height: int
    fps: int
    brand: str
    product: str
    language: str = "en"
    product_image_path: Optional[str] = None
    logo_path: Optional[str] = None
    safe_zone: Optional[tuple[float, float, float, float]] = None  # the channels' (top, right, bottom, left)

    def zone(self) -> Optional[channel_table.SafeZone]:
        """The channels' safe zone of this scene's frame (None: the aspect's own layout)."""
        return None if self.safe_zone is None else channel_table.SafeZone(*self.safe_zone)
    voice: str = ""   # the brand kit's voice (BrandKit.voice), for SceneNarration left at its defaults


class OutputFile(_Model):
    kind: str
    path: str
    bytes: int
    sha256: str
    url: Optional[str] = None


class RenderManifest(_Model):
    brief: Brief
    script: Optional[Script] = None
    storyboard: Storyboard
    models: list[str] = Field(default_factory=list)
    providers: list[dict] = Field(default_factory=list)
    costs_usd: float = 0.0
    timings_seconds: dict[str, float] = Field(default_factory=dict)
    encode: dict = Field(default_factory=dict)
    voices: list[dict] = Field(default_factory=list,
                               description="each narrated scene's voice as SceneNarration shows it: "
                                           "{scene, voice} ('Piper en_US-joe-medium', 'espeak-ng ko at 150 wpm', "
                                           "'openai TTS voice nova'; 'unknown' for another node's AUDIO)")
    outputs: list[OutputFile] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
