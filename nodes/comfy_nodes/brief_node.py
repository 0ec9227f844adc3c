"""BrandBrief: the brief as widgets → ADREEL_BRIEF."""
from __future__ import annotations

from ..engine.channels import AUTO
from ..engine.models import ASPECT_RATIOS, MAX_DURATION_SECONDS, Brief, parse_model
from .api import CATEGORY, BriefType, io, private_directory
from .brand_kit_node import AUTO, apply_kit, chosen_kit, kit_choices, kit_fingerprint
from .convert import save_image_input

CTA_DEFAULT = "Shop now at acme.com"


class BrandBrief(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="BrandBrief",
            display_name="Brand Brief",
            category=CATEGORY,
            description="The ad's brief: brand, product, audience, goal, length, tone, aspect (auto: its channels "
                        "choose), colours and call to action.",
            inputs=[
                io.String.Input("brand", default="Acme"),
                io.String.Input("product", default="RoboVac X2"),
                io.String.Input("audience", default="busy parents", multiline=False),
                io.String.Input("goal", default="drive sales"),
                io.Float.Input("duration_seconds", default=15.0, min=0.5, max=MAX_DURATION_SECONDS, step=0.5,
                               tooltip="Length of the ad in seconds (at most 180)."),
                io.String.Input("tone", default="confident"),
                io.Combo.Input("aspect_ratio", options=[AUTO, *ASPECT_RATIOS], default=AUTO,
                               tooltip="auto: the channels choose the aspect, the length's limits and the safe "
                                       "zone (TikTok, Reels, Shorts 9:16; feeds 4:5; YouTube 16:9). An aspect "
                                       "set here wins: the ad keeps that aspect's own layout."),
                io.String.Input("language", default="en", tooltip="Language code, e.g. en, ko."),
                io.String.Input("brand_colors", default="#1E3A8A, #F59E0B",
                                tooltip="Hex colours, comma separated; the first is the main brand colour."),
                io.String.Input("cta", default=CTA_DEFAULT, tooltip="Call to action."),
                io.String.Input("channels", default="tiktok, reels", optional=True,
                                tooltip="Where the ad runs, comma separated: TikTok, Reels, Shorts, YouTube, "
                                        "Instagram feed, Facebook feed."),
                io.String.Input("price", default="", optional=True,
                                tooltip="The price as the shop writes it (e.g. ₩12,900); ProductPage fills it."),
                io.String.Input("description", default="", optional=True, multiline=True,
                                tooltip="The product's description; ProductPage fills it."),
                io.Image.Input("logo", optional=True),
                io.Image.Input("product_image", optional=True),
                io.Combo.Input("brand_kit", options=kit_choices(), default=AUTO, optional=True,
                               tooltip="A brand kit from the brands folder (BrandKitSave). auto: the kit named like "
                                       "brand, if there is one; none: no kit. The kit's name, palette, logo, fonts, "
                                       "voice, music and tone replace the widgets and images here; its CTA is used "
                                       "when cta is left at its default. Its rules and documents reach the script."),
            ],
            outputs=[BriefType.Output(display_name="brief")],
        )

    @classmethod
    def fingerprint_inputs(cls, brand=None, brand_kit=None, **_):
        """A kit (or its documents) changed on disk: the brief is made again."""
        return kit_fingerprint(brand_kit, brand)

    @classmethod
    def execute(cls, logo=None, product_image=None, **widgets) -> io.NodeOutput:
        folder = private_directory("inputs")  # never temp/: anyone may upload there under any name
        brand_kit = widgets.pop("brand_kit", AUTO)
        values = dict(
            widgets,  # brand, product, audience, goal, duration_seconds, tone, aspect_ratio, language, …
            channels=widgets.get("channels") or "",  # the brief splits and checks the names
            price=widgets.get("price") or "", description=widgets.get("description") or "",
            logo_path=save_image_input(logo, folder, "logo", "logo"),
            product_image_path=save_image_input(product_image, folder, "product", "product_image"),
        )
        kit, kit_folder = chosen_kit(brand_kit, widgets.get("brand"))
        if kit is not None:
            values = apply_kit(values, kit, kit_folder, CTA_DEFAULT)
        return io.NodeOutput(parse_model(Brief, values, "brief"))
