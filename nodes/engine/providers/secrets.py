"""API keys: from the environment or a local secrets file, never from a workflow.

Lookup order for a provider whose variables are e.g. ``("RUNWAY_API_KEY",
"RUNWAYML_API_SECRET")``:

1. each environment variable, in order;
2. the secrets file — ``$ADREEL_SECRETS_FILE`` if set, else
   ``$XDG_CONFIG_HOME/adreel/secrets.json`` (``~/.config/adreel/secrets.json``).
   It is a JSON object whose keys are the same variable names (or the provider
   name, e.g. ``"runway"``)::

       {"RUNWAY_API_KEY": "…", "FAL_KEY": "…", "luma": "…"}

   Keep it readable by you only (``chmod 600``); a group/world-readable file is
   still used but logged as a warning.

The key is returned as an ``ApiKey`` whose ``repr``/``str`` never show the value;
``reveal()`` gives it to the HTTP layer only. Every key read is registered with
``redaction`` so it is masked in any message or log line.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Mapping, Optional, Sequence

from .errors import MissingApiKeyError, ProviderConfigError
from .redaction import logger, register_secret

SECRETS_FILE_ENV = "ADREEL_SECRETS_FILE"


class ApiKey:
    """A secret string that does not print itself."""

    __slots__ = ("_value", "provider", "source")

    def __init__(self, value: str, provider: str, source: str):
        self._value = value
        self.provider = provider
        self.source = source  # e.g. "environment variable FAL_KEY" — names, never values
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"ApiKey(provider={self.provider!r}, source={self.source!r}, value='***')"

    __str__ = __repr__

    def __reduce__(self):  # never pickle a key into a cache or a history
        raise TypeError("ApiKey cannot be pickled")


def secrets_file_path(environ: Optional[Mapping[str, str]] = None) -> Path:
    env = os.environ if environ is None else environ
    explicit = env.get(SECRETS_FILE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "adreel" / "secrets.json"


def _read_secrets_file(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            logger.warning("secrets file %s is readable by other users; run: chmod 600 %s", path, path)
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        # The exception text of json may quote the file's content: do not include it.
        raise ProviderConfigError(
            f"cannot read the AdReel secrets file {path} ({type(exc).__name__}); "
            f"it must be a JSON object like {{\"FAL_KEY\": \"...\"}}"
        ) from None
    if not isinstance(data, dict):
        raise ProviderConfigError(f"the AdReel secrets file {path} must hold a JSON object of NAME: key")
    return data


def get_api_key(
    provider: str,
    env_vars: Sequence[str],
    *,
    label: Optional[str] = None,
    key_hint: str = "",
    environ: Optional[Mapping[str, str]] = None,
) -> ApiKey:
    """The provider's key, or ``MissingApiKeyError`` naming where to put it."""
    env = os.environ if environ is None else environ
    for name in env_vars:
        value = (env.get(name) or "").strip()
        if value:
            return ApiKey(value, provider, f"environment variable {name}")
    path = secrets_file_path(env)
    data = _read_secrets_file(path)
    for name in (*env_vars, provider):
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            return ApiKey(value.strip(), provider, f"secrets file {path} ({name})")
    names = " or ".join(env_vars)
    hint = f" {key_hint}" if key_hint else ""
    raise MissingApiKeyError(
        f"{label or provider}: no API key found. Set the environment variable {names} for the ComfyUI "
        f"process, or add \"{env_vars[0]}\" to the secrets file {path} (set {SECRETS_FILE_ENV} to use "
        f"another file). Keys are never read from a node widget, so they stay out of workflows.{hint}",
        provider=provider,
    )
