"""BrandImage: one of AdReel's bundled images (the demo's product photo and logo) or an image from
ComfyUI's input folder → IMAGE (+ MASK), for BrandBrief."""
from __future__ import annotations

import os

from ..engine.keyimage.composed import load_image_file
from .api import CATEGORY, io
from .convert import pil_to_image
from .choices import file_fingerprint, input_choices, resolve_choice

PACK_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASSETS_DIR = os.path.join(PACK_ROOT, "assets")
BUNDLED_IMAGES = ("demo/coffee.png", "demo/acme_logo.png")
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def brand_image_choices() -> list[str]:
    return [n for n in BUNDLED_IMAGES if os.path.isfile(os.path.join(ASSETS_DIR, n))] + input_choices(IMAGE_EXT)


def resolve_brand_image(name: str) -> str:
    """The file behind a choice: a bundled asset by its exact name, or a file in the input folder."""
    return resolve_choice(name, "image", ASSETS_DIR, BUNDLED_IMAGES, "an image")


class BrandImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        choices = brand_image_choices()
        return io.Schema(
            node_id="BrandImage",
            display_name="Brand Image",
            category=CATEGORY,
            description="A product photo or logo for BrandBrief: AdReel's bundled demo images (an espresso "
                        "photograph, CC0 by Rachel Michetti, from scikit-image; the demo brand's logo, CC0, drawn "
                        "by scripts/make_demo_logo.py; see assets/demo/LICENSE.md) or any image in ComfyUI's input "
                        "folder. Transparency is kept (RGBA IMAGE), so a cut-out product or logo stays cut out; "
                        "MASK is the transparency as LoadImage gives it.",
            inputs=[io.Combo.Input("image", options=choices, default=choices[0] if choices else None)],
            outputs=[io.Image.Output(display_name="image"), io.Mask.Output(display_name="mask")],
        )

    @classmethod
    def fingerprint_inputs(cls, image):
        return file_fingerprint(resolve_brand_image(image))

    @classmethod
    def execute(cls, image) -> io.NodeOutput:
        im = load_image_file(resolve_brand_image(image), "image")  # RGBA, size-checked, EXIF-rotated
        return io.NodeOutput(*pil_to_image(im))
