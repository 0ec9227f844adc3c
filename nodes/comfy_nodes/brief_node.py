"""BrandBrief: the brief as widgets → ADREEL_BRIEF."""
from __future__ import annotations

from ..engine.models import ASPECT_RATIOS, MAX_DURATION_SECONDS, Brief, parse_model
from .api import CATEGORY, BriefType, check_combo_inputs, io, private_directory
from .convert import save_image_input


class BrandBrief(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="BrandBrief",
            display_name="Brand Brief",
            category=CATEGORY,
            description="The ad's brief: brand, product, audience, goal, length, tone, aspect, colours and call to action.",
            inputs=[
                io.String.Input("brand", default="Acme"),
                io.String.Input("product", default="RoboVac X2"),
                io.String.Input("audience", default="busy parents", multiline=False),
                io.String.Input("goal", default="drive sales"),
                io.Float.Input("duration_seconds", default=15.0, min=0.5, max=MAX_DURATION_SECONDS, step=0.5,
                               tooltip="Length of the ad in seconds (at most 180)."),
                io.String.Input("tone", default="confident"),
                io.Combo.Input("aspect_ratio", options=list(ASPECT_RATIOS), default="9:16"),
                io.String.Input("language", default="en", tooltip="Language code, e.g. en, ko."),
                io.String.Input("brand_colors", default="#1E3A8A, #F59E0B",
                                tooltip="Hex colours, comma separated; the first is the main brand colour."),
                io.String.Input("cta", default="Shop now at acme.com", tooltip="Call to action."),
                io.String.Input("channels", default="tiktok, reels", optional=True),
                io.String.Input("price", default="", optional=True,
                                tooltip="The price as the shop writes it (e.g. ₩12,900); ProductPage fills it."),
                io.String.Input("description", default="", optional=True, multiline=True,
                                tooltip="The product's description; ProductPage fills it."),
                io.Image.Input("logo", optional=True),
                io.Image.Input("product_image", optional=True),
            ],
            outputs=[BriefType.Output(display_name="brief")],
        )

    @classmethod
    def validate_inputs(cls, aspect_ratio):
        return check_combo_inputs(cls, aspect_ratio=aspect_ratio)

    @classmethod
    def execute(cls, logo=None, product_image=None, **widgets) -> io.NodeOutput:
        folder = private_directory("inputs")  # never temp/: anyone may upload there under any name
        brief = parse_model(Brief, dict(
            widgets,  # brand, product, audience, goal, duration_seconds, tone, aspect_ratio, language, …
            channels=[c.strip() for c in (widgets.get("channels") or "").split(",") if c.strip()],
            price=widgets.get("price") or "", description=widgets.get("description") or "",
            logo_path=save_image_input(logo, folder, "logo", "logo"),
            product_image_path=save_image_input(product_image, folder, "product", "product_image"),
        ), "brief")
        return io.NodeOutput(brief)
