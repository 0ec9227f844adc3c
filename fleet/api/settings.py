"""The API's settings, read from the environment in this one place (beside the fleet's own, ``fleet.config``).

| variable | default | what it sets |
|---|---|---|
| ``ADREEL_API_KEYS`` | — | comma-separated API keys (at least 16 characters each) |
| ``ADREEL_API_KEYS_FILE`` | — | a file with one API key per line (``#`` comments), read with ``ADREEL_API_KEYS``; a line may add the key's own webhook: ``KEY webhook=https://…`` |
| ``ADREEL_API_MAX_QUEUED_PER_KEY`` | 100 | jobs of one API key that may wait for a worker at once (beside the fleet's cap, ``ADREEL_FLEET_MAX_QUEUED``) |
| ``ADREEL_API_MAX_STREAMS`` | 200 | event streams open at once (past it, 429: poll instead) |
| ``ADREEL_API_RATE_PER_MINUTE`` | 1200 | requests per minute of one API key, over all API processes (then 429) |
| ``ADREEL_API_WEBHOOK_ALLOW_PRIVATE`` | off | ``1``: webhooks may go to loopback and private addresses too |
| ``ADREEL_API_WEBHOOK_RETRY_SECONDS`` | 5 | backoff after a failed webhook delivery (doubles, ≤ 1 h; 8 tries) |

Keys are kept only as sha256 hashes; a key's owner id (what its jobs are
filed under in Redis) is the first 16 hex digits of that hash. The fleet's
own settings (``ADREEL_REDIS_URL`` with its password, the queue cap, the
namespace, and the signing secret ``ADREEL_FLEET_SECRET``) come from
``fleet.config.load_settings``; the API refuses to start without the secret,
since every job it submits is signed with it (``fleet.records.Records.admit``,
the same code path as ``python -m fleet submit``).
"""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from typing import Mapping, Optional

from nodes.engine.limits import Ceiling

from ..config import FleetError, Settings, load_settings

KEYS_ENV = "ADREEL_API_KEYS"
KEYS_FILE_ENV = "ADREEL_API_KEYS_FILE"
MAX_STREAMS = Ceiling("ADREEL_API_MAX_STREAMS", 200, integer=True)
RATE_PER_MINUTE = Ceiling("ADREEL_API_RATE_PER_MINUTE", 1200, integer=True)
MAX_QUEUED_PER_KEY = Ceiling("ADREEL_API_MAX_QUEUED_PER_KEY", 100, integer=True)
WEBHOOK_RETRY_SECONDS = Ceiling("ADREEL_API_WEBHOOK_RETRY_SECONDS", 5.0)
WEBHOOK_PRIVATE_ENV = "ADREEL_API_WEBHOOK_ALLOW_PRIVATE"
MIN_KEY_LENGTH = 16


def key_hash(key: str) -> str:
    return hashlib.sha256(("adreel-api-key:" + key).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiSettings:
    fleet: Settings
    key_hashes: tuple[str, ...]
    max_streams: int
    rate_per_minute: int = 1200
    #: owner id → the key's webhook secret (``webhooks.secret_for``: a hash of the key, as the receiver derives it)
    webhook_secrets: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    webhook_allow_private: bool = False
    webhook_retry_seconds: float = 5.0
    #: jobs of one key that may wait for a worker at once (``ADREEL_API_MAX_QUEUED_PER_KEY``)
    max_queued_per_key: int = 100
    #: owner id → the key's own webhook URL (``KEY webhook=URL`` in the keys file): every job of that key
    key_webhooks: Mapping[str, str] = field(default_factory=dict)

    def owner_of(self, token: str) -> Optional[str]:
        """The owner id of a presented bearer token, or None (compared in constant time, hash against hash)."""
        if not token:
            return None
        digest = key_hash(token)
        found = None
        for h in self.key_hashes:
            if hmac.compare_digest(h, digest):
                found = h
        return found[:16] if found else None


def load_api_settings(fleet: Optional[Settings] = None, environ: Optional[Mapping[str, str]] = None) -> ApiSettings:
    """The API's settings, beside ``fleet`` (the fleet's, as ``python -m fleet`` loaded them from its options
    and the environment: Redis URL and password, queue cap, signing secret; loaded here when not given)."""
    env = os.environ if environ is None else environ
    keys = [k.strip() for k in (env.get(KEYS_ENV) or "").split(",") if k.strip()]
    hooks: dict[str, str] = {}
    path = (env.get(KEYS_FILE_ENV) or "").strip()
    if path:
        from .webhooks import Refused, check_shape

        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise FleetError(f"{KEYS_FILE_ENV}: cannot read {path} ({exc.strerror or type(exc).__name__})") from None
        for n, line in enumerate(lines, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, *rest = line.split()
            keys.append(key)
            for word in rest:  # never quoted in an error: the line holds a key
                name, _, url = word.partition("=")
                if name != "webhook" or not url:
                    raise FleetError(f"{KEYS_FILE_ENV} line {n}: after the key, only 'webhook=https://…' may follow")
                try:
                    hooks[key_hash(key)[:16]] = check_shape(url)
                except Refused as exc:
                    raise FleetError(f"{KEYS_FILE_ENV} line {n}: {exc.message}") from None
    if not keys:
        raise FleetError(f"no API keys: set {KEYS_ENV} (comma-separated) or {KEYS_FILE_ENV} (one key per line)")
    short = sum(1 for k in keys if len(k) < MIN_KEY_LENGTH)
    if short:
        raise FleetError(f"{KEYS_ENV}: {short} key(s) shorter than {MIN_KEY_LENGTH} characters; use long random "
                         "keys, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    from .webhooks import secret_for

    fleet = fleet or load_settings(None, env)
    fleet.signing_key()  # the API submits signed jobs, as `submit` does: no secret, no API
    return ApiSettings(fleet=fleet, key_hashes=tuple(sorted({key_hash(k) for k in keys})),
                       max_streams=int(MAX_STREAMS.read(env)), rate_per_minute=int(RATE_PER_MINUTE.read(env)),
                       webhook_secrets={key_hash(k)[:16]: secret_for(k) for k in keys},
                       webhook_allow_private=(env.get(WEBHOOK_PRIVATE_ENV) or "").strip() == "1",
                       webhook_retry_seconds=float(WEBHOOK_RETRY_SECONDS.read(env)),
                       max_queued_per_key=int(MAX_QUEUED_PER_KEY.read(env)), key_webhooks=hooks)
