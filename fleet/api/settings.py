"""The API's settings, read from the environment in this one place (beside the fleet's own, ``fleet.config``).

| variable | default | what it sets |
|---|---|---|
| ``ADREEL_API_KEYS`` | — | comma-separated API keys (at least 16 characters each) |
| ``ADREEL_API_KEYS_FILE`` | — | a file with one API key per line (``#`` comments), read with ``ADREEL_API_KEYS`` |
| ``ADREEL_API_MAX_STREAMS`` | 200 | event streams open at once (past it, 429: poll instead) |
| ``ADREEL_API_RATE_PER_MINUTE`` | 1200 | requests per minute of one API key, over all API processes (then 429) |
| ``ADREEL_API_WEBHOOK_ALLOW_PRIVATE`` | off | ``1``: webhooks may go to loopback and private addresses too |
| ``ADREEL_API_WEBHOOK_RETRY_SECONDS`` | 5 | backoff after a failed webhook delivery (doubles, ≤ 1 h; 8 tries) |

Keys are kept only as sha256 hashes; a key's owner id (what its jobs are
filed under in Redis) is the first 16 hex digits of that hash. The fleet's
own settings (``ADREEL_REDIS_URL`` with its password, the queue cap, the
namespace, and any secret the fleet asks for) come from ``fleet.config.load_settings``.
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
    and the environment: Redis URL and password, queue cap, any secret; loaded here when not given)."""
    env = os.environ if environ is None else environ
    keys = [k.strip() for k in (env.get(KEYS_ENV) or "").split(",") if k.strip()]
    path = (env.get(KEYS_FILE_ENV) or "").strip()
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                keys += [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
        except OSError as exc:
            raise FleetError(f"{KEYS_FILE_ENV}: cannot read {path} ({exc.strerror or type(exc).__name__})") from None
    if not keys:
        raise FleetError(f"no API keys: set {KEYS_ENV} (comma-separated) or {KEYS_FILE_ENV} (one key per line)")
    short = sum(1 for k in keys if len(k) < MIN_KEY_LENGTH)
    if short:
        raise FleetError(f"{KEYS_ENV}: {short} key(s) shorter than {MIN_KEY_LENGTH} characters; use long random "
                         "keys, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    from .webhooks import secret_for

    return ApiSettings(fleet=fleet or load_settings(None, env), key_hashes=tuple(sorted({key_hash(k) for k in keys})),
                       max_streams=int(MAX_STREAMS.read(env)), rate_per_minute=int(RATE_PER_MINUTE.read(env)),
                       webhook_secrets={key_hash(k)[:16]: secret_for(k) for k in keys},
                       webhook_allow_private=(env.get(WEBHOOK_PRIVATE_ENV) or "").strip() == "1",
                       webhook_retry_seconds=float(WEBHOOK_RETRY_SECONDS.read(env)))
