"""A product page URL → the product's facts and its best photo, through the one safety layer.

The page and its image are fetched with ``cloud.page_fetch.fetch_public`` (public hosts only unless the
operator allows one, every redirect checked, robots.txt honoured, capped in bytes and time, no cookies).
The photo is the first of the page's images (structured data first, see ``extract``) that decodes as a
JPEG, PNG, WebP, GIF or BMP within the input-image ceiling (``ADREEL_MAX_INPUT_PIXELS``).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Mapping, Optional

from PIL import Image

from ..cloud.page_fetch import FetchError, fetch_public
from ..keyimage.composed import load_image_file
from ..models import AdReelInputError
from .extract import ProductInfo, decode_html, extract

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
MAX_IMAGE_TRIES = 4
_HTML_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "")


@dataclass
class ProductPage:
    info: ProductInfo
    image: Optional[Image.Image]   # RGBA
    image_url: str
    url: str                       # the page's final URL
    notes: list


def read_product_page(url: str, field: str = "url", *, need_image: bool = True,
                      environ: Optional[Mapping[str, str]] = None) -> ProductPage:
    """Fetch and read ``url``; an ``AdReelInputError`` naming ``field`` on any failure."""
    try:
        page = fetch_public(url, "the product page", environ=environ)
    except FetchError as exc:
        raise AdReelInputError(field, str(exc)) from None
    if page.content_type not in _HTML_TYPES:
        raise AdReelInputError(field, f"the product page is {page.content_type!r}, not an HTML page")
    info = extract(decode_html(page.body, page.charset), page.url)
    if not info.name:
        raise AdReelInputError(field, "the page names no product (no schema.org Product, OpenGraph title, "
                                      "<h1> or <title>)")
    notes, image, image_url = [], None, ""
    for candidate in info.images[:MAX_IMAGE_TRIES]:
        try:
            got = fetch_public(candidate, "the product image", accept="image/avif,image/webp,image/png,image/jpeg,"
                                                                     "image/*;q=0.8", environ=environ)
            if got.content_type and not got.content_type.startswith("image/") \
                    and got.content_type != "application/octet-stream":
                raise AdReelInputError(field, f"the product image is {got.content_type!r}, not an image")
            image = load_image_file(io.BytesIO(got.body), f"{field} (product image)", IMAGE_FORMATS)
            image_url = got.url
            break
        except (FetchError, AdReelInputError) as exc:
            notes.append(str(exc))
    if image is None and need_image:
        why = "; ".join(notes) if notes else "the page lists no image"
        raise AdReelInputError(field, f"no product photo could be read from the page ({why})")
    return ProductPage(info=info, image=image, image_url=image_url, url=page.url, notes=notes)


def fill_cta(template: str, product: str, price: str, brand: str, limit: int = 120) -> str:
    """The CTA template with ``{price}`` / ``{product}`` / ``{brand}`` filled in. Without a price, ``{price}``
    goes together with the separator before it (``Order now — {price}`` → ``Order now``)."""
    text = template or ""
    if "{price}" in text and not price:
        head, _, tail = text.partition("{price}")
        stripped = head.rstrip()
        for sep in ("—", "–", "-", "·", ":", ",", "|"):
            if stripped.endswith(sep):
                stripped = stripped[: -len(sep)]
                break
        text = stripped.rstrip() + tail
    for key, value in (("price", price), ("product", product), ("brand", brand)):
        text = text.replace("{" + key + "}", value)
    return " ".join(text.split())[:limit]
