"""A product page's HTML → the product's facts, from the most structured source the page has.

Sources, in order, field by field (the first that has a field gives it):

1. schema.org ``Product`` in JSON-LD (``<script type="application/ld+json">``, ``@graph`` included);
2. schema.org ``Product`` in microdata (``itemscope`` / ``itemprop``);
3. OpenGraph and the product meta tags (``og:title``, ``product:price:amount`` …);
4. plain HTML: ``<h1>`` / ``<title>``, the meta description, a price in the text, the largest ``<img>``.

The HTML is parsed with Beautiful Soup (Python's own ``html.parser`` underneath). The bytes are decoded
with the charset the server named, else the one the page declares (``<meta charset>``), else UTF-8, else
CP949 (the superset of EUC-KR that Korean shops use). Prices are read as shops write them: ``₩12,900``,
``12,900원``, ``$19.99``, ``19,99 €``.
"""
from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Optional
from urllib.parse import urljoin

from bs4 import BeautifulSoup

SOURCES = ("json-ld", "microdata", "opengraph", "html")
FIELDS = ("name", "description", "price", "currency", "brand", "rating", "review_count", "images")
MAX_TEXT = {"name": 200, "description": 1000, "brand": 80}
_CHARSET_ALIASES = {"euc-kr": "cp949", "euc_kr": "cp949", "ks_c_5601-1987": "cp949", "ksc5601": "cp949",
                    "x-windows-949": "cp949", "windows-949": "cp949", "uhc": "cp949"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_SYMBOLS = {"₩": "KRW", "￦": "KRW", "원": "KRW", "$": "USD", "US$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY",
            "円": "JPY", "元": "CNY"}
_PRICE_IN_TEXT = re.compile(
    r"(?P<pre>US\$|[₩￦$€£¥])\s?(?P<a>\d{1,3}(?:[,.\s]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?)"
    r"|(?<!\d)(?<!\d,)(?P<b>\d{1,3}(?:,\d{3})+|\d+)\s?(?P<post>원|円|元)")  # starts where a digit run does: linear


@dataclass
class ProductInfo:
    name: str = ""
    description: str = ""
    price: Optional[Decimal] = None
    currency: str = ""
    brand: str = ""
    rating: Optional[float] = None
    review_count: Optional[int] = None
    images: list = field(default_factory=list)       # absolute URLs, best first
    sources: dict = field(default_factory=dict)       # field → the source that gave it

    @property
    def price_text(self) -> str:
        return format_price(self.price, self.currency)

    def summary(self) -> dict:
        return {"name": self.name, "description": self.description, "price": self.price_text,
                "price_amount": str(self.price) if self.price is not None else "", "currency": self.currency,
                "brand": self.brand, "rating": self.rating, "review_count": self.review_count,
                "images": self.images[:10], "sources": self.sources}


# ------------------------------------------------------------------ text and numbers
def decode_html(body: bytes, header_charset: Optional[str] = None) -> str:
    """The page's text, decoded as the server or the page says (EUC-KR read as CP949)."""
    for name in (header_charset, *(m.decode("ascii", "ignore") for m in _META_CHARSET.findall(body[:4096]))):
        codec = _codec(name)
        if codec:
            return body.decode(codec, "replace")
    if body.startswith(codecs.BOM_UTF8):
        return body[3:].decode("utf-8", "replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp949", "replace")


def _codec(name: Optional[str]) -> Optional[str]:
    if not name:
        return None
    name = name.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _clean(value, limit: int = 1000) -> str:
    if value is None:
        return ""
    text = re.sub(r"\s+", " ", str(value)).strip()
    return text[:limit].rstrip()


def parse_amount(text) -> Optional[Decimal]:
    """``12,900`` → 12900, ``19.99`` → 19.99, ``19,99`` → 19.99, ``1.299,00`` → 1299.00; None if not a price."""
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = str(text)
    s = re.sub(r"[^\d.,]", "", str(text))
    if not s or not any(c.isdigit() for c in s):
        return None
    if "," in s and "." in s:
        dec = "," if s.rfind(",") > s.rfind(".") else "."
        s = s.replace("." if dec == "," else ",", "").replace(",", ".")
    elif "," in s:
        head, _, tail = s.rpartition(",")
        s = s.replace(",", "") if len(tail) == 3 or s.count(",") > 1 else head.replace(",", "") + "." + tail
    elif s.count(".") > 1 or (s.count(".") == 1 and len(s.rpartition(".")[2]) == 3 and len(s) > 4):
        s = s.replace(".", "")
    try:
        value = Decimal(s)
    except InvalidOperation:
        return None
    return value if value >= 0 else None


def currency_of(text) -> str:
    """An ISO 4217 code from a code or a symbol (``₩`` / ``원`` → KRW), else ""."""
    t = _clean(text, 16)
    if re.fullmatch(r"[A-Za-z]{3}", t):
        return t.upper()
    for sym, code in _SYMBOLS.items():
        if sym in t:
            return code
    return ""


def format_price(amount: Optional[Decimal], currency: str) -> str:
    """How a shopper reads the price: ``₩12,900``, ``$19.99``, ``€24.50``, ``19.99 CHF``."""
    if amount is None:
        return ""
    whole = currency in ("KRW", "JPY") or amount == amount.to_integral_value()
    number = f"{amount:,.0f}" if whole else f"{amount:,.2f}"
    symbol = {"KRW": "₩", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}.get(currency)
    if symbol:
        return f"{symbol}{number}"
    return f"{number} {currency}".strip()


def price_in_text(text: str) -> tuple[Optional[Decimal], str]:
    """The first price written in running text (``₩12,900``, ``12,900원``, ``$19.99``)."""
    for m in _PRICE_IN_TEXT.finditer(text or ""):
        amount = parse_amount(m.group("a") or m.group("b"))
        if amount is not None and amount > 0:
            return amount, currency_of(m.group("pre") or m.group("post"))
    return None, ""


# ------------------------------------------------------------------ the sources
def _types(node: dict) -> list[str]:
    t = node.get("@type") or node.get("type") or []
    t = t if isinstance(t, list) else [t]
    return [str(x).rsplit("/", 1)[-1].rsplit(":", 1)[-1] for x in t]


def _walk_ld(node, depth: int = 0):
    if depth > 12:
        return
    if isinstance(node, list):
        for item in node:
            yield from _walk_ld(item, depth + 1)
    elif isinstance(node, dict):
        yield node
        for key in ("@graph", "mainEntity", "itemListElement", "item", "offers"):
            if key in node and key != "offers":
                yield from _walk_ld(node[key], depth + 1)


def _first(value):
    while isinstance(value, list):
        value = value[0] if value else None
    return value


def _name_of(value) -> str:
    value = _first(value)
    if isinstance(value, dict):
        return _clean(value.get("name") or value.get("@value"), 200)
    return _clean(value, 200)


def _image_urls(value) -> list[str]:
    out = []
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, dict):
            v = v.get("contentUrl") or v.get("url") or v.get("@id")
            if isinstance(v, list):
                v = _first(v)
        if isinstance(v, str) and v.strip():
            out.append(v.strip())
    return out


def _offer_price(offers) -> tuple[Optional[Decimal], str]:
    for offer in offers if isinstance(offers, list) else [offers]:
        if not isinstance(offer, dict):
            continue
        spec = _first(offer.get("priceSpecification"))
        spec = spec if isinstance(spec, dict) else {}
        for amount in (offer.get("price"), offer.get("lowPrice"), spec.get("price")):
            value = parse_amount(_first(amount))
            if value is not None:
                currency = currency_of(offer.get("priceCurrency") or spec.get("priceCurrency") or "")
                if not currency and isinstance(_first(amount), str):
                    currency = currency_of(_first(amount))
                return value, currency
    return None, ""


def _from_product(p: dict) -> dict:
    price, currency = _offer_price(p.get("offers"))
    rating = p.get("aggregateRating")
    rating = _first(rating) if rating is not None else None
    rating = rating if isinstance(rating, dict) else {}
    out = {"name": _name_of(p.get("name")),
           "description": _clean(_first(p.get("description")), MAX_TEXT["description"]),
           "brand": _name_of(p.get("brand") or p.get("manufacturer"))[:MAX_TEXT["brand"]].rstrip(),
           "images": _image_urls(p.get("image")),
           "price": price, "currency": currency}
    value = parse_amount(_first(rating.get("ratingValue")))
    if value is not None:
        out["rating"] = float(value)
    count = parse_amount(_first(rating.get("reviewCount") or rating.get("ratingCount")))
    if count is not None:
        out["review_count"] = int(count)
    return out


def from_json_ld(soup: BeautifulSoup) -> dict:
    for script in soup.find_all("script", attrs={"type": re.compile(r"^\s*application/ld\+json", re.I)}):
        try:
            data = json.loads(script.string or script.get_text() or "", strict=False)
        except (ValueError, RecursionError):
            continue  # one broken block does not hide the others
        for node in _walk_ld(data):
            if "Product" in _types(node) or "ProductGroup" in _types(node):
                return _from_product(node)
    return {}


def _microdata_item(el, depth: int = 0) -> dict:
    """The properties of the item ``el`` (``itemscope``): name → list of values (nested items as dicts)."""
    props: dict = {"@type": [t.rsplit("/", 1)[-1] for t in (el.get("itemtype") or "").split()]}
    if depth > 8:
        return props
    stack = list(el.find_all(recursive=False))
    while stack:
        child = stack.pop(0)
        names = (child.get("itemprop") or "").split()
        if child.has_attr("itemscope"):
            if names:
                value = _microdata_item(child, depth + 1)
                for n in names:
                    props.setdefault(n, []).append(value)
            continue  # a nested item's own properties are not this item's
        if names:
            value = _microdata_value(child)
            for n in names:
                props.setdefault(n, []).append(value)
        stack[0:0] = list(child.find_all(recursive=False))
    return props


def _microdata_value(el) -> str:
    """An ``itemprop``'s value as the microdata spec reads it (content, src, href, value, datetime, text)."""
    if el.has_attr("content"):
        return str(el["content"])
    by_tag = {"img": "src", "audio": "src", "video": "src", "source": "src", "embed": "src", "iframe": "src",
              "a": "href", "link": "href", "area": "href", "object": "data", "data": "value", "meter": "value",
              "time": "datetime"}
    attr = by_tag.get(el.name)
    if attr and el.has_attr(attr):
        return str(el[attr])
    return el.get_text(" ", strip=True)


def _flatten_microdata(item: dict) -> dict:
    def one(v):
        return _first(v)

    out = {k: v for k, v in item.items() if k != "@type"}
    product = {"name": one(out.get("name")), "description": one(out.get("description")),
               "image": out.get("image") or []}
    brand = one(out.get("brand"))
    product["brand"] = {"name": one(brand.get("name"))} if isinstance(brand, dict) else brand
    offers = []
    for offer in out.get("offers") or []:
        if isinstance(offer, dict):
            offers.append({k: one(v) for k, v in offer.items() if k != "@type"})
    if not offers and out.get("price"):
        offers.append({"price": one(out.get("price")), "priceCurrency": one(out.get("priceCurrency"))})
    product["offers"] = offers
    rating = one(out.get("aggregateRating"))
    if isinstance(rating, dict):
        product["aggregateRating"] = {k: one(v) for k, v in rating.items() if k != "@type"}
    return product


def from_microdata(soup: BeautifulSoup) -> dict:
    for el in soup.find_all(attrs={"itemscope": True, "itemtype": re.compile(r"schema\.org/Product\b", re.I)}):
        return _from_product(_flatten_microdata(_microdata_item(el)))
    return {}


def _metas(soup: BeautifulSoup) -> dict:
    found: dict = {}
    for m in soup.find_all("meta"):
        key = (m.get("property") or m.get("name") or m.get("itemprop") or "").strip().lower()
        if key and m.get("content") is not None:
            found.setdefault(key, []).append(str(m.get("content")))
    return found


def from_opengraph(soup: BeautifulSoup) -> dict:
    meta = _metas(soup)

    def get(*keys):
        for k in keys:
            if meta.get(k):
                return meta[k][0]
        return None

    out = {"name": _clean(get("og:title", "twitter:title"), 200),
           "description": _clean(get("og:description", "twitter:description"), 1000),
           "brand": _clean(get("product:brand", "og:brand"), 80),
           "images": [v for k in ("og:image:secure_url", "og:image", "og:image:url", "twitter:image")
                      for v in meta.get(k, []) if v.strip()]}
    amount = get("product:price:amount", "og:price:amount", "product:sale_price:amount")
    if amount is not None:
        out["price"] = parse_amount(amount)
        out["currency"] = currency_of(get("product:price:currency", "og:price:currency",
                                          "product:sale_price:currency") or amount)
    return out


def _pixels(img) -> int:
    try:
        return int(str(img.get("width") or "0").rstrip("px")) * int(str(img.get("height") or "0").rstrip("px"))
    except ValueError:
        return 0


def from_html(soup: BeautifulSoup) -> dict:
    h1 = soup.find("h1")
    title = soup.find("title")
    meta = _metas(soup)
    body = soup.body or soup
    out = {"name": _clean(h1.get_text(" ", strip=True) if h1 else (title.get_text(" ", strip=True) if title else ""),
                          200),
           "description": _clean((meta.get("description") or [""])[0], 1000)}
    text = body.get_text(" ", strip=True)
    out["price"], out["currency"] = price_in_text(text)
    imgs = [i for i in soup.find_all("img") if (i.get("src") or "").strip() and not (i.get("src") or "").startswith("data:")]
    imgs.sort(key=_pixels, reverse=True)  # stable: among images of unknown size, the page's order
    out["images"] = [i.get("src").strip() for i in imgs]
    return out


def extract(html: str, base_url: str = "") -> ProductInfo:
    """The product's facts from ``html`` (see the module doc); image URLs made absolute against ``base_url``."""
    soup = BeautifulSoup(html, "html.parser")
    base = soup.find("base", href=True)
    if base is not None:
        base_url = urljoin(base_url, base["href"])
    info = ProductInfo()
    for source, read in zip(SOURCES, (from_json_ld, from_microdata, from_opengraph, from_html)):
        found = read(soup)
        for name in ("name", "description", "brand", "rating", "review_count", "images"):
            value = found.get(name)
            if value not in (None, "", []) and getattr(info, name) in (None, "", []):
                setattr(info, name, value)
                info.sources[name] = source
        if info.price is None and found.get("price") is not None:
            info.price, info.currency = found["price"], found.get("currency") or ""
            info.sources["price"] = source
    seen, images = set(), []
    for src in info.images:
        absolute = urljoin(base_url, src)
        if absolute.startswith(("http://", "https://")) and absolute not in seen:
            seen.add(absolute)
            images.append(absolute)
    info.images = images
    if info.price is not None and not info.currency:
        _, info.currency = price_in_text(soup.get_text(" ", strip=True))
    return info
