"""ProductPage's engine: product pages the suite writes, served on 127.0.0.1, read field by field; hostile
URLs refused by the one fetch policy (nodes/engine/cloud/page_fetch.py) before anything reaches them."""
from __future__ import annotations

import ipaddress
import time
from decimal import Decimal

import numpy as np
import pytest

from nodes.engine.cloud.page_fetch import FetchError, fetch_public
from nodes.engine.models import AdReelInputError
from nodes.engine.productpage.extract import decode_html, extract, format_price, parse_amount, price_in_text
from nodes.engine.productpage.page import fill_cta, read_product_page
from shop_pages import BIG, SECRET_IN_PAGE, Shop, product_photo


@pytest.fixture
def shop(monkeypatch):
    with Shop() as s:
        monkeypatch.setenv("ADREEL_FETCH_ALLOWED_HOSTS", s.host)
        yield s


def photo_matches(image) -> bool:
    want = np.asarray(product_photo().convert("RGB")).astype(int)
    got = np.asarray(image.convert("RGB")).astype(int)
    return got.shape == want.shape and np.abs(got - want).mean() < 1.0


# ------------------------------------------------------------------ reading the pages
def test_json_ld_product_wins_over_every_other_source(shop):
    page = read_product_page(shop.url("/p/jsonld"))
    info = page.info
    assert (info.name, info.brand, info.description) == ("Daybreak Espresso Mug", "Acme",
                                                         "A warm red mug for slow mornings.")
    assert (info.price, info.currency, info.price_text) == (Decimal("19.99"), "USD", "$19.99")
    assert (info.rating, info.review_count) == (4.7, 128)
    assert info.images[0] == shop.url("/img/photo.png")  # made absolute; the OpenGraph "image" is not first
    assert set(info.sources.values()) == {"json-ld"}
    assert photo_matches(page.image) and page.image_url == shop.url("/img/photo.png")


def test_microdata_product(shop):
    page = read_product_page(shop.url("/p/microdata"))
    info = page.info
    assert (info.name, info.brand, info.description) == ("Northwind Kettle", "Northwind",
                                                         "Boils a litre in two minutes.")
    assert (info.price_text, info.currency, info.rating, info.review_count) == ("€24.50", "EUR", 4.2, 31)
    assert info.sources["name"] == "microdata" and photo_matches(page.image)


def test_opengraph_only(shop):
    page = read_product_page(shop.url("/p/og"))
    info = page.info
    assert (info.name, info.brand, info.description, info.price_text) == (
        "Summit Trail Shoe", "Summit", "Grip for wet rock.", "£89")
    assert info.sources["price"] == "opengraph" and photo_matches(page.image)


def test_korean_euc_kr_page_with_won_sign(shop):
    """EUC-KR declared only in the page's <meta>, the price as ￦12,900 (EUC-KR's won sign) in microdata."""
    page = read_product_page(shop.url("/p/ko"))
    info = page.info
    assert (info.name, info.brand, info.description) == ("한빛 보온 머그", "한빛", "아침을 따뜻하게 지켜 주는 머그")
    assert (info.price, info.currency, info.price_text) == (Decimal("12900"), "KRW", "₩12,900")
    assert photo_matches(page.image)


def test_korean_plain_html_with_won_suffix(shop):
    """EUC-KR named by the server's header, no structured data: <h1>, 12,900원 in the text, the largest <img>."""
    page = read_product_page(shop.url("/p/ko-won"))
    info = page.info
    assert (info.name, info.price_text, info.currency) == ("바람 텀블러", "₩12,900", "KRW")
    assert set(info.sources.values()) == {"html"}
    assert info.images[0] == shop.url("/img/photo.png") and photo_matches(page.image)


@pytest.mark.parametrize("text,amount,currency", [
    ("₩12,900", "12900", "KRW"), ("판매가 12,900원", "12900", "KRW"), ("now $1,299.99!", "1299.99", "USD"),
    ("24,50 €", None, ""), ("€24,50", "24.50", "EUR"), ("no price here 2024", None, ""),
])
def test_prices_in_running_text(text, amount, currency):
    got, cur = price_in_text(text)
    assert (str(got) if got is not None else None, cur) == (amount, currency)


@pytest.mark.parametrize("raw,value", [("12,900", "12900"), ("19.99", "19.99"), ("1.299,00", "1299.00"),
                                       ("24,50", "24.50"), ("₩ 1,000,000", "1000000"), ("free", None)])
def test_amounts(raw, value):
    got = parse_amount(raw)
    assert (str(got) if got is not None else None) == value


def test_formatting_and_decoding():
    assert format_price(Decimal("12900"), "KRW") == "₩12,900" and format_price(Decimal("5"), "CHF") == "5 CHF"
    body = "<html><head><meta charset='euc-kr'></head><body>가격</body></html>".encode("euc-kr")
    assert "가격" in decode_html(body) and "가격" in decode_html(body, "ks_c_5601-1987")
    assert "가격" in decode_html("<p>가격</p>".encode("cp949"))  # nothing declared, not UTF-8: CP949
    assert extract("<html><body><p>nothing</p></body></html>").name == ""


def test_a_too_large_photo_is_skipped_for_the_next_within_the_pixel_ceiling(shop, monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_INPUT_PIXELS", str(BIG * BIG - 1))
    page = read_product_page(shop.url("/p/big-first"))
    assert photo_matches(page.image)
    assert any("ADREEL_MAX_INPUT_PIXELS" in n for n in page.notes), page.notes


def test_a_page_without_a_product_names_the_problem_without_echoing_the_page(shop):
    with pytest.raises(AdReelInputError) as exc:
        read_product_page(shop.url("/p/none"))
    assert exc.value.field == "url" and "names no product" in str(exc.value)
    assert SECRET_IN_PAGE not in str(exc.value)


@pytest.mark.parametrize("template,price,want", [
    ("Order now — {price}", "$19.99", "Order now — $19.99"),
    ("Order now — {price}", "", "Order now"),
    ("{product} for {price} at {brand}", "₩12,900", "Mug for ₩12,900 at Acme"),
    ("지금 주문하세요 {price}", "", "지금 주문하세요"),
    ("Shop {brand}", "", "Shop Acme"),
])
def test_the_cta_template(template, price, want):
    assert fill_cta(template, "Mug", price, "Acme") == want


# ------------------------------------------------------------------ hostile URLs
@pytest.mark.parametrize("url,why", [
    ("file:///etc/passwd", "not a web address"),
    ("ftp://example.com/x", "not a web address"),
    ("https://user:pw@example.com/p", "user name or password"),
    ("https://127.0.0.1/p", "loopback"),
    ("https://localhost/p", "loopback"),
    ("https://[::1]/p", "loopback"),
    ("https://10.1.2.3/p", "private network"),
    ("https://192.168.0.1/p", "private network"),
    ("https://169.254.169.254/latest/meta-data/", "link-local / cloud-metadata"),
    ("https://[fe80::1]/p", "link-local / cloud-metadata"),
    ("http://93.184.216.34/p", "plain http"),
    ("not a url", "not a web address"),
])
def test_hostile_urls_are_refused_before_any_request(url, why, monkeypatch):
    monkeypatch.delenv("ADREEL_FETCH_ALLOWED_HOSTS", raising=False)
    t0 = time.monotonic()
    with pytest.raises(FetchError) as exc:
        fetch_public(url)
    assert why in str(exc.value)
    assert time.monotonic() - t0 < 5
    assert "pw@" not in str(exc.value)


def test_the_local_shop_itself_is_refused_unless_the_operator_lists_it(monkeypatch):
    monkeypatch.delenv("ADREEL_FETCH_ALLOWED_HOSTS", raising=False)
    with Shop() as shop:
        for url in (shop.url("/p/jsonld"), shop.url("/p/jsonld").replace("http:", "https:")):
            with pytest.raises(FetchError):
                fetch_public(url)
        assert shop.requests == []  # nothing reached it, not even robots.txt


def test_a_name_resolving_to_a_private_address_is_refused():
    with pytest.raises(FetchError, match="private network address"):
        fetch_public("https://shop.example.com/p", resolver=lambda h, p: [ipaddress.ip_address("10.9.8.7")])


@pytest.mark.parametrize("target,why", [
    ("http://10.0.0.5/admin", "private network"),
    ("http://169.254.169.254/latest/meta-data/", "link-local / cloud-metadata"),
    ("file:///etc/passwd", "not a web address"),
])
def test_a_redirect_to_a_private_address_is_refused(shop, target, why):
    with pytest.raises(FetchError) as exc:
        fetch_public(shop.url("/redirect?to=" + target))
    assert why in str(exc.value)


def test_a_redirect_to_an_unlisted_port_on_loopback_never_reaches_it(shop):
    with Shop() as other:  # not in ADREEL_FETCH_ALLOWED_HOSTS (the fixture lists only `shop`)
        with pytest.raises(FetchError, match="loopback"):
            fetch_public(shop.url("/redirect?to=" + other.url("/p/jsonld")))
        assert other.requests == []


def test_no_cookies_are_kept_or_sent(shop):
    got = fetch_public(shop.url("/cookie"))
    assert got.url == shop.url("/p/jsonld") and got.redirects
    assert all("Cookie" not in h and "cookie" not in h for _, h in shop.requests), shop.requests


def test_a_huge_page_is_cut_at_the_cap(shop, monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_PAGE_BYTES", str(1024 * 1024))
    with pytest.raises(FetchError, match="larger than 1048576 bytes"):
        fetch_public(shop.url("/huge"))


def test_a_slow_page_is_cut_at_the_time_cap(shop, monkeypatch):
    monkeypatch.setenv("ADREEL_PAGE_FETCH_SECONDS", "2")
    t0 = time.monotonic()
    with pytest.raises(FetchError, match="did not arrive within|did not answer in time"):
        fetch_public(shop.url("/slow"))
    assert time.monotonic() - t0 < 10


def test_robots_txt_is_honoured(shop):
    with pytest.raises(FetchError, match="robots.txt does not allow"):
        fetch_public(shop.url("/private/p"))
    assert "/private/p" not in shop.paths()
    assert fetch_public(shop.url("/p/jsonld")).status == 200  # the rest of the site is open
    # a redirect into the disallowed part is refused too
    with pytest.raises(FetchError, match="robots.txt does not allow"):
        fetch_public(shop.url("/redirect?to=/private/p"))
    assert "/private/p" not in shop.paths()


@pytest.mark.parametrize("robots,status,allowed", [
    ("User-agent: AdReel\nDisallow: /\n", 200, False),
    ("", 404, True),
    ("", 503, False),
])
def test_robots_rules_by_answer(monkeypatch, robots, status, allowed):
    with Shop(robots=robots, robots_status=status) as shop:
        monkeypatch.setenv("ADREEL_FETCH_ALLOWED_HOSTS", shop.host)
        if allowed:
            assert fetch_public(shop.url("/p/og")).status == 200
        else:
            with pytest.raises(FetchError, match="robots.txt"):
                fetch_public(shop.url("/p/og"))
            assert "/p/og" not in shop.paths()


def test_a_fetch_error_surfaces_as_an_input_error_naming_the_field(shop):
    with pytest.raises(AdReelInputError) as exc:
        read_product_page(shop.url("/missing"), "url")
    assert exc.value.field == "url" and "HTTP 404" in str(exc.value)
