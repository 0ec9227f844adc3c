"""One https policy, one Retry-After parser, destination checks and capped reads.

* ``require_https(url, what, allow_loopback_http=…)`` — https only; plain http
  only to a loopback host when the caller allows it (a local gateway, a test
  server). A URL with user:password is refused.
* ``check_destination(url, …)`` — where a request may go at all: only public
  addresses, unless the host is one the operator configured or allowed.
  Loopback (127/8, ::1, ``localhost``) and private ranges (10/8, 172.16/12,
  192.168/16, fc00::/7, 100.64/10) need the caller's switch (e.g.
  ``ADREEL_LLM_ALLOW_PRIVATE=1``); link-local and cloud-metadata addresses
  (169.254.0.0/16, fe80::/10, fd00:ec2::254, 100.100.100.200) only the host
  itself being configured. Host names are resolved and every address is
  checked (IPv4-mapped IPv6 as its IPv4). The refusal names the field and the
  kind of address, never the host or what it resolved to.
* ``parse_retry_after(headers)`` — ``retry-after-ms``, ``Retry-After`` as
  seconds or an HTTP date.
* ``read_capped`` / ``aread_capped`` — read an ``httpx`` streamed response with
  a byte counter (``ResponseTooLarge`` past the cap, also when
  ``Content-Length`` announces more) and a wall-clock deadline
  (``ReadDeadline``), so a huge or slowly dripped body can neither exhaust
  memory nor hold a worker. Callers open their clients with
  ``follow_redirects=False``: a redirect is an answer to report, never to follow
  with a key.
"""
from __future__ import annotations

import email.utils
import ipaddress
import socket
import time
from typing import Callable, Iterable, Mapping, Optional
from urllib.parse import urlsplit


LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_METADATA = [ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128",
                                               "100.100.100.200/32", "0.0.0.0/8", "::/128")]
_PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                                              "fc00::/7", "198.18.0.0/15")]


class InsecureURL(ValueError):
    """A URL the https policy or the destination policy refuses (the message names why)."""


class ResponseTooLarge(Exception):
    def __init__(self, limit: int, what: str = "the answer"):
        self.limit = limit
        super().__init__(f"{what} is larger than {limit} bytes (the server's limit); not read further")


class ReadDeadline(Exception):
    def __init__(self, seconds: float, what: str = "the answer"):
        self.seconds = seconds
        super().__init__(f"{what} did not arrive within {seconds:g} s")


def _ip(host: str):
    try:
        return ipaddress.ip_address((host or "").strip("[]").split("%")[0])
    except ValueError:
        return None


def is_loopback_host(host: Optional[str]) -> bool:
    host = (host or "").lower().rstrip(".")
    if host in LOOPBACK_NAMES:
        return True
    ip = _ip(host)
    if ip is None:
        return False
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    return ip.is_loopback


def address_kind(ip) -> str:
    """'loopback' | 'metadata' (link-local / cloud metadata / unspecified) | 'private' | 'public'."""
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if any(ip in n for n in _METADATA if n.version == ip.version) or ip.is_link_local or ip.is_unspecified:
        return "metadata"
    if any(ip in n for n in _PRIVATE if n.version == ip.version) or ip.is_private or ip.is_reserved \
            or ip.is_multicast:
        return "private"
    return "public"


def require_https(url: str, what: str, *, allow_loopback_http: bool = False,
                  error: Callable[[str], Exception] = InsecureURL) -> str:
    """``url`` (without a trailing slash) when it is https — or http to loopback if allowed."""
    try:
        parts = urlsplit(str(url).strip())
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise error(f"{what} is not a valid URL") from None
    if not parts.hostname:
        raise error(f"{what} must be an https URL with a host")
    if parts.username or parts.password:
        raise error(f"{what} must not carry a user name or password in the URL; keys come from the environment")
    if parts.scheme == "https":
        return str(url).strip().rstrip("/")
    if parts.scheme == "http" and allow_loopback_http and is_loopback_host(parts.hostname):
        return str(url).strip().rstrip("/")
    rule = "an https URL (plain http only to 127.0.0.1 / localhost)" if allow_loopback_http else "an https URL"
    raise error(f"{what} must be {rule}")


def host_port(url: str) -> tuple[str, int]:
    p = urlsplit(url)
    return (p.hostname or "").lower().rstrip("."), p.port or (443 if p.scheme == "https" else 80)


def resolve(host: str, port: int) -> list:
    ip = _ip(host)
    if ip is not None:
        return [ip]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out = []
    for info in infos:
        addr = _ip(info[4][0])
        if addr is not None and addr not in out:
            out.append(addr)
    return out


def check_destination(url: str, what: str, *, allow_private: bool = False, trusted: Iterable[str] = (),
                      error: Callable[[str], Exception] = InsecureURL, resolver=resolve,
                      how_to_allow: str = "the operator configures this host") -> None:
    """Refuse ``url`` unless its host is public: when it is (or resolves to) a loopback or private address
    while ``allow_private`` is off, or a link-local / metadata address — unless ``host`` or ``host:port`` is
    in ``trusted`` (configured by the operator). A name that does not resolve is left to the request (it
    fails as unreachable). The message never repeats the host nor the addresses it resolved to."""
    host, port = host_port(url)
    trusted = {t.lower() for t in trusted}
    if host in trusted or f"{host}:{port}" in trusted:
        return
    lead = f"{what}: " if what else ""
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        addresses = [ipaddress.ip_address("127.0.0.1")]
    else:
        try:
            addresses = resolver(host, port)
        except (OSError, UnicodeError):
            return
    for ip in addresses:
        kind = address_kind(ip)
        if kind == "metadata":
            raise error(f"{lead}the host is a link-local / cloud-metadata address; AdReel sends no request "
                        f"there unless {how_to_allow}")
        if kind in ("loopback", "private") and not allow_private:
            raise error(f"{lead}the host is a {kind} network address; AdReel sends no request there unless "
                        f"{how_to_allow}")


def parse_retry_after(headers: Mapping[str, str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (delta-seconds or HTTP-date); None if absent."""
    def get(name):
        for k in (name, name.lower(), name.title()):
            v = headers.get(k)
            if v:
                return v
        return None

    ms = get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000.0
            if value == value and value != float("inf"):
                return max(0.0, value)
        except ValueError:
            pass
    ra = get("Retry-After")
    if not ra:
        return None
    return retry_after_value(ra, now)


def retry_after_value(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """One ``Retry-After`` value: delta-seconds or an HTTP date, as seconds from now (None if unreadable)."""
    if not value:
        return None
    value = str(value).strip()
    try:
        seconds = float(value)
        if seconds != seconds or seconds in (float("inf"), float("-inf")):
            return None
        return max(0.0, seconds)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# ----------------------------------------------------------------- capped reads (httpx)
def _announced(resp) -> Optional[int]:
    try:
        return int(resp.headers.get("content-length"))
    except (TypeError, ValueError):
        return None


def read_capped(resp, max_bytes: int, deadline: Optional[float] = None, what: str = "the answer") -> bytes:
    """The body of a streamed ``httpx.Response``, at most ``max_bytes``, before ``deadline`` (monotonic)."""
    size = _announced(resp)
    if size is not None and size > max_bytes:
        raise ResponseTooLarge(max_bytes, what)
    data = bytearray()
    for chunk in resp.iter_bytes():
        data += chunk
        if len(data) > max_bytes:
            raise ResponseTooLarge(max_bytes, what)
        if deadline is not None and time.monotonic() > deadline:
            raise ReadDeadline(max(0.0, deadline - time.monotonic()), what)
    return bytes(data)


async def aread_capped(resp, max_bytes: int, what: str = "the answer") -> bytes:
    """The body of a streamed ``httpx`` async response, at most ``max_bytes`` (wrap in ``wait_for`` for time)."""
    size = _announced(resp)
    if size is not None and size > max_bytes:
        raise ResponseTooLarge(max_bytes, what)
    data = bytearray()
    async for chunk in resp.aiter_bytes():
        data += chunk
        if len(data) > max_bytes:
            raise ResponseTooLarge(max_bytes, what)
    return bytes(data)
