"""Reading a public web page (a product page, its photo) without becoming anyone's proxy.

``fetch_public(url, what=…)`` is the one way AdReel reads a page a user named:

* https only; plain http only to a host the operator lists. No user:password in the URL.
* The destination: a host that is, or resolves to, a loopback, private, link-local or
  cloud-metadata address is refused unless the operator lists it in
  ``ADREEL_FETCH_ALLOWED_HOSTS`` (comma separated ``host`` or ``host:port``). The connection
  goes to the address that was checked (the host name is kept for the Host header and TLS),
  so a name cannot resolve to a public address for the check and a private one for the request.
* Redirects are followed by hand, at most ``MAX_REDIRECTS``, and every hop is checked again.
* No cookies are kept or sent, no proxy or ``.netrc`` from the environment is used.
* The site's robots.txt is honoured (``urllib.robotparser``, user agent ``AdReel``): a 4xx
  robots.txt allows everything, one that cannot be read (5xx, timeout) allows nothing.
* The body is capped in bytes (``ADREEL_MAX_PAGE_BYTES``) and the whole fetch — robots.txt,
  every redirect and the body — in time (``ADREEL_PAGE_FETCH_SECONDS``).
* Every failure is a ``FetchError`` whose message names the field and the reason, never the URL the
  workflow gave (a visitor's text is not repeated, masked or not);
  it never quotes what the server sent.
"""
from __future__ import annotations

import http.cookiejar
import os
import time
from dataclasses import dataclass, field, replace
from typing import Mapping, Optional
from urllib import robotparser
from urllib.parse import urljoin, urlsplit

import httpx

from .. import limits
from .http import ReadDeadline, ResponseTooLarge, address_kind, host_port, read_capped, resolve
from .redaction import redact_url

ALLOWED_HOSTS_ENV = "ADREEL_FETCH_ALLOWED_HOSTS"
USER_AGENT = "AdReel/1.0 (product page reader; honours robots.txt)"
ROBOTS_AGENT = "AdReel"
MAX_REDIRECTS = 5
MAX_ROBOTS_BYTES = 512 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)


class FetchError(Exception):
    """A page or image that could not, or may not, be fetched (the message says which and why)."""


@dataclass
class Fetched:
    url: str                     # the final URL, after redirects
    status: int
    content_type: str            # the media type, lower case, without parameters
    charset: Optional[str]       # the charset parameter of Content-Type, if any
    body: bytes
    redirects: list = field(default_factory=list)


def allowed_hosts(environ: Optional[Mapping[str, str]] = None) -> set[str]:
    env = os.environ if environ is None else environ
    raw = env.get(ALLOWED_HOSTS_ENV) or ""
    return {h.strip().lower().rstrip(".") for h in raw.split(",") if h.strip()}


def _listed(host: str, port: int, allowed: set[str]) -> bool:
    return host in allowed or f"{host}:{port}" in allowed


def check_target(url: str, what: str, allowed: set[str], resolver=resolve) -> tuple[str, int, str]:
    """(host, port, the address to connect to) for ``url``, or ``FetchError`` naming why not."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise FetchError(f"{what}: is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"{what}: is not a web address; give an https:// URL")
    if parts.username or parts.password:
        raise FetchError(f"{what}: the URL must not carry a user name or password")
    host, port = host_port(url)
    listed = _listed(host, port, allowed)
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError):
        raise FetchError(f"{what}: the host {host} could not be resolved") from None
    if not addresses:
        raise FetchError(f"{what}: the host {host} could not be resolved")
    if not listed:
        for ip in addresses:
            kind = address_kind(ip)
            if kind != "public":
                name = {"loopback": "a loopback", "metadata": "a link-local / cloud-metadata",
                        "private": "a private network"}[kind]
                raise FetchError(f"{what}: {host} is {name} address ({ip}); AdReel reads only public pages "
                                 f"unless the operator lists the host in {ALLOWED_HOSTS_ENV}")
    if parts.scheme != "https" and not listed:
        raise FetchError(f"{what}: the URL is plain http; only https pages are read (the operator can list a "
                         f"host in {ALLOWED_HOSTS_ENV})")
    return host, port, str(addresses[0])


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie, request):
        return False

    def return_ok(self, cookie, request):
        return False


def _client(seconds: float) -> httpx.Client:
    per_op = max(0.5, min(seconds, 15.0))
    return httpx.Client(timeout=httpx.Timeout(per_op), follow_redirects=False, trust_env=False,
                        cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
                        headers={"User-Agent": USER_AGENT})


@dataclass(frozen=True)
class _Reading:
    """One fetch's terms: what it is called in errors, the hosts allowed, its deadline, the resolver."""
    what: str
    allowed: set[str]
    deadline: float
    resolver: object


def _get(client: httpx.Client, url: str, reading: _Reading, max_bytes: int, accept: str, before=None) -> Fetched:
    """GET ``url``, each redirect checked again (and passed to ``before`` first, if given); any status
    comes back (the caller judges it)."""
    what, allowed, deadline, resolver = reading.what, reading.allowed, reading.deadline, reading.resolver
    current, hops = url, []
    for _ in range(MAX_REDIRECTS + 1):
        host, port, address = check_target(current, what, allowed, resolver)
        if before is not None:
            before(current)
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError(f"{what}: the page did not arrive within the time allowed "
                             f"({limits.PAGE_FETCH_SECONDS.env})")
        target = httpx.URL(current)
        pinned = target.copy_with(host=address)
        headers = {"Host": target.netloc.decode("ascii"), "Accept": accept}
        extensions = {"timeout": {"connect": min(left, 15.0), "read": min(left, 15.0), "write": min(left, 15.0),
                                  "pool": min(left, 15.0)}}
        if target.scheme == "https":
            extensions["sni_hostname"] = host
        try:
            request = client.build_request("GET", pinned, headers=headers, extensions=extensions)
            resp = client.send(request, stream=True)
            try:
                if resp.status_code in _REDIRECTS:
                    loc = resp.headers.get("location")
                    if not loc:
                        raise FetchError(f"{what}: the page redirected without saying where")
                    hops.append(redact_url(current))
                    current = urljoin(current, loc.strip())
                    continue
                body = read_capped(resp, max_bytes, deadline, what) if resp.status_code == 200 else b""
                ctype = resp.headers.get("content-type", "")
            finally:
                resp.close()
        except ResponseTooLarge:
            raise FetchError(f"{what}: the page is larger than {max_bytes} bytes "
                             f"({limits.MAX_PAGE_BYTES.env}); not read further") from None
        except ReadDeadline:
            raise FetchError(f"{what}: the page did not arrive within the time allowed "
                             f"({limits.PAGE_FETCH_SECONDS.env})") from None
        except httpx.TimeoutException:
            raise FetchError(f"{what}: the page did not answer in time") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"{what}: the page could not be reached ({type(exc).__name__})") from None
        media, _, params = ctype.partition(";")
        charset = None
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k.lower() == "charset" and v.strip():
                charset = v.strip().strip('"\'').lower()
        return Fetched(url=current, status=resp.status_code, content_type=media.strip().lower(), charset=charset,
                       body=body, redirects=hops)
    raise FetchError(f"{what}: the page redirected more than {MAX_REDIRECTS} times")


def _robots_rules(client, url: str, reading: _Reading):
    """The site's robots rules (None: no robots.txt, everything allowed), or ``FetchError``."""
    what = reading.what
    parts = urlsplit(url)
    robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
    try:
        got = _get(client, robots_url, replace(reading, what=f"{what} (robots.txt)"), MAX_ROBOTS_BYTES, "text/plain")
    except FetchError as exc:
        raise FetchError(f"{exc}; AdReel does not read a site whose robots.txt it cannot read") from None
    if 400 <= got.status < 500:
        return None  # no robots.txt: everything is allowed (RFC 9309)
    if got.status != 200:
        raise FetchError(f"{what}: the site's robots.txt answered HTTP {got.status}; AdReel does not read a site "
                         "whose robots.txt it cannot read")
    rules = robotparser.RobotFileParser()
    rules.parse(got.body.decode("utf-8", "replace").splitlines())
    return rules


def fetch_public(url: str, what: str = "the page", *, accept: str = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
                 max_bytes: Optional[int] = None, seconds: Optional[float] = None,
                 environ: Optional[Mapping[str, str]] = None, resolver=resolve) -> Fetched:
    """The body of ``url`` (HTTP 200 only), within the policy above; ``FetchError`` otherwise."""
    url = str(url or "").strip()
    if not url:
        raise FetchError(f"{what}: no URL given")
    allowed = allowed_hosts(environ)
    cap = min(int(max_bytes or limits.MAX_PAGE_BYTES.read(environ)), limits.MAX_PAGE_BYTES.read(environ))
    total = min(float(seconds or limits.PAGE_FETCH_SECONDS.read(environ)), limits.PAGE_FETCH_SECONDS.read(environ))
    reading = _Reading(what, allowed, time.monotonic() + total, resolver)
    check_target(url, what, allowed, resolver)  # refused before anything is sent, robots.txt included
    with _client(total) as client:
        sites: dict = {}

        def robots(hop: str) -> None:  # every hop, on whatever site it lands, obeys that site's robots.txt
            site = urlsplit(hop)[:2]
            if site not in sites:
                sites[site] = _robots_rules(client, hop, reading)
            if sites[site] is not None and not sites[site].can_fetch(ROBOTS_AGENT, hop):
                raise FetchError(f"{what}: the site's robots.txt does not allow robots to read the page")
        got = _get(client, url, reading, cap, accept, before=robots)
    if got.status != 200:
        raise FetchError(f"{what}: the page answered HTTP {got.status}")
    return got
