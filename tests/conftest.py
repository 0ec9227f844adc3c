"""Shared fixtures: one real ComfyUI server per test session (started on first use)."""
from __future__ import annotations

import os

import pytest

import fakes
from harness import CANARY, ComfyServer


@pytest.fixture(scope="session")
def comfy():
    """A real ComfyUI 0.3.75 (or $COMFYUI_PATH) with AdReel, on 127.0.0.1, fresh folders."""
    # the operator allows LLM servers on loopback (the fakes and llama-server listen there); keyless LLM calls
    # to loopback are off otherwise (tests/integration/test_security_round2_echo.py)
    server = ComfyServer(env={"ADREEL_LLM_ALLOWED_HOSTS": "127.0.0.1"})
    server.start()
    yield server
    server.stop()
    if os.environ.get("ADREEL_KEEP_TEST_SERVER") != "1":
        server.cleanup()


@pytest.fixture(scope="session", autouse=True)
def no_canary_reaches_a_fake():
    """At the end: no fake server (LLM, provider, TTS, attacker) ever received a canary secret."""
    yield
    hits = fakes.canary_hits(CANARY)
    assert not hits, f"a canary secret was sent to a fake server: {hits[:10]}"


@pytest.fixture
def artifacts_dir():
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "artifacts")
    os.makedirs(path, exist_ok=True)
    return path
