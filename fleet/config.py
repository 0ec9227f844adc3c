"""The fleet's settings: from the command line or the environment, never from a job.

| variable | default | what it sets |
|---|---|---|
| ``ADREEL_REDIS_URL`` | ``redis://127.0.0.1:6379/0`` | Redis: the Dramatiq broker and the job records (``--redis`` wins) |
| ``ADREEL_FLEET_MAX_QUEUED`` | 100 | jobs that may wait in the queue; ``submit`` refuses a batch that would pass it |
| ``ADREEL_FLEET_HEARTBEAT_SECONDS`` | 15 | a worker silent this long is dead: its job goes back to the queue |
| ``ADREEL_FLEET_RETRY_SECONDS`` | 5 | backoff before the 2nd attempt after a transient failure (doubles, at most 60 s) |
| ``ADREEL_FLEET_JOB_SECONDS`` | 3600 | wall time one attempt of one job may take on its ComfyUI |
| ``ADREEL_FLEET_NAMESPACE`` | ``adreel-fleet`` | prefix of every Redis key the fleet uses (one fleet per namespace) |
| ``ADREEL_FLEET_SECRET`` | (none) | the fleet's signing secret, ≥ 32 characters: ``submit`` signs each job's spec with it (HMAC-SHA256), a worker runs only specs it verifies |
| ``ADREEL_FLEET_COMFY_URLS`` | (none) | the fleet's other ComfyUI servers (comma-separated): a worker taking over a dead worker's job stops the orphaned prompt only on a server listed here (or its own) |

Redis must ask for a password (``redis-server --requirepass``, the password in
the URL: ``redis://:PASSWORD@host:6379/0``). A Redis that answers without one
is refused, unless it is on loopback and the command says ``--insecure``.

The numbers are read through the engine's ``limits.Ceiling``: a value that is
not a finite, positive number is refused (logged) and the default is used.
"""
from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Mapping, Optional

from nodes.engine.limits import Ceiling

REDIS_URL_ENV = "ADREEL_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
NAMESPACE_ENV = "ADREEL_FLEET_NAMESPACE"
DEFAULT_NAMESPACE = "adreel-fleet"
SECRET_ENV = "ADREEL_FLEET_SECRET"
MIN_SECRET_CHARS = 32
COMFY_URLS_ENV = "ADREEL_FLEET_COMFY_URLS"

MAX_QUEUED = Ceiling("ADREEL_FLEET_MAX_QUEUED", 100, integer=True)
HEARTBEAT_SECONDS = Ceiling("ADREEL_FLEET_HEARTBEAT_SECONDS", 15.0)
RETRY_SECONDS = Ceiling("ADREEL_FLEET_RETRY_SECONDS", 5.0)
JOB_SECONDS = Ceiling("ADREEL_FLEET_JOB_SECONDS", 3600.0)

#: attempts of one job: the first plus at most two retries after transient failures
MAX_ATTEMPTS = 3
MAX_BACKOFF_SECONDS = 60.0
QUEUE_NAME = "adreel"

STATES = ("queued", "running", "completed", "failed", "cancelled")
TERMINAL = ("completed", "failed", "cancelled")
FLEET_REQUIREMENTS = "requirements-fleet.txt"

_NAMESPACE_OK = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class FleetError(Exception):
    """A clear, user-facing error of the fleet's command line (exit status 2)."""


def require_extra(module: str):
    """Import one of the fleet's own packages (``requirements-fleet.txt``: Dramatiq and redis, which ComfyUI
    itself never needs); a FleetError naming the file when it is missing."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise FleetError(f"the fleet needs its own packages, which are not installed here (no {module!r}): run "
                         f"`python -m pip install -r {FLEET_REQUIREMENTS}` with this Python") from None


@dataclass(frozen=True)
class Settings:
    redis_url: str
    namespace: str
    max_queued: int
    heartbeat_seconds: float
    retry_seconds: float
    job_seconds: float
    #: ``--insecure``: a Redis without a password is accepted on loopback
    insecure: bool = False
    secret: str = field(default="", repr=False)
    #: the fleet's ComfyUI servers a worker may contact besides its own (``ADREEL_FLEET_COMFY_URLS``)
    comfy_urls: tuple = ()

    def signing_key(self) -> bytes:
        """The fleet secret (``ADREEL_FLEET_SECRET``) as bytes; a FleetError when it is missing or short."""
        if not self.secret:
            raise FleetError(f"{SECRET_ENV} is not set: the fleet signs every job with it and its workers run only "
                             f"jobs signed with it. Give submit, the workers and the API the same secret of at least "
                             f"{MIN_SECRET_CHARS} characters, e.g. from `python -c \"import secrets; "
                             f"print(secrets.token_hex(32))\"`")
        if len(self.secret) < MIN_SECRET_CHARS:
            raise FleetError(f"{SECRET_ENV} is {len(self.secret)} characters long; use at least {MIN_SECRET_CHARS} "
                             "(e.g. 64 hex digits from secrets.token_hex(32))")
        return self.secret.encode("utf-8")

    @property
    def redis_display(self) -> str:
        return mask_url(self.redis_url)

    def backoff(self, attempts: int) -> float:
        """Seconds to wait before the attempt after ``attempts`` failed ones."""
        return min(MAX_BACKOFF_SECONDS, self.retry_seconds * (2 ** max(0, attempts - 1)))


def load_settings(redis_url: Optional[str] = None, environ: Optional[Mapping[str, str]] = None,
                  insecure: bool = False) -> Settings:
    env = os.environ if environ is None else environ
    url = (redis_url or env.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL).strip()
    if not re.match(r"^(redis|rediss|unix)://", url):
        raise FleetError(f"--redis / {REDIS_URL_ENV}: {mask_url(url)!r} is not a redis:// URL "
                         f"(e.g. {DEFAULT_REDIS_URL})")
    namespace = (env.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE).strip()
    if not _NAMESPACE_OK.match(namespace):
        raise FleetError(f"{NAMESPACE_ENV}: use 1–64 letters, digits, '.', '-' or '_' (got {namespace!r})")
    comfy_urls = tuple(normalize_comfy_url(u) for u in (env.get(COMFY_URLS_ENV) or "").split(",") if u.strip())
    settings = Settings(redis_url=url, namespace=namespace, max_queued=int(MAX_QUEUED.read(env)),
                        heartbeat_seconds=float(HEARTBEAT_SECONDS.read(env)), retry_seconds=float(RETRY_SECONDS.read(env)),
                        job_seconds=float(JOB_SECONDS.read(env)), insecure=bool(insecure),
                        secret=(env.get(SECRET_ENV) or "").strip(), comfy_urls=comfy_urls)
    check_redis_url(settings)
    return settings


def normalize_comfy_url(url: str) -> str:
    url = (url or "").strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+(/[^\s]*)?$", url):
        raise FleetError(f"{COMFY_URLS_ENV} / --comfy: {url!r} is not a ComfyUI server's URL (e.g. http://127.0.0.1:8188)")
    return url


def redis_has_password(url: str) -> bool:
    """Whether the URL carries a password (``redis://:pw@host`` / ``redis://user:pw@host`` / ``?password=``)."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    return bool(parts.password) or bool(parse_qs(parts.query).get("password"))


def redis_is_loopback(url: str) -> bool:
    """A unix socket, or a host whose every address is a loopback address."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "unix":
        return True
    host = parts.hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False
    try:
        return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)
    except ValueError:
        return False


def insecure_redis_error(settings: Settings, why: str) -> FleetError:
    hint = ("start redis-server with --requirepass and put the password in the URL "
            "(redis://:PASSWORD@host:6379/0)")
    if redis_is_loopback(settings.redis_url):
        hint += "; for a local test on loopback only, --insecure allows it"
    else:
        hint += "; --insecure is accepted only for a Redis on loopback"
    return FleetError(f"Redis at {settings.redis_display} {why}: anyone who reaches it could make the fleet's "
                      f"workers run what they write there. {hint[0].upper() + hint[1:]}")


def check_redis_url(settings: Settings) -> None:
    """A URL without a password is refused, unless it is on loopback and ``--insecure`` was given (the server
    itself is probed when a command connects: ``records.Records.ping``)."""
    if redis_has_password(settings.redis_url):
        return
    if settings.insecure and redis_is_loopback(settings.redis_url):
        return
    raise insecure_redis_error(settings, "has no password in its URL")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(?<=://)([^/@:]*):([^/@]*)@", lambda m: f"{m.group(1)}:***@", str(url or ""))
