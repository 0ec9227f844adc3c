"""Brand kits: ``<brands folder>/<name>/brand.json`` (+ the kit's own files beside it).

A kit is untrusted data like any upload: its name and every file name in it are plain names (no folder, no
``..``), the JSON is at most ``MAX_KIT_BYTES``, and :class:`BrandKit` checks every field, naming it
(``brand_kit.palette[1]: is not a colour like #1E3A8A``). Files a kit names are found only inside the kit's
own folder, or ``input/<file>`` in ComfyUI's input folder, links resolved (``media.files.is_inside``).
"""
from __future__ import annotations

import json
import os
import re
from typing import Annotated, Iterable, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from ..models import AdReelInputError, normalise_hex, parse_model
from ..media.files import write_atomic as write_text_atomic
from ..media.files import is_inside

KIT_FILE = "brand.json"
MAX_KIT_BYTES = 64 * 1024
INPUT_PREFIX = "input/"
VOICE_KINDS = ("espeak-ng", "piper", "openai", "elevenlabs")
# a brand's name: letters (any script: Hangul too), digits, and space . _ & ' - inside; no folder, no dot first
_NAME = re.compile(r"[^\W_][\w .&'-]{0,63}")
_FILE = re.compile(r"[^\W_][\w .()-]{0,126}")


def name_problem(name) -> Optional[str]:
    """Why ``name`` is not a plain brand name (None when it is). Never repeats the name."""
    if not isinstance(name, str) or not name.strip():
        return "must be a brand name (letters, digits, space . _ & ' -)"
    if len(name) > 64:
        return "is longer than 64 characters"
    if "/" in name or "\\" in name or ".." in name or not _NAME.fullmatch(name) or name.endswith((".", " ")):
        return "must be a plain name: letters, digits, space . _ & ' - (no folder, no '..')"
    return None


def check_name(name, field: str = "brand") -> str:
    problem = name_problem(name)
    if problem:
        raise AdReelInputError(field, problem)
    return name


def _plain_file(value: str, allow_input: bool = True) -> str:
    """A file a kit names: a plain file name in the kit's folder, or ``input/<plain name>``."""
    rest = value[len(INPUT_PREFIX):] if allow_input and value.startswith(INPUT_PREFIX) else value
    if len(rest) > 127 or "/" in rest or "\\" in rest or ".." in rest or not _FILE.fullmatch(rest):
        raise ValueError("must be a plain file name in the kit's folder, or input/<file> (no folder, no '..')")
    return value


def _short_list(values, limit: int, each: int, what: str) -> list[str]:
    if len(values) > limit:
        raise ValueError(f"at most {limit} {what}")
    out = []
    for v in values:
        v = v.strip()
        if not v:
            continue
        if len(v) > each:
            raise ValueError(f"each of the {what} is at most {each} characters")
        out.append(v)
    return list(dict.fromkeys(out))


class BrandKit(BaseModel):
    """A brand saved once: what every ad of the brand looks, sounds and reads like, and its rules."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str
    palette: list[Annotated[str, AfterValidator(normalise_hex)]] = Field(
        default_factory=list, description="hex colours; the first is the main one")
    logo: str = Field(default="", description="a file in the kit's folder, or input/<file>")
    fonts: list[str] = Field(default_factory=list, description="font families (fontconfig) or font files in "
                                                                "the kit's folder; the first sets the text")
    voice: str = Field(default="", description="espeak-ng | piper:<voice> | openai:<voice> | elevenlabs:<id>")
    music: str = Field(default="", description="a file in the kit's folder, a bundled track, or input/<file>")
    tone: str = Field(default="", max_length=80)
    cta: str = Field(default="", max_length=120)
    words_to_use: list[str] = Field(default_factory=list)
    words_never: list[str] = Field(default_factory=list)
    legal_lines: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        problem = name_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("palette")
    @classmethod
    def _palette(cls, v: list[str]) -> list[str]:
        if len(v) > 8:
            raise ValueError("at most 8 colours")
        return v

    @field_validator("logo", "music")
    @classmethod
    def _file(cls, v: str) -> str:
        return _plain_file(v) if v else v

    @field_validator("fonts")
    @classmethod
    def _fonts(cls, v: list[str]) -> list[str]:
        v = _short_list(v, 4, 127, "fonts")
        for f in v:
            if f.lower().endswith((".ttf", ".otf", ".ttc")):
                _plain_file(f, allow_input=False)
            elif not re.fullmatch(r"[\w .:,=-]{1,100}", f):
                raise ValueError("a font is a family name (e.g. Noto Sans CJK KR) or a font file in the kit's folder")
        return v

    @field_validator("voice")
    @classmethod
    def _voice(cls, v: str) -> str:
        if not v:
            return v
        kind, _, name = v.partition(":")
        if kind not in VOICE_KINDS or (kind == "espeak-ng" and name) or (kind != "espeak-ng" and not name) or \
                not re.fullmatch(r"[\w.-]{0,100}", name):
            raise ValueError("is espeak-ng, piper:<voice>, openai:<voice> or elevenlabs:<voice id>")
        return v

    @field_validator("words_to_use", "words_never")
    @classmethod
    def _words(cls, v: list[str]) -> list[str]:
        return _short_list(v, 50, 60, "words")

    @field_validator("legal_lines")
    @classmethod
    def _legal(cls, v: list[str]) -> list[str]:
        return _short_list(v, 3, 120, "legal lines")


def voice_settings(voice: str) -> dict:
    """SceneNarration's widgets (backend, voice, piper_voice) for a kit's ``voice``."""
    kind, _, name = voice.partition(":")
    if kind == "piper":
        return {"backend": "piper", "voice": "", "piper_voice": name}
    if kind in ("openai", "elevenlabs"):
        return {"backend": kind, "voice": name, "piper_voice": "default"}
    if kind == "espeak-ng":
        return {"backend": kind, "voice": "", "piper_voice": "default"}
    return {"backend": "auto", "voice": "", "piper_voice": "default"}


# ------------------------------------------------------------------ the folder
def kit_dir(roots: Iterable[str], name: str, field: str = "brand") -> Optional[str]:
    """The folder of kit ``name`` in the first of ``roots`` that has it (None when none does)."""
    check_name(name, field)
    for root in roots:
        folder = os.path.join(root, name)
        if os.path.isfile(os.path.join(folder, KIT_FILE)) and is_inside(folder, root):
            return folder
    return None


def list_kits(roots: Iterable[str]) -> list[str]:
    """The names of the kits in ``roots`` (sorted, each once)."""
    names = set()
    for root in roots:
        try:
            entries = os.listdir(root)
        except OSError:
            continue
        for entry in entries:
            if name_problem(entry) is None and os.path.isfile(os.path.join(root, entry, KIT_FILE)):
                names.add(entry)
    return sorted(names, key=str.casefold)


def parse_kit(raw: bytes | str, name: str | None = None, field: str = "brand_kit") -> BrandKit:
    """The kit in ``raw`` (JSON), checked; ``name``: the kit's folder name, which the kit must carry."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if len(raw) > MAX_KIT_BYTES:
        raise AdReelInputError(field, f"is {len(raw)} bytes; a brand kit is at most {MAX_KIT_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise AdReelInputError(field, "is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise AdReelInputError(field, f"is not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise AdReelInputError(field, "is nested too deeply to be a brand kit") from None
    if not isinstance(data, dict):
        raise AdReelInputError(field, "must be a JSON object with the kit's fields (name, palette, logo, …)")
    if name is not None:
        data.setdefault("name", name)
        if data.get("name") != name:
            raise AdReelInputError(f"{field}.name", "must be the kit's own name (its folder's)")
    return parse_model(BrandKit, data, field)


def load_kit(roots: Iterable[str], name: str, field: str = "brand") -> tuple[BrandKit, str]:
    """(kit, its folder) for ``name``; an error naming ``field`` when there is no such kit or it is bad."""
    roots = list(roots)
    folder = kit_dir(roots, name, field)
    if folder is None:
        raise AdReelInputError(field, "no brand kit of that name in the brands folder (save one with "
                                      "BrandKitSave or PUT /adreel/brands/<name>)")
    path = os.path.join(folder, KIT_FILE)
    with open(path, "rb") as f:
        raw = f.read(MAX_KIT_BYTES + 1)
    return parse_kit(raw, name, "brand_kit"), folder


def save_kit(root: str, kit: BrandKit) -> str:
    """Write ``kit`` to ``<root>/<name>/brand.json`` atomically (a crash never leaves half a kit)."""
    check_name(kit.name, "name")
    folder = os.path.join(root, kit.name)
    os.makedirs(folder, exist_ok=True)
    if not is_inside(folder, root):
        raise AdReelInputError("name", "must be a kit folder inside the brands folder")
    text = kit.model_dump_json(indent=2)
    if len(text.encode("utf-8")) > MAX_KIT_BYTES:
        raise AdReelInputError("brand_kit", f"would be more than {MAX_KIT_BYTES} bytes; a brand kit is at most that")
    write_text_atomic(os.path.join(folder, KIT_FILE), text)
    return os.path.join(folder, KIT_FILE)


def kit_file(folder: str, name: str, input_dir: Optional[str], field: str,
             extra: Optional[dict[str, str]] = None) -> str:
    """The path of a file the kit names: in its ``folder``, ``input/<file>`` in ``input_dir``, or one of
    ``extra`` (name → path: the pack's bundled tracks); inside its folder, links resolved."""
    if extra and name in extra:
        return extra[name]
    if name.startswith(INPUT_PREFIX):
        base, rel = input_dir, name[len(INPUT_PREFIX):]
    else:
        base, rel = folder, name
    path = os.path.realpath(os.path.join(base, rel)) if base else ""
    if not base or not is_inside(path, base) or not os.path.isfile(path):
        raise AdReelInputError(field, "names a file that is not in the kit's folder (or input/<file> in "
                                      "ComfyUI's input folder)")
    return path
