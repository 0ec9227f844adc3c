"""One key lookup for the whole pack: the environment, then the secrets file — never a widget.

For a list of variable names (e.g. ``("RUNWAY_API_KEY", "RUNWAYML_API_SECRET")``):

1. each environment variable, in order;
2. the secrets file — ``$ADREEL_SECRETS_FILE`` if set, else
   ``$XDG_CONFIG_HOME/adreel/secrets.json`` (``~/.config/adreel/secrets.json``):
   a JSON object whose keys are the same variable names (or a provider name,
   e.g. ``"runway"``)::

       {"RUNWAY_API_KEY": "…", "OPENAI_API_KEY": "…", "luma": "…"}

Providers, the LLM backends and cloud TTS all use ``find_key``, so a key works
the same everywhere. Keep every file that holds a secret readable by you only
(``chmod 600``): ``warn_if_shared`` logs a group/world-readable one (the file is
still used). Every key read is registered with ``redaction``; ``ApiKey`` never
prints or pickles its value.
"""
from __future__ import annotations

import json
import logging
import os
import re
import stat
from pathlib import Path
from typing import Mapping, Optional, Sequence

from .redaction import register_secret

SECRET_ENV_NAME = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|_PAT$|_AUTH$)")
MIN_ENV_SECRET_CHARS = 8           # shorter values ("true", "none") would mask ordinary words

SECRETS_FILE_ENV = "ADREEL_SECRETS_FILE"
logger = logging.getLogger("adreel.cloud")


class SecretsFileError(ValueError):
    """The secrets file exists but cannot be used (the message never quotes its content)."""


class ApiKey:
    """A secret string that does not print itself."""

    __slots__ = ("_value", "provider", "source", "name")

    def __init__(self, value: str, provider: str, source: str, name: str = ""):
        self._value = value
        self.provider = provider
        self.source = source  # e.g. "environment variable FAL_KEY" — names, never values
        self.name = name      # the variable (or file entry) it came from
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"ApiKey(provider={self.provider!r}, source={self.source!r}, value='***')"

    __str__ = __repr__

    def __reduce__(self):  # never pickle a key into a cache or a history
        raise TypeError("ApiKey cannot be pickled")


def config_file_path(override_env: str, name: str, environ: Optional[Mapping[str, str]] = None) -> Path:
    """``$override_env`` if set, else ``$XDG_CONFIG_HOME/adreel/<name>`` (``~/.config`` by default): where
    AdReel's configuration files live (the secrets file, the storage settings)."""
    env = os.environ if environ is None else environ
    explicit = env.get(override_env)
    if explicit:
        return Path(explicit).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "adreel" / name


def secrets_file_path(environ: Optional[Mapping[str, str]] = None) -> Path:
    return config_file_path(SECRETS_FILE_ENV, "secrets.json", environ)


def warn_if_shared(path: Path, what: str = "secrets file", log: Optional[logging.Logger] = None) -> bool:
    """Log (and return True) when ``path`` is readable by group or others."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return False
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        (log or logger).warning("%s %s holds a secret and is readable by other users; run: chmod 600 %s",
                                what, path, path)
        return True
    return False


def read_secrets_file(path: Path) -> dict:
    """The secrets file as a dict ({} when absent); ``SecretsFileError`` when unreadable."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        warn_if_shared(path, "the AdReel secrets file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        # json's message may quote the file's content: do not include it
        raise SecretsFileError(
            f"cannot read the AdReel secrets file {path} ({type(exc).__name__}); "
            f"it must be a JSON object like {{\"FAL_KEY\": \"...\"}}") from None
    if not isinstance(data, dict):
        raise SecretsFileError(f"the AdReel secrets file {path} must hold a JSON object of NAME: key")
    return data


def find_key(env_vars: Sequence[str], provider: str = "", *,
             environ: Optional[Mapping[str, str]] = None) -> Optional[ApiKey]:
    """The first key set for ``env_vars``: environment first, then the secrets file; None when none is."""
    env = os.environ if environ is None else environ
    for name in env_vars:
        value = (env.get(name) or "").strip()
        if value:
            return ApiKey(value, provider or name, f"environment variable {name}", name)
    path = secrets_file_path(env)
    data = read_secrets_file(path)
    for name in (*env_vars, *((provider,) if provider else ())):
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            return ApiKey(value.strip(), provider or name, f"secrets file {path} ({name})", name)
    return None


def register_environment_secrets(environ: Optional[Mapping[str, str]] = None) -> int:
    """Register with the redaction layer the value of every secret-named environment variable; how many."""
    env = os.environ if environ is None else environ
    n = 0
    for name, value in env.items():
        value = (value or "").strip()
        if SECRET_ENV_NAME.search(name) and len(value) >= MIN_ENV_SECRET_CHARS:
            register_secret(value)
            n += 1
    return n
