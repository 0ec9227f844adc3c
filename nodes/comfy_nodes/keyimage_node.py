"""SceneKeyImage: scene → key image at the output aspect."""
from __future__ import annotations

import numpy as np

from ..engine.keyimage import compose_key_image, load_image_file
from .api import CATEGORY, SceneType, io, ui
from .convert import rgb_to_image


class SceneKeyImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SceneKeyImage",
            display_name="Scene Key Image",
            category=CATEGORY,
            description="The scene's key image at the output aspect, composed from the brand palette, "
                        "the product image (when the brief has one) and the scene.",
            inputs=[
                SceneType.Input("scene"),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF, control_after_generate=True,
                             tooltip="Varies the composition."),
                io.String.Input("font", default="", optional=True,
                                tooltip="Font family (fontconfig) or font file; empty: Noto Sans CJK."),
            ],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, scene, seed, font="") -> io.NodeOutput:
        product = load_image_file(scene.product_image_path, "brief.product_image") if scene.product_image_path else None
        logo = load_image_file(scene.logo_path, "brief.logo") if scene.logo_path else None
        img = compose_key_image(scene.scene, scene.width, scene.height, scene.brand, scene.product,
                                product_image=product, logo=logo, seed=seed, font=font or None)
        tensor = rgb_to_image(np.asarray(img))
        return io.NodeOutput(tensor, ui=ui.PreviewImage(tensor, cls=cls))
