"""ScriptLLM's requests fit ``context_size``: the estimate, the compact prompt, repairs that never grow,
``max_tokens`` within the context, and a context-size refusal that shrinks once or falls back at once.

Against the documented OpenAI-compatible contract (tests/fakes/llm_servers.py); the real llama-server
is tests/integration/test_llama_server.py.
"""
from __future__ import annotations

import asyncio
import json

import pytest

from fakes.llm_servers import PlanModel, Reply
from nodes.engine.models import Brief
from nodes.engine.script import write_template_script
from nodes.engine.script.context import Budget, budget_for, estimate_messages, estimate_tokens
from nodes.engine.script.generate import bar_for, generate_script
from nodes.engine.script.llm import ScriptOptions
from nodes.engine.script.openai_backend import OpenAIBackend
from nodes.engine.script.prompting import SYSTEM, SYSTEM_COMPACT, messages
from nodes.engine.script.schema import SCENE_FIELDS, json_schema

EN = dict(brand="Acme", product="RoboVac X2", cta="Shop now at acme.com", audience="busy parents",
          duration_seconds=15)
LONG_KO = dict(brand="한국전통발효식품연구소 주식회사", product="유기농 현미 발효 효소 프리미엄 골드 에디션 30포",
               cta="지금 www.example-hansik-store.co.kr 에서 39,900원에 만나보세요", audience="건강을 챙기는 40대 직장인",
               goal="첫 구매 할인으로 정기 구독 유도", duration_seconds=30, language="ko")
# llama-server's answer to a prompt longer than its context (tools/server, exceed_context_size_error)
CONTEXT_ERROR = {"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it",
                           "type": "exceed_context_size_error", "n_prompt_tokens": 4210, "n_ctx": 4096}}


@pytest.fixture(autouse=True)
def loopback_llms_allowed(monkeypatch):
    """The fake listens on 127.0.0.1: as an operator running a local LLM would, allow that host."""
    monkeypatch.setenv("ADREEL_LLM_ALLOWED_HOSTS", "127.0.0.1")


def backend(fake, **kw) -> OpenAIBackend:
    return OpenAIBackend("local-model", fake.url + "/v1", "none", timeout=10, **kw)


def run(b: Brief, llm, **kw):
    return asyncio.run(generate_script(b, llm, ScriptOptions(**kw)))


def good_answer(b: Brief) -> str:
    """The template's script, written as an LLM answers (each scene's duration, no start / end)."""
    s = write_template_script(b, seed=3)
    scenes = [{k: round(sc.duration, 3) if k == "duration" else getattr(sc, k) for k in SCENE_FIELDS} for sc in s.scenes]
    return json.dumps({"title": s.title, "scenes": scenes}, ensure_ascii=False)


def fits(body: dict, context_size: int) -> bool:
    """The request's conservative size plus the answer's limit stays inside the context."""
    return estimate_messages(body["messages"]) + body["max_tokens"] <= context_size


# ------------------------------------------------------------------ the rule
def test_the_estimate_is_the_stated_rule():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcde") == 2 and estimate_tokens("abcdef") == 3     # ceil(ascii / 2.5)
    assert estimate_tokens("지금 구매") == 4 * 3 + 1                              # 3 per non-ASCII character
    msgs = [{"role": "system", "content": "abc"}, {"role": "user", "content": "abcdef"}]
    assert estimate_messages(msgs) == 16 + (8 + 2) + (8 + 3)


@pytest.mark.parametrize("kw", [EN, LONG_KO], ids=["en-15s", "ko-30s-long-names"])
def test_a_4096_context_gets_a_first_request_with_room_for_the_answer(kw):
    b = Brief(**kw)
    bar = bar_for(b)
    schema = json_schema(bar.plan, portable=True)
    budget = budget_for(4096, schema)
    compact = messages(bar, schema, compact=True)
    assert budget.fits(estimate_messages(compact)), budget.describe(estimate_messages(compact))
    text = compact[1]["content"]
    # the compact prompt still carries what the bar checks: brand, product, exact CTA, plan, language
    for s in (b.brand, b.product, json.dumps(b.cta, ensure_ascii=False), "Korean" if b.language == "ko" else "English"):
        assert s in text
    assert all(seg in text for seg in bar.plan.structure)
    assert estimate_messages(compact) < estimate_messages(messages(bar, schema)) / 2


# ------------------------------------------------------------------ what is sent
def test_a_small_context_sends_the_compact_prompt_and_max_tokens_within_it(oai):
    b = Brief(**LONG_KO)
    oai.script(good_answer(b))
    gen = run(b, backend(oai, context_size=2560), seed=3)
    body = oai.chats()[0].body
    assert body["messages"][0]["content"] == SYSTEM_COMPACT
    assert fits(body, 2560)
    assert not gen.fell_back and gen.script.source == "openai:local-model"
    assert any("the full prompt does not fit context_size 2560" in n and "compact prompt" in n
               for n in gen.script.notes)


def test_a_roomy_context_sends_the_full_prompt(oai):
    gen = run(Brief(**EN), backend(oai, context_size=32768), seed=1)
    body = oai.chats()[0].body
    assert body["messages"][0]["content"] == SYSTEM and "JSON Schema" in body["messages"][1]["content"]
    assert fits(body, 32768) and body["max_tokens"] >= 2048
    assert not gen.fell_back


def test_without_a_context_size_no_max_tokens_is_sent(oai):
    run(Brief(**EN), backend(oai), seed=1)
    body = oai.chats()[0].body
    assert "max_tokens" not in body and body["messages"][0]["content"] == SYSTEM


def test_repairs_never_grow_one_exchange_at_most(oai):
    b = Brief(**EN)
    oai.model = PlanModel("long_narration")   # stays wrong: four tries, then the template
    gen = run(b, backend(oai, context_size=6144), seed=2, max_attempts=4)
    sent = [r.body for r in oai.chats()]
    assert len(sent) == 4 and gen.fell_back
    sizes = [estimate_messages(s["messages"]) for s in sent]
    assert all(len(s["messages"]) <= 4 for s in sent)           # system, user, last answer, the fix
    assert sizes[1] == sizes[2] == sizes[3]                      # the same problems: the same size each time
    assert all(fits(s, 6144) for s in sent)
    assert sent[3]["messages"][:2] == sent[0]["messages"]        # the first request, not the history
    assert sent[3]["messages"][2]["role"] == "assistant"         # then the last answer and its problems


def test_a_repair_that_would_not_fit_leaves_the_answer_out(oai):
    oai.model = PlanModel("long_narration")     # a long answer: with it the repair would pass 4608
    run(Brief(**EN), backend(oai, context_size=4608), seed=2, max_attempts=2)
    second = oai.chats()[1].body
    assert fits(second, 4608)
    assert [m["role"] for m in second["messages"]] == ["system", "user"]
    assert "A previous answer failed" in second["messages"][1]["content"]
    assert "scenes[0].narration" in second["messages"][1]["content"]


def test_a_4096_context_gets_the_full_prompt_when_it_fits(oai):
    run(Brief(**EN), backend(oai, context_size=4096), seed=3, max_attempts=1)
    body = oai.chats()[0].body
    assert body["messages"][0]["content"] == SYSTEM and fits(body, 4096)


def test_a_context_too_small_for_any_prompt_sends_nothing_and_says_why(oai):
    gen = run(Brief(**EN), backend(oai, context_size=1024), seed=1)
    assert oai.chats() == [] and gen.fell_back and gen.script.source == "template"
    note = gen.script.notes[0]
    assert note.startswith("fallback:") and "does not fit the model's context" in note and "context_size 1024" in note


# ------------------------------------------------------------------ the server says it is too long
def test_a_context_refusal_shrinks_at_once_to_the_servers_context(oai):
    b = Brief(**EN)
    error = json.loads(json.dumps(CONTEXT_ERROR))
    error["error"]["n_ctx"] = 2048
    oai.script(Reply(400, error), good_answer(b))
    gen = run(b, backend(oai, context_size=8192), seed=3, max_attempts=1)
    first, second = (r.body for r in oai.chats())
    assert first["messages"][0]["content"] == SYSTEM
    assert second["messages"][0]["content"] == SYSTEM_COMPACT and fits(second, 2048)
    assert not gen.fell_back                 # the shrunk request is the same try (max_attempts=1)
    assert any("too long for its context" in n and "2048" in n for n in gen.script.notes)


def test_a_context_refusal_of_the_compact_prompt_falls_back_at_once(oai):
    oai.script(Reply(400, CONTEXT_ERROR), Reply(400, CONTEXT_ERROR), Reply(400, CONTEXT_ERROR))
    gen = run(Brief(**EN), backend(oai, context_size=4096), seed=1, max_attempts=3)
    assert len(oai.chats()) <= 2             # never the same request twice
    assert [r.body["messages"][0]["content"] for r in oai.chats()][-1] == SYSTEM_COMPACT
    assert gen.fell_back and [a.outcome for a in gen.attempts] == ["too_long"] * len(oai.chats())
    note = gen.script.notes[0]
    assert note.startswith("fallback:") and "context" in note and "llama-server -c" in note


def test_budget_arithmetic():
    b = Budget(4096, 6)
    assert b.answer_need == 120 + 200 * 6
    assert b.fits(4096 - b.answer_need) and not b.fits(4097 - b.answer_need)
    assert b.max_tokens(1000) == 2100 and b.max_tokens(3000) == 1096
    assert budget_for(0, {}) is None
