"""ProductPage: a product page URL → the brief's product, description, price, brand, CTA and photo."""
from __future__ import annotations

import json
from urllib.parse import urlsplit

from ..engine.productpage.page import fill_cta, read_product_page
from .api import CATEGORY, io
from .convert import pil_to_image


class ProductPage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ProductPage",
            display_name="Product Page",
            category=CATEGORY,
            description="Reads a product page: name, description, price, brand and rating from its schema.org "
                        "Product (JSON-LD, then microdata), OpenGraph tags or plain HTML, and its best product "
                        "photo, for BrandBrief. Public https pages only (the operator may allow hosts in "
                        "ADREEL_FETCH_ALLOWED_HOSTS); robots.txt is honoured; no cookies are sent.",
            inputs=[
                io.String.Input("url", default="https://shop.example.com/products/daybreak-espresso",
                                tooltip="The product page's address (https)."),
                io.String.Input("cta", default="Order now — {price}",
                                tooltip="The call to action for BrandBrief; {price}, {product} and {brand} are "
                                        "filled in from the page."),
                io.String.Input("brand_fallback", default="", optional=True,
                                tooltip="The brand when the page names none (else the site's host name)."),
            ],
            outputs=[
                io.String.Output(display_name="product"),
                io.String.Output(display_name="description"),
                io.String.Output(display_name="price"),
                io.String.Output(display_name="brand"),
                io.String.Output(display_name="cta"),
                io.Image.Output(display_name="image"),
                io.String.Output(display_name="details"),
            ],
        )

    @classmethod
    def execute(cls, url, cta, brand_fallback="") -> io.NodeOutput:
        page = read_product_page(url, "url")
        info = page.info
        brand = (info.brand or (brand_fallback or "").strip() or (urlsplit(page.url).hostname or ""))[:80]
        image, _ = pil_to_image(page.image)
        details = dict(info.summary(), url=page.url, image_url=page.image_url, brand=brand, notes=page.notes)
        return io.NodeOutput(info.name, info.description, info.price_text, brand,
                             fill_cta(cta, info.name, info.price_text, brand), image,
                             json.dumps(details, ensure_ascii=False, indent=1))
