"""Fixtures the unit modules share: a keyless OpenAI-compatible fake on loopback (a module that needs a key
bound to it, as test_script_llm.py does, defines its own ``oai_server`` and ``oai``)."""
from __future__ import annotations

import pytest

from fakes.llm_servers import FakeOpenAICompatible, PlanModel


@pytest.fixture(scope="module")
def oai_server():
    with FakeOpenAICompatible(models=("local-model",), hang_seconds=30) as fake:
        yield fake


@pytest.fixture
def oai(oai_server):
    """The fake, its requests and queued answers cleared, answering with the brief's plan (PlanModel)."""
    oai_server.requests.clear()
    oai_server._queue.clear()
    oai_server.model = PlanModel()
    return oai_server
