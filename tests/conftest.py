"""Shared fixtures: the session's ComfyUI servers, one per environment (tests/harness.py, ``ComfyServers``).

The order of the run: modules that need no ComfyUI first, while the servers start in the
background (the plain one, and one for each module's ``COMFY_ENV``: a module whose server's
environment is known when it is imported names it there and asks ``comfy_servers.get(env=COMFY_ENV)``);
then the modules that use a server, each module's tests together.

Tests marked ``slow`` (the measurements against real local models) are opt-in: ``pytest -m slow``
(or any ``-m`` expression naming ``slow``), or ``ADREEL_SLOW_TESTS=1``; otherwise they are skipped.

In parallel (``pytest -n 2 --dist loadscope --no-loadscope-reorder``, as ``make test`` runs it) each worker
takes whole modules in the order above; the modules that use a server go heaviest first (by
``tests/module_seconds.json``, the seconds each took in a recent run: only an order, never a bound), so
the last module to finish is a short one. Each worker starts the plain server early and the others
when a module of its own asks for them.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import pytest

import fakes
from harness import CANARY, PLAIN_ENV, ComfyServers

SERVERS = ComfyServers()
SLOW_ENV = "ADREEL_SLOW_TESTS"
_SECONDS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "module_seconds.json")


def _module_seconds() -> dict:
    """Seconds per test module in a recent run (relative paths under tests/), for the order only."""
    try:
        with open(_SECONDS_FILE, encoding="utf-8") as f:
            return {str(k): float(v) for k, v in json.load(f).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def _module_path(module) -> str:
    path = getattr(module, "__file__", "") or ""
    return os.path.relpath(path, os.path.dirname(_SECONDS_FILE)) if path else ""


def _uses_comfy(item) -> bool:
    return item.get_closest_marker("comfy") is not None or "comfy" in getattr(item, "fixturenames", ())


def _slow_opted_in(config) -> bool:
    return "slow" in (config.option.markexpr or "") or os.environ.get(SLOW_ENV) == "1"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    if not _slow_opted_in(config):
        skip = pytest.mark.skip(reason=f"a slow measurement: run with `pytest -m slow` or {SLOW_ENV}=1")
        for item in items:
            if item.get_closest_marker("slow"):
                item.add_marker(skip)
    # whole modules keep their order and stay together (their module fixtures are set up once)
    needs = {}
    for item in items:
        module = getattr(item, "module", None)
        needs[module] = needs.get(module, False) or _uses_comfy(item)
    seconds = _module_seconds()
    rank = {m: (needs[m], -seconds.get(_module_path(m), 0.0) if needs[m] else 0.0, i) for i, m in enumerate(needs)}
    items.sort(key=lambda item: rank[getattr(item, "module", None)])
    if config.option.collectonly:
        return
    wanted = []  # the servers to load while the first modules run
    if any("comfy" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("skip") for item in items):
        wanted.append(PLAIN_ENV)
    in_worker = hasattr(config, "workerinput")  # under pytest-xdist each worker asks for the others itself
    for module in needs if not in_worker else ():
        env = getattr(module, "COMFY_ENV", None)
        if isinstance(env, dict) and env not in wanted:
            wanted.append(env)
    try:
        for env in wanted:
            SERVERS.launch(env)
    except Exception:  # noqa: BLE001 - no runtime here: the tests that need it say so when they ask
        pass


def pytest_configure(config):
    """One measure store for the session's processes (the servers, the test workers): a line measured in one is
    not said again in another, and nothing outside the session is read or written (``ADREEL_CACHE``). Test
    servers are forked from a launcher."""
    if "ADREEL_CACHE" not in os.environ:  # pytest-xdist workers inherit the controller's
        config._adreel_cache = os.environ["ADREEL_CACHE"] = tempfile.mkdtemp(prefix="adreel-test-cache-")
    # the session's servers are forked from a launcher that imported torch once (tests/harness.py,
    # ComfyLauncher); ADREEL_TEST_FORK_COMFYUI=0 starts each one as `python main.py`
    os.environ.setdefault("ADREEL_TEST_FORK_COMFYUI", "1")


def pytest_unconfigure(config):
    made = getattr(config, "_adreel_cache", None)  # only the process that made it (never a worker) removes it
    if made:
        shutil.rmtree(made, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    SERVERS.close(keep_folders=os.environ.get("ADREEL_KEEP_TEST_SERVER") == "1", check_canary=False)


@pytest.fixture(scope="session")
def comfy_servers():
    """One real ComfyUI (0.3.75, or $ADREEL_COMFYUI) with AdReel per environment, for the whole session:
    ``comfy_servers.get(env={...}, extra_args=[...])``. At the end every server's canary check runs."""
    yield SERVERS
    SERVERS.close(keep_folders=os.environ.get("ADREEL_KEEP_TEST_SERVER") == "1")


@pytest.fixture(scope="session")
def comfy(comfy_servers):
    """The plain server: AdReel on 127.0.0.1, fresh folders; its operator allows LLM servers on loopback
    (the fakes and llama-server listen there; keyless LLM calls to loopback are off otherwise, see
    tests/integration/test_security_round2_echo.py)."""
    return comfy_servers.get(env=PLAIN_ENV)


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
