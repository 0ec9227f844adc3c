"""Brand kits in the node layer: BrandBrief's ``brand_kit`` (applying a kit to the brief) and the
BrandKitSave node (a kit created and edited from the editor)."""
from __future__ import annotations

import hashlib
import os

from ..engine.brand.apply import brief_values, rules_for
from ..engine.brand.kit import BrandKit, kit_dir, kit_file, list_kits, load_kit, name_problem, save_kit
from ..engine.brand.knowledge import brief_query, knowledge_for
from ..engine.keyimage.composed import load_image_file
from ..engine.models import AdReelInputError, parse_model
from .api import CATEGORY, brand_roots, input_directory, io, private_directory
from .convert import pil_to_image, save_image_input

AUTO, NONE = "auto", "none"
FONT_EXT = (".ttf", ".otf", ".ttc")


def kit_choices() -> list[str]:
    """BrandBrief's ``brand_kit`` options: auto (the kit named like ``brand``, if any), none, then each kit."""
    return [AUTO, NONE, *list_kits(brand_roots())]


def chosen_kit(choice: str | None, brand: str):
    """(kit, folder) for BrandBrief's ``brand_kit`` and ``brand``, or (None, None)."""
    choice = choice or AUTO
    if choice == NONE:
        return None, None
    roots = brand_roots()
    if choice == AUTO:
        if not isinstance(brand, str) or name_problem(brand) or kit_dir(roots, brand) is None:
            return None, None
        return load_kit(roots, brand, "brand")
    return load_kit(roots, choice, "brand_kit")


def kit_fingerprint(choice: str | None, brand: str) -> str:
    """What ComfyUI compares to rerun BrandBrief: the kit file's and its documents' sizes and times."""
    try:
        folder = None
        if choice not in (None, NONE):
            name = brand if choice == AUTO else choice
            if isinstance(name, str) and not name_problem(name):
                folder = kit_dir(brand_roots(), name)
        if not folder:
            return ""
        parts = []
        for sub in (folder, os.path.join(folder, "docs")):
            if os.path.isdir(sub):
                for entry in sorted(os.listdir(sub)):
                    st = os.stat(os.path.join(sub, entry))
                    parts.append(f"{sub}/{entry}:{st.st_size}:{st.st_mtime_ns}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()
    except (OSError, AdReelInputError):
        return ""


def apply_kit(values: dict, kit: BrandKit, folder: str, cta_default: str) -> dict:
    """``values`` for ``Brief`` with ``kit`` applied (engine/brand/apply.py's rule), its files resolved:
    the logo (a private PNG copy, size-checked), the first font, the music, and the documents' passages
    relevant to the brief."""
    from .music_node import MUSIC_DIR, bundled_tracks
    out = brief_values(values, kit, cta_default)
    inputs = input_directory()
    if kit.logo:
        path = kit_file(folder, kit.logo, inputs, "brand_kit.logo")
        image, _ = pil_to_image(load_image_file(path, "brand_kit.logo"))
        out["logo_path"] = save_image_input(image, private_directory("inputs"), "logo", "brand_kit.logo")
    font = ""
    if kit.fonts:
        font = kit.fonts[0]
        if font.lower().endswith(FONT_EXT):
            font = kit_file(folder, font, None, "brand_kit.fonts[0]")
    music = None
    if kit.music:
        music = kit_file(folder, kit.music, inputs, "brand_kit.music",
                         extra={t: os.path.join(MUSIC_DIR, t) for t in bundled_tracks()})
    passages = knowledge_for(folder).search(brief_query(_Query(out)))
    out["brand_kit"] = rules_for(kit, font=font, music_path=music, passages=passages)
    return out


class _Query:
    def __init__(self, values: dict):
        self.__dict__.update(values)


def _lines(text: str) -> list[str]:
    return [p.strip() for p in (text or "").replace("\n", ",").split(",") if p.strip()]


class BrandKitSave(io.ComfyNode):
    """A brand kit from widgets, written to the brands folder (created or replaced)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="BrandKitSave",
            display_name="Brand Kit Save",
            category=CATEGORY,
            description="Saves a brand kit: the brand's name, palette, logo, fonts, voice, music, tone, call to "
                        "action, words to use and never to use, and required legal lines, as "
                        "brands/<name>/brand.json (ComfyUI's models/brands). BrandBrief then applies it by name "
                        "(brand_kit). Put the logo, fonts, music and the brand's documents (.md, .txt, .pdf) in "
                        "the kit's folder, or name input/<file>.",
            inputs=[
                io.String.Input("name", default="Acme", tooltip="The brand's name: letters, digits, space . _ & ' -"),
                io.String.Input("palette", default="#1E3A8A, #F59E0B", tooltip="Hex colours; the first is the main one."),
                io.String.Input("logo", default="", tooltip="A file in the kit's folder, or input/<file>."),
                io.String.Input("fonts", default="", tooltip="Font families or font files in the kit's folder, "
                                                             "comma separated; the first sets the text."),
                io.String.Input("voice", default="", tooltip="espeak-ng, piper:<voice>, openai:<voice> or "
                                                             "elevenlabs:<voice id>; empty: the language's default."),
                io.String.Input("music", default="", tooltip="A file in the kit's folder, a bundled track or input/<file>."),
                io.String.Input("tone", default=""),
                io.String.Input("cta", default="", tooltip="The brand's call to action."),
                io.String.Input("words_to_use", default="", multiline=True, tooltip="Comma or line separated."),
                io.String.Input("words_never", default="", multiline=True,
                                tooltip="Words no script may use (comma or line separated)."),
                io.String.Input("legal_lines", default="", multiline=True,
                                tooltip="Lines every ad must show word for word, one a line."),
            ],
            outputs=[io.String.Output(display_name="name")],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, name):
        """A name that is not a plain name is refused at /prompt, naming the input (never repeating it)."""
        problem = name_problem(name) if isinstance(name, str) else None
        return f"name: {problem}" if problem else True

    @classmethod
    def execute(cls, **widgets) -> io.NodeOutput:
        w = {name: (value or "") for name, value in widgets.items()}  # name, palette, logo, fonts, voice, …
        kit = parse_model(BrandKit, dict(
            name=w["name"], palette=[p for p in w["palette"].replace(",", " ").split() if p], logo=w["logo"].strip(),
            fonts=_lines(w["fonts"]), voice=w["voice"].strip(), music=w["music"].strip(), tone=w["tone"],
            cta=w["cta"], words_to_use=_lines(w["words_to_use"]), words_never=_lines(w["words_never"]),
            legal_lines=[line.strip() for line in w["legal_lines"].splitlines() if line.strip()]), "brand_kit")
        roots = brand_roots()
        if not roots:
            raise AdReelInputError("name", "no brands folder is configured")
        save_kit(roots[0], kit)
        return io.NodeOutput(kit.name, ui={"text": [f"saved brand kit {kit.name}: brands/{kit.name}/brand.json"]})
