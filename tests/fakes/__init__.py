"""Local fake servers for services the tests cannot reach (cloud providers, LLMs, TTS).

Every fake reports each request it receives to ``record`` (method, path, headers,
body). At the end of the session ``conftest.py`` asserts that the canary secrets
which every test ComfyUI carries in its environment (``harness.CANARY``) reached
none of them: a fake is never the host a canary is configured for.
"""
from __future__ import annotations

import threading

_lock = threading.Lock()
received: list[tuple[str, str]] = []  # (fake's name, the request as text)


def record(fake: str, method: str, path: str, headers, body) -> None:
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", "replace")
    head = "\n".join(f"{k}: {v}" for k, v in dict(headers or {}).items())
    with _lock:
        received.append((fake, f"{method} {path}\n{head}\n\n{body or ''}"))


def canary_hits(canary: str) -> list[str]:
    with _lock:
        return [f"{fake}: {text.splitlines()[0]}" for fake, text in received if canary in text]
