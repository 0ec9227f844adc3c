"""The fleet's settings: from the command line or the environment, never from a job.

| variable | default | what it sets |
|---|---|---|
| ``ADREEL_REDIS_URL`` | ``redis://127.0.0.1:6379/0`` | Redis: the Dramatiq broker and the job records (``--redis`` wins) |
| ``ADREEL_FLEET_MAX_QUEUED`` | 100 | jobs that may wait in the queue; ``submit`` refuses a batch that would pass it |
| ``ADREEL_FLEET_HEARTBEAT_SECONDS`` | 15 | a worker silent this long is dead: its job goes back to the queue |
| ``ADREEL_FLEET_RETRY_SECONDS`` | 5 | backoff before the 2nd attempt after a transient failure (doubles, at most 60 s) |
| ``ADREEL_FLEET_JOB_SECONDS`` | 3600 | wall time one attempt of one job may take on its ComfyUI |
| ``ADREEL_FLEET_NAMESPACE`` | ``adreel-fleet`` | prefix of every Redis key the fleet uses (one fleet per namespace) |

The numbers are read through the engine's ``limits.Ceiling``: a value that is
not a finite, positive number is refused (logged) and the default is used.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional

from nodes.engine.limits import Ceiling

REDIS_URL_ENV = "ADREEL_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
NAMESPACE_ENV = "ADREEL_FLEET_NAMESPACE"
DEFAULT_NAMESPACE = "adreel-fleet"

MAX_QUEUED = Ceiling("ADREEL_FLEET_MAX_QUEUED", 100, integer=True)
HEARTBEAT_SECONDS = Ceiling("ADREEL_FLEET_HEARTBEAT_SECONDS", 15.0)
RETRY_SECONDS = Ceiling("ADREEL_FLEET_RETRY_SECONDS", 5.0)
JOB_SECONDS = Ceiling("ADREEL_FLEET_JOB_SECONDS", 3600.0)

#: attempts of one job: the first plus at most two retries after transient failures
MAX_ATTEMPTS = 3
MAX_BACKOFF_SECONDS = 60.0
QUEUE_NAME = "adreel"

_NAMESPACE_OK = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class FleetError(Exception):
    """A clear, user-facing error of the fleet's command line (exit status 2)."""


@dataclass(frozen=True)
class Settings:
    redis_url: str
    namespace: str
    max_queued: int
    heartbeat_seconds: float
    retry_seconds: float
    job_seconds: float

    @property
    def redis_display(self) -> str:
        return mask_url(self.redis_url)

    def backoff(self, attempts: int) -> float:
        """Seconds to wait before the attempt after ``attempts`` failed ones."""
        return min(MAX_BACKOFF_SECONDS, self.retry_seconds * (2 ** max(0, attempts - 1)))


def load_settings(redis_url: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> Settings:
    env = os.environ if environ is None else environ
    url = (redis_url or env.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL).strip()
    if not re.match(r"^(redis|rediss|unix)://", url):
        raise FleetError(f"--redis / {REDIS_URL_ENV}: {mask_url(url)!r} is not a redis:// URL "
                         f"(e.g. {DEFAULT_REDIS_URL})")
    namespace = (env.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE).strip()
    if not _NAMESPACE_OK.match(namespace):
        raise FleetError(f"{NAMESPACE_ENV}: use 1–64 letters, digits, '.', '-' or '_' (got {namespace!r})")
    return Settings(redis_url=url, namespace=namespace, max_queued=int(MAX_QUEUED.read(env)),
                    heartbeat_seconds=float(HEARTBEAT_SECONDS.read(env)), retry_seconds=float(RETRY_SECONDS.read(env)),
                    job_seconds=float(JOB_SECONDS.read(env)))


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(?<=://)([^/@:]*):([^/@]*)@", lambda m: f"{m.group(1)}:***@", str(url or ""))
