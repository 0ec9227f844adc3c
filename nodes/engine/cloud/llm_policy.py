"""Where an LLM request may go, and which key may go with it.

A workflow (anyone who can POST to ``/prompt``) chooses the endpoint and the
*name* of the key variable; the operator's environment decides what is allowed:

* ``api_key_env`` may name only a variable on the allowlist —
  ``OPENAI_API_KEY``, ``GROQ_API_KEY``, ``OPENROUTER_API_KEY``,
  ``MISTRAL_API_KEY``, ``GEMINI_API_KEY``, ``TOGETHER_API_KEY``,
  ``FIREWORKS_API_KEY``, ``DEEPSEEK_API_KEY`` and any ``ADREEL_LLM_KEY_<NAME>``
  — or ``none`` (no key). Anything else (``MINIO_SECRET_KEY``,
  ``AWS_SECRET_ACCESS_KEY``, …) is refused, and a value that looks like a
  pasted key (``sk-…``, ``gsk_…``, ``hf_…``, ``r8_…``, ``ghp_…``, ``fw_…``,
  ``AIza…``, a long random string) is refused without being echoed.
* **A key is bound to its host.** Each key goes only to the host of the base
  URL configured for it in the environment — ``OPENAI_BASE_URL`` (default
  ``https://api.openai.com/v1``) for ``OPENAI_API_KEY``, ``GROQ_BASE_URL`` for
  ``GROQ_API_KEY`` …, ``ADREEL_LLM_URL_<NAME>`` for ``ADREEL_LLM_KEY_<NAME>`` —
  or to a host listed in ``ADREEL_LLM_ALLOWED_HOSTS`` (comma-separated
  ``host`` or ``host:port``). A widget URL on another host with a key is refused;
  it never receives the key.
* With a key, plain ``http://`` only to loopback.
* **Every request, keyed or not, goes to a public address** — unless the
  operator named the host: ``OLLAMA_HOST`` (default ``127.0.0.1:11434``), a base URL above, or
  ``ADREEL_LLM_ALLOWED_HOSTS``. Loopback (127/8, ::1, ``localhost``) and private
  ranges (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10) are otherwise
  reached only with ``ADREEL_LLM_ALLOW_PRIVATE=1`` (every loopback and private
  address); link-local / cloud-metadata addresses (169.254/16, fe80::/10,
  fd00:ec2::254, 100.100.100.200) only when that very host is named. Names are
  resolved (every address must pass) and redirects are never followed, so a
  name or a 302 pointing there is refused too. A visitor's widget can thus not
  turn ScriptLLM into a scanner of the server's own ports or network.
* Refusals name the widget and the kind of problem, never the host, the
  address it resolved to, or the value the visitor typed.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional
from urllib.parse import urlsplit

from .credentials import looks_like_key
from .http import InsecureURL, check_destination, host_port, require_https

ALLOWED_HOSTS_ENV = "ADREEL_LLM_ALLOWED_HOSTS"
ALLOW_PRIVATE_ENV = "ADREEL_LLM_ALLOW_PRIVATE"
KEY_PREFIX = "ADREEL_LLM_KEY_"
URL_PREFIX = "ADREEL_LLM_URL_"
NO_KEY = "none"
DEFAULT_OLLAMA_HOST = "127.0.0.1:11434"

# key variable -> (base-URL variable, default base URL)
KNOWN_KEYS: dict[str, tuple[str, str]] = {
    "OPENAI_API_KEY": ("OPENAI_BASE_URL", "https://api.openai.com/v1"),
    "GROQ_API_KEY": ("GROQ_BASE_URL", "https://api.groq.com/openai/v1"),
    "OPENROUTER_API_KEY": ("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1"),
    "MISTRAL_API_KEY": ("MISTRAL_BASE_URL", "https://api.mistral.ai/v1"),
    "GEMINI_API_KEY": ("GEMINI_BASE_URL", "https://generativelanguage.googleapis.com/v1beta/openai"),
    "TOGETHER_API_KEY": ("TOGETHER_BASE_URL", "https://api.together.xyz/v1"),
    "FIREWORKS_API_KEY": ("FIREWORKS_BASE_URL", "https://api.fireworks.ai/inference/v1"),
    "DEEPSEEK_API_KEY": ("DEEPSEEK_BASE_URL", "https://api.deepseek.com/v1"),
}
_KEY_NAME = re.compile(r"^ADREEL_LLM_KEY_[A-Z0-9_]{1,48}$")
_TRUE = {"1", "true", "yes", "on"}
HOW_TO_ALLOW = (f"the operator allows the host in {ALLOWED_HOSTS_ENV} (or configures it as OLLAMA_HOST / a base "
                f"URL; {ALLOW_PRIVATE_ENV}=1 opens every loopback and private address)")


class PolicyError(ValueError):
    """A refused setting; ``field`` names the widget."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(message)


def allowed_key_names() -> str:
    return ", ".join(KNOWN_KEYS) + f", {KEY_PREFIX}<NAME> or {NO_KEY}"


def check_key_name(value: Optional[str], default: str = "OPENAI_API_KEY") -> Optional[str]:
    """The allowed variable name for ``value`` (None for "none"); ``PolicyError('api_key_env')`` otherwise."""
    v = (value or "").strip()
    if not v:
        return default
    if v.lower() == NO_KEY:
        return None
    if looks_like_key(v, name_expected=True):
        raise PolicyError("api_key_env", "looks like an API key itself (not shown here): put the key in the "
                                         "environment of the ComfyUI server (or the AdReel secrets file) and "
                                         f"name its variable here — one of {allowed_key_names()}")
    if v in KNOWN_KEYS or _KEY_NAME.match(v):
        return v
    raise PolicyError("api_key_env", "names a variable AdReel may not send to an LLM; use one of "
                                     f"{allowed_key_names()} (other environment variables, such as storage "
                                     "secrets, are never sent)")


def widget_problem(backend: str, api_key_env: Optional[str] = None, openai_base_url: Optional[str] = None,
                   ollama_host: Optional[str] = None) -> Optional[str]:
    """What ``/prompt`` must refuse before a workflow is queued (and stored in the history): a pasted key in
    any of these widgets, whatever the backend, and a key variable that is not allowed for ``openai``."""
    if api_key_env and looks_like_key(api_key_env, name_expected=True):
        return "api_key_env: looks like an API key itself (not shown here); name its variable instead"
    for name, url in (("openai_base_url", openai_base_url), ("ollama_host", ollama_host)):
        if url and "@" in url:
            try:
                parts = urlsplit(url if "://" in url else f"http://{url}")
                creds = bool(parts.username or parts.password)
            except ValueError:
                creds = True
            if creds:
                return f"{name}: must not carry a user name or password; keys come from the environment"
    if backend == "openai" and api_key_env is not None:
        try:
            check_key_name(api_key_env)
        except PolicyError as e:
            return f"{e.field}: {e}"
    return None


def configured_base_url(key_name: str, environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    env = os.environ if environ is None else environ
    if key_name in KNOWN_KEYS:
        var, default = KNOWN_KEYS[key_name]
        return (env.get(var) or "").strip() or default
    if key_name.startswith(KEY_PREFIX):
        return (env.get(URL_PREFIX + key_name[len(KEY_PREFIX):]) or "").strip() or None
    return None


def allowed_hosts(environ: Optional[Mapping[str, str]] = None) -> set[str]:
    """``ADREEL_LLM_ALLOWED_HOSTS`` as ``host`` / ``host:port`` entries, spelled as ``host_port`` spells a URL's
    host (lower case, no brackets around IPv6, no trailing dot)."""
    env = os.environ if environ is None else environ
    out = set()
    for entry in (env.get(ALLOWED_HOSTS_ENV) or "").split(","):
        entry = entry.strip().lower().rstrip("/")
        if not entry:
            continue
        try:
            parts = urlsplit(entry if "://" in entry else f"http://{entry}")
            host, port = (parts.hostname or "").rstrip("."), parts.port
        except ValueError:
            continue
        if host:
            out.add(f"{host}:{port}" if port else host)
    return out


def configured_hosts(environ: Optional[Mapping[str, str]] = None) -> set[str]:
    """Every LLM host the operator configured (host:port), for the destination check."""
    env = os.environ if environ is None else environ
    urls = [(env.get(var) or "").strip() for var, _ in KNOWN_KEYS.values()]
    urls += [v for k, v in env.items() if k.startswith(URL_PREFIX)]
    # OLLAMA_HOST, or Ollama's default when it is unset (the server the ollama backend uses anyway)
    urls.append((env.get("OLLAMA_HOST") or "").strip() or DEFAULT_OLLAMA_HOST)
    hosts = set(allowed_hosts(env))
    for url in urls:
        if url:
            try:
                host, port = host_port(url if "://" in url else f"http://{url}")
            except ValueError:
                continue
            if host:
                hosts.add(f"{host}:{port}")
    return hosts


def private_allowed(environ: Optional[Mapping[str, str]] = None) -> bool:
    env = os.environ if environ is None else environ
    return (env.get(ALLOW_PRIVATE_ENV) or "").strip().lower() in _TRUE


def _matches(url: str, base: Optional[str]) -> bool:
    if not base:
        return False
    try:
        return host_port(url) == host_port(base if "://" in base else f"https://{base}")
    except ValueError:
        return False


def _in_allowlist(url: str, environ) -> bool:
    host, port = host_port(url)
    hosts = allowed_hosts(environ)
    return host in hosts or f"{host}:{port}" in hosts


@dataclass(frozen=True)
class Destination:
    url: str
    key_name: Optional[str]   # None: no key is sent


def check_llm_destination(url: str, key_name: Optional[str], field_name: str = "openai_base_url", *,
                          environ: Optional[Mapping[str, str]] = None, resolve: bool = False, resolver=None) -> Destination:
    """Refuse ``url`` for ``key_name`` unless the environment binds that key to its host (see the module doc)."""
    env = os.environ if environ is None else environ
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018
    except ValueError:
        raise PolicyError(field_name, "is not a valid http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PolicyError(field_name, "must be an http(s) URL like http://127.0.0.1:8000/v1")
    if parts.username or parts.password:
        raise PolicyError(field_name, "must not carry a user name or password; keys come from the environment")
    if key_name:
        base = configured_base_url(key_name, env)
        if not (_matches(url, base) or _in_allowlist(url, env)):
            where = f"{host_port(base)[0]} (its configured base URL)" if base else "no host yet"
            raise PolicyError(field_name, f"the key in {key_name} is only sent to {where}; this URL's host is "
                                          f"not configured for it. Use a base URL the operator configured, set "
                                          f"api_key_env to {NO_KEY} for a keyless server the operator allows, or "
                                          f"ask the operator to add the host to {ALLOWED_HOSTS_ENV}")
        try:
            require_https(url, field_name, allow_loopback_http=True, error=InsecureURL)
        except InsecureURL:
            raise PolicyError(field_name, "a key is only sent over https (plain http only to 127.0.0.1 / "
                                          "localhost); this URL is plain http") from None
    # without ``resolve`` only literal addresses (and localhost) are checked (no DNS while a node is being
    # set up); the backends check again with DNS right before they send
    lookup = resolver if resolve else (lambda host, port: [a for a in [_literal(host)] if a is not None])
    check_destination(url, "", allow_private=private_allowed(env), trusted=configured_hosts(env),
                      error=lambda m: PolicyError(field_name, m), how_to_allow=HOW_TO_ALLOW,
                      **({"resolver": lookup} if lookup else {}))
    return Destination(url, key_name)


def _literal(host: str):
    import ipaddress
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
