"""Product pages the suite writes itself, served by a small shop on 127.0.0.1.

``Shop()`` serves (in a thread) the pages below and records every request it gets (path + headers), so a
test can check what reached it — and what did not (a refused redirect, a cookie never sent back).

Pages: ``/p/jsonld`` (schema.org Product in JSON-LD, in an ``@graph``), ``/p/microdata``, ``/p/og``
(OpenGraph only), ``/p/ko`` (Korean, EUC-KR, ￦ price — the full-width won sign EUC-KR has — charset only in ``<meta>``), ``/p/ko-won`` (the price
as ``12,900원`` in plain HTML, EUC-KR named in the header), ``/private/p`` (disallowed by robots.txt),
``/huge`` (far more bytes than any cap), ``/slow`` (a byte every 0.2 s), ``/redirect?to=URL``,
``/cookie`` (sets a cookie and redirects to ``/p/jsonld``). Images: ``/img/photo.png`` (the product photo,
``product_photo()``), ``/img/big.png`` (``BIG`` px on a side), ``/img/notimage.png`` (HTML).
"""
from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image, ImageDraw

BIG = 2400
SECRET_IN_PAGE = "PAGE-CONTENT-MUST-NOT-ECHO-7731"


def product_photo(size: int = 480) -> Image.Image:
    """A distinctive product photo: a red mug-like shape and a blue band on cream, with texture."""
    rng = np.random.default_rng(7)
    base = np.full((size, size, 3), (240, 228, 200), np.uint8)
    base = np.clip(base.astype(int) + rng.integers(-12, 12, base.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(base)
    d = ImageDraw.Draw(im)
    s = size
    d.rounded_rectangle((s * 0.22, s * 0.25, s * 0.68, s * 0.85), radius=int(s * 0.05), fill=(190, 30, 40))
    d.ellipse((s * 0.62, s * 0.38, s * 0.86, s * 0.66), outline=(190, 30, 40), width=int(s * 0.05))
    d.rectangle((s * 0.22, s * 0.45, s * 0.68, s * 0.55), fill=(30, 70, 180))
    d.ellipse((s * 0.30, s * 0.10, s * 0.60, s * 0.24), fill=(90, 60, 40))
    return im


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def jsonld_page(img: str = "/img/photo.png") -> str:
    data = {"@context": "https://schema.org", "@graph": [
        {"@type": "WebSite", "name": "Example Shop"},
        {"@type": "Product", "name": "Daybreak Espresso Mug", "description": "A warm red mug for slow mornings.",
         "brand": {"@type": "Brand", "name": "Acme"}, "image": [img, "/img/photo.png"],
         "aggregateRating": {"@type": "AggregateRating", "ratingValue": "4.7", "reviewCount": "128"},
         "offers": [{"@type": "Offer", "price": "19.99", "priceCurrency": "USD"}]}]}
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Shop — mugs</title>
<meta property="og:title" content="WRONG og title"><meta property="og:image" content="/img/notimage.png">
<script type="application/ld+json">{{ broken json </script>
<script type="application/ld+json">{json.dumps(data)}</script></head>
<body><h1>Wrong h1</h1><p>Only $5.00 today</p></body></html>"""


MICRODATA = """<!doctype html><html><head><meta charset="utf-8"><title>Kettle</title></head><body>
<div itemscope itemtype="https://schema.org/Product">
  <h1 itemprop="name">Northwind Kettle</h1>
  <img itemprop="image" src="/img/photo.png" alt="kettle">
  <div itemprop="brand" itemscope itemtype="https://schema.org/Brand"><span itemprop="name">Northwind</span></div>
  <p itemprop="description">Boils a litre in two minutes.</p>
  <div itemprop="aggregateRating" itemscope itemtype="https://schema.org/AggregateRating">
    <span itemprop="ratingValue">4.2</span> from <span itemprop="reviewCount">31</span> reviews</div>
  <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
    <meta itemprop="priceCurrency" content="EUR"><span itemprop="price" content="24.50">24,50 €</span></div>
</div></body></html>"""

OPENGRAPH = """<!doctype html><html><head><meta charset="utf-8"><title>Trail Shoe | Shop</title>
<meta property="og:type" content="product"><meta property="og:title" content="Summit Trail Shoe">
<meta property="og:description" content="Grip for wet rock.">
<meta property="og:image" content="/img/photo.png">
<meta property="product:brand" content="Summit">
<meta property="product:price:amount" content="89.00"><meta property="product:price:currency" content="GBP">
</head><body><p>Nothing structured here.</p></body></html>"""

KOREAN = """<!doctype html><html><head><meta http-equiv="Content-Type" content="text/html; charset=euc-kr">
<title>한빛 보온 머그 - 쇼핑</title>
<meta property="og:image" content="/img/photo.png"></head><body>
<div itemscope itemtype="http://schema.org/Product"><h1 itemprop="name">한빛 보온 머그</h1>
<span itemprop="brand">한빛</span><p itemprop="description">아침을 따뜻하게 지켜 주는 머그</p>
<div itemprop="offers" itemscope itemtype="http://schema.org/Offer"><span itemprop="price">￦12,900</span></div>
</div></body></html>"""

KOREAN_WON = """<!doctype html><html><head><title>바람 텀블러</title></head><body>
<h1>바람 텀블러</h1><img src="/img/photo.png" width="600" height="600"><img src="/img/icon.png" width="16" height="16">
<p>판매가 <b>12,900원</b> 무료배송</p></body></html>"""

NO_PRODUCT = f"""<!doctype html><html><head><meta charset="utf-8"></head><body><p>{SECRET_IN_PAGE}</p></body></html>"""


class Shop:
    def __init__(self, robots: str = "User-agent: *\nDisallow: /private/\n", robots_status: int = 200):
        self.requests: list[tuple[str, dict]] = []
        self.robots, self.robots_status = robots, robots_status
        self.photo = png_bytes(product_photo())
        shop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, status, body: bytes, ctype="text/html; charset=utf-8", headers=()):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                shop.requests.append((self.path, dict(self.headers)))
                path, query = urlsplit(self.path).path, parse_qs(urlsplit(self.path).query)
                pages = {"/p/jsonld": jsonld_page(), "/p/microdata": MICRODATA, "/p/og": OPENGRAPH,
                         "/private/p": jsonld_page(), "/p/none": NO_PRODUCT,
                         "/p/big-first": jsonld_page("/img/big.png")}
                if path == "/robots.txt":
                    self.send(shop.robots_status, shop.robots.encode(), "text/plain")
                elif path in pages:
                    self.send(200, pages[path].encode("utf-8"))
                elif path == "/p/ko":
                    self.send(200, KOREAN.encode("euc-kr"), "text/html")
                elif path == "/p/ko-won":
                    self.send(200, KOREAN_WON.encode("euc-kr"), "text/html; charset=EUC-KR")
                elif path == "/img/photo.png":
                    self.send(200, shop.photo, "image/png")
                elif path == "/img/big.png":
                    self.send(200, png_bytes(Image.new("RGB", (BIG, BIG), (9, 9, 9))), "image/png")
                elif path == "/img/notimage.png":
                    self.send(200, b"<html>not an image</html>", "image/png")
                elif path == "/redirect":
                    self.send(302, b"", headers=[("Location", query["to"][0])])
                elif path == "/cookie":
                    self.send(302, b"", headers=[("Location", "/p/jsonld"), ("Set-Cookie", "session=s3cr3t; Path=/")])
                elif path == "/huge":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b"<p>" + b"x" * 65536 + b"</p>"
                    try:
                        for _ in range(400):  # ~26 MB, if anyone read it all
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.write(b"0\r\n\r\n")
                    except OSError:
                        pass
                elif path == "/slow":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    try:
                        for _ in range(100000):
                            self.wfile.write(b"<")
                            self.wfile.flush()
                            time.sleep(0.2)
                    except OSError:
                        pass
                else:
                    self.send(404, b"not found", "text/plain")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
