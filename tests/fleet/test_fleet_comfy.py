"""The fleet's ComfyUI client on each supported core: ComfyUI 0.3.75 (the pinned runtime: /history and
/interrupt) and 0.33.0 (the jobs API; ``$ADREEL_NEXT_COMFYUI`` with ``$ADREEL_NEXT_PYTHON``, skipped in one line
when absent). A real server each; the prompt is core's own EmptyImage → SaveImage, so nothing but the client is
under test. What is checked is what ComfyUI itself shows: its /history under the id the fleet chose."""
from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from fleet.comfy import ComfyClient
from fleet.comfy import run_prompt
from fleet.runner import prompt_id_for
from harness import ComfyServer

pytestmark = [pytest.mark.comfy, pytest.mark.timeout(600)]

CORES = {
    "0.3.75": (None, None, False),
    "0.33.0": (os.environ.get("ADREEL_NEXT_COMFYUI"), os.environ.get("ADREEL_NEXT_PYTHON"), True),
}


@pytest.fixture(scope="module", params=list(CORES))
def core(request):
    path, python, has_jobs_api = CORES[request.param]
    if request.param != "0.3.75" and not (path and os.path.isfile(os.path.join(path, "main.py")) and python):
        pytest.skip(f"ComfyUI {request.param} is not installed (ADREEL_NEXT_COMFYUI / ADREEL_NEXT_PYTHON)")
    server = ComfyServer(python=python)
    if path:
        server.comfy = path
    server.start()
    try:
        yield request.param, server, has_jobs_api
    finally:
        server.cleanup()


def tiny_prompt(tag: str) -> dict:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 255}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"fleet_{tag}"}}}


def test_the_client_detects_the_jobs_api_queues_under_a_derived_uuid_and_reads_the_end(core):
    name, server, has_jobs_api = core
    client = ComfyClient(server.url)
    client.check()
    assert client.jobs_api() is has_jobs_api, name  # asked of the server, not read from a version number
    pid = prompt_id_for("0123456789abcdef0123", "1700000000.000", 1)
    seen, queued = [], []
    entry = asyncio.run(run_prompt(client, tiny_prompt(name.replace(".", "_")), on_queued=queued.append,
                                   on_progress=lambda f, node: seen.append(f), should_stop=lambda: None,
                                   deadline_s=120, prompt_id=pid))
    assert queued == [pid]
    (image,) = entry["outputs"]["2"]["images"]
    assert image["filename"].startswith("fleet_") and image["type"] == "output"
    # ComfyUI keeps the run under the id the fleet chose: a canonical lowercase UUID
    hist = server.get_json(f"/history/{pid}")
    assert pid in hist and hist[pid]["status"]["status_str"] == "success"
    assert str(uuid.UUID(pid)) == pid
    assert seen == sorted(seen) and all(0 <= f <= 0.99 for f in seen)
    # cancelling a prompt that has finished (or was never there) is harmless on either core
    client.interrupt(pid)
    client.interrupt(str(uuid.uuid4()))
    assert server.get_json("/system_stats")
