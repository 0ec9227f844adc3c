"""ScriptLLM's engine against local fake Ollama / OpenAI-compatible servers (contract §7).

Every case ends in a valid script that meets the bar — written by the LLM,
repaired by it after AdReel sent back the errors, or written by the template
with the reason in ``Script.notes`` — except what only the user can fix (a
model the server lacks, a refused key), which is a clear error.
"""
from __future__ import annotations

import asyncio
import json
import re

import pytest

from fakes.llm_servers import HANG, FakeOllama, FakeOpenAICompatible, PlanModel, Reply, StreamError, closed_url
from nodes.engine.models import AdReelInputError, Brief, ReferenceStyle, Scene, Script
from nodes.engine.script import write_template_script
from nodes.engine.script.backends import LLMError
from nodes.engine.script.generate import bar_for, generate_script, parse_edited_script, raise_for_user
from nodes.engine.script.language import language_problem
from nodes.engine.script.ollama_backend import OllamaBackend, parse_keep_alive
from nodes.engine.script.openai_backend import OpenAIBackend
from nodes.engine.script.llm import ScriptOptions
from nodes.engine.script.plan import plan_for, structure_for
from nodes.engine.script.schema import AnswerProblem, json_schema, to_script

EN = dict(brand="Acme", product="RoboVac X2", cta="Shop now at acme.com", audience="busy parents",
          duration_seconds=15)
KO = dict(brand="아크미", product="로보청소기 X2", cta="지금 구매하세요", audience="바쁜 부모", duration_seconds=10,
          language="ko")
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def brief(**kw) -> Brief:
    return Brief(**{**EN, **kw})


@pytest.fixture(autouse=True)
def loopback_llms_allowed(monkeypatch):
    """The fakes listen on 127.0.0.1: as an operator running a local LLM would, allow that host."""
    monkeypatch.setenv("ADREEL_LLM_ALLOWED_HOSTS", "127.0.0.1")


@pytest.fixture(scope="module")
def server():
    with FakeOllama(hang_seconds=30) as fake:
        yield fake


@pytest.fixture
def ollama(server):
    return server.fresh()


@pytest.fixture(scope="module")
def oai_server():
    with FakeOpenAICompatible(models=("local-model",), api_key="sk-test-1234567890abcdef", hang_seconds=30) as fake:
        yield fake


@pytest.fixture
def oai(oai_server, monkeypatch):
    oai_server.requests.clear()
    oai_server._queue.clear()
    oai_server.model = PlanModel()
    # an allowlisted key variable, bound by the environment to the fake's host
    monkeypatch.setenv("ADREEL_LLM_KEY_TEST", oai_server.api_key)
    monkeypatch.setenv("ADREEL_LLM_URL_TEST", oai_server.url + "/v1")
    return oai_server


def run(b: Brief, backend, **kw):
    return asyncio.run(generate_script(b, backend, ScriptOptions(**kw)))


def ollama_backend(fake, model="qwen2.5:7b", **kw):
    kw.setdefault("timeout", 10)
    return OllamaBackend(model, fake.url, **kw)


def openai_backend(fake, model="local-model", **kw):
    kw.setdefault("timeout", 10)
    kw.setdefault("api_key_env", "ADREEL_LLM_KEY_TEST")
    return OpenAIBackend(model, fake.url + "/v1", **kw)


BACKENDS = {"ollama": ("ollama", ollama_backend), "openai": ("oai", openai_backend)}


@pytest.fixture(params=sorted(BACKENDS))
def llm(request):
    """(fake server, backend factory) for each backend kind."""
    fixture, factory = BACKENDS[request.param]
    fake = request.getfixturevalue(fixture)
    return fake, (lambda **kw: factory(fake, **kw))


def assert_valid(gen, b: Brief):
    s = gen.script
    Script.model_validate_json(s.model_dump_json())
    assert abs(sum(sc.duration for sc in s.scenes) - b.duration_seconds) <= 0.05
    assert gen.bar.check(s) == [], gen.bar.check(s)


def sent_messages(fake) -> list[list[dict]]:
    return [r.body["messages"] for r in fake.chats()]


# ------------------------------------------------------------------ good answers
def test_ollama_good_answer_and_the_request_it_got(ollama):
    b = brief()
    gen = run(b, ollama_backend(ollama, keep_alive="15m", context_size=4096), seed=5, temperature=0.4)
    assert_valid(gen, b)
    s = gen.script
    assert s.source == "ollama:qwen2.5:7b" and not gen.fell_back and s.notes == []
    assert s.title.startswith("LLM:")  # the LLM's script, not the template's
    (req,) = ollama.chats()
    body = req.body
    assert req.path == "/api/chat"
    assert body["stream"] is False  # Ollama would stream otherwise
    assert body["format"] == json_schema(gen.bar.plan)  # the script's JSON schema
    assert body["keep_alive"] == "15m"
    assert body["options"]["temperature"] == 0.4 and body["options"]["seed"] == 5
    assert body["options"]["num_ctx"] == 4096
    assert body["messages"][0]["role"] == "system"
    user = body["messages"][1]["content"]
    assert "Acme" in user and "Shop now at acme.com" in user and "15 seconds" in user


def test_openai_compatible_good_answer_and_the_request_it_got(oai):
    b = brief()
    gen = run(b, openai_backend(oai), seed=9)
    assert_valid(gen, b)
    assert gen.script.source == "openai:local-model" and not gen.fell_back
    (req,) = oai.chats()
    assert req.path == "/v1/chat/completions"
    assert req.headers["Authorization"] == "Bearer " + oai.api_key  # from the environment
    rf = req.body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"] == json_schema(gen.bar.plan, portable=True)
    assert req.body["seed"] == 9 and req.body["stream"] is False


def test_korean_brief_gets_korean_script(llm):
    fake, make = llm
    b = Brief(**KO)
    gen = run(b, make(), seed=2)
    assert_valid(gen, b)
    assert not gen.fell_back and gen.script.language == "ko"
    assert all(HANGUL.search(sc.on_screen_text) for sc in gen.script.scenes)
    assert "한국어" in sent_messages(fake)[0][1]["content"]


# ------------------------------------------------------------------ bad answers: repaired or templated
@pytest.mark.parametrize("flaw,expect", [
    ("prose", "is not JSON"),
    ("schema", "scenes[0].duration"),
    ("durations", "durations add up to 12.00 s"),
    ("long_narration", "scenes[0].narration"),
])
def test_bad_answer_is_sent_back_with_the_errors_and_repaired(llm, flaw, expect):
    fake, make = llm
    b = brief()
    fake.script(PlanModel(flaw))  # first answer flawed, the next one good
    gen = run(b, make(), seed=1)
    assert_valid(gen, b)
    assert not gen.fell_back and gen.script.source.endswith(("qwen2.5:7b", "local-model"))
    assert [a.outcome for a in gen.attempts] == ["invalid", "ok"]
    note = " ".join(gen.script.notes)
    assert "repaired" in note and expect in note
    second = sent_messages(fake)[1]
    assert second[-2]["role"] == "assistant"  # the bad answer, then the specific errors
    assert second[-1]["role"] == "user" and expect in second[-1]["content"]


def test_schema_errors_name_scene_and_field(ollama):
    ollama.model = PlanModel("schema")
    gen = run(brief(), ollama_backend(ollama), max_attempts=2)
    fix = sent_messages(ollama)[1][-1]["content"]
    assert "scenes[0].duration" in fix and "scenes[0].camera" in fix and "scenes[0].image_prompt: is missing" in fix
    assert "scenes[0].camera: is not a camera move" in fix
    assert gen.fell_back and gen.script.source == "template"
    # a scene's problems come in the order the schema asks for its fields (duration before image prompt
    # before camera), though LLMScene inherits SceneContent's fields and adds duration last
    assert fix.index("scenes[0].duration") < fix.index("scenes[0].image_prompt") < fix.index("scenes[0].camera")


@pytest.mark.parametrize("flaw,expect", [
    ("prose", "is not JSON"),
    ("durations", "durations add up to"),
])
def test_answers_that_stay_bad_fall_back_to_the_template(llm, flaw, expect):
    fake, make = llm
    b = brief()
    fake.model = PlanModel(flaw)
    gen = run(b, make(), seed=4, max_attempts=3)
    assert gen.fell_back and len(fake.chats()) == 3  # bounded
    assert gen.script.source == "template"
    assert gen.script.scenes == write_template_script(b, seed=4).scenes  # the same seed's template script
    assert gen.script.notes[0].startswith("fallback:") and "missed the brief in 3 tries" in gen.script.notes[0]
    assert expect in gen.script.notes[0]
    assert_valid(gen, b)


def test_wrong_language_is_sent_back_then_templated_in_the_right_language(ollama):
    b = Brief(**KO)
    ollama.model = PlanModel("language")
    gen = run(b, ollama_backend(ollama), seed=3, max_attempts=2)
    fix = sent_messages(ollama)[1][-1]["content"]
    assert "not Korean" in fix and "narration" in fix
    assert gen.fell_back and "not Korean" in gen.script.notes[0]
    spoken = [sc.narration for sc in gen.script.scenes if sc.narration]  # a short ad may leave a scene silent
    assert spoken and all(HANGUL.search(n) for n in spoken)  # the template writes Korean
    assert_valid(gen, b)


def test_wrong_language_then_right_language_is_repaired(ollama):
    b = Brief(**KO)
    ollama.script(PlanModel("language"))
    gen = run(b, ollama_backend(ollama), seed=3)
    assert not gen.fell_back and gen.script.source == "ollama:qwen2.5:7b"
    assert all(HANGUL.search(sc.on_screen_text) for sc in gen.script.scenes)


def test_prose_around_json_is_repaired_without_asking_again(ollama):
    good = PlanModel()
    ollama.script(lambda body: "Here is your script:\n```json\n" + good(body) + "\n```\nEnjoy!")
    gen = run(brief(), ollama_backend(ollama))
    assert not gen.fell_back and len(ollama.chats()) == 1
    assert any("out of the prose" in n for n in gen.script.notes)


# ------------------------------------------------------------------ server failures
def test_missing_model_is_a_clear_error_listing_the_servers_models(ollama):
    with pytest.raises(LLMError) as exc:
        run(brief(), ollama_backend(ollama, model="mistral:7b"))
    with pytest.raises(AdReelInputError) as err:
        raise_for_user(exc.value)
    msg = str(err.value)
    assert err.value.field == "model"
    assert "llama3.2:3b, qwen2.5:7b" in msg and "ollama pull <model>" in msg
    # the workflow's model name and Ollama's own 404 body are not repeated (a visitor's text, a server's text)
    assert "mistral" not in msg and "not found" not in msg
    assert ollama.chats()[0].body["model"] == "mistral:7b"


def test_missing_model_on_an_openai_compatible_server(oai):
    with pytest.raises(LLMError) as exc:
        run(brief(), openai_backend(oai, model="gpt-9"))
    with pytest.raises(AdReelInputError) as err:
        raise_for_user(exc.value)
    assert err.value.field == "openai_model" and "gpt-9" not in str(err.value) and "local-model" in str(err.value)


def test_server_error_is_retried_then_answered(llm):
    fake, make = llm
    fake.script(Reply(500, {"error": "llama runner process has terminated: exit status 2"}))
    gen = run(brief(), make(), seed=2)
    assert not gen.fell_back and [a.outcome for a in gen.attempts] == ["unavailable", "ok"]


def test_server_error_every_time_falls_back_with_the_reason(llm):
    fake, make = llm
    fake.model = lambda body: Reply(500, {"error": "llama runner process has terminated: exit status 2"})
    b = brief()
    gen = run(b, make(), seed=2, max_attempts=2)
    assert gen.fell_back and len(fake.chats()) == 2
    note = gen.script.notes[0]
    # the status is said; the server's own words are not (a workflow's server could read anything back)
    assert "answered HTTP 500" in note and "llama runner" not in note
    assert_valid(gen, b)


def test_overloaded_server_503(ollama):
    ollama.script(Reply(503, {"error": "server busy, please try again.  maximum pending requests exceeded"}))
    gen = run(brief(), ollama_backend(ollama))
    assert not gen.fell_back and len(ollama.chats()) == 2


def test_a_hang_past_the_timeout_falls_back(llm):
    fake, make = llm
    fake.script(HANG)
    b = brief()
    gen = run(b, make(timeout=1.0), seed=6)
    assert gen.fell_back and len(fake.chats()) == 1  # a hang is not retried
    assert "gave no answer within 1 s" in gen.script.notes[0]
    assert gen.script.scenes == write_template_script(b, seed=6).scenes


@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_a_server_that_is_down_falls_back(kind):
    b = brief()
    backend = (OllamaBackend("qwen2.5:7b", closed_url(), timeout=5) if kind == "ollama"
               else OpenAIBackend("m", closed_url() + "/v1", timeout=5))
    gen = run(b, backend, seed=1)
    assert gen.fell_back and "not reachable" in gen.script.notes[0]
    assert gen.script.source == "template"
    assert_valid(gen, b)


def test_a_refused_request_400_falls_back(ollama):
    ollama.script(Reply(400, {"error": "invalid format: \"\\\"yaml\\\"\"; expected \"json\" or a valid JSON Schema object"}))
    gen = run(brief(), ollama_backend(ollama))
    assert gen.fell_back and "refused the request (HTTP 400)" in gen.script.notes[0]
    assert "invalid format" not in gen.script.notes[0]


def test_truncated_answer_is_named(ollama):
    ollama.script(lambda body: Reply(200, {"model": "qwen2.5:7b", "created_at": "2025-10-01T00:00:00Z",
                                           "message": {"role": "assistant", "content": '{"title": "Acme", "scenes": [{"seg'},
                                           "done": True, "done_reason": "length"}))
    gen = run(brief(), ollama_backend(ollama))
    assert not gen.fell_back
    assert "cut off at the model's output limit" in sent_messages(ollama)[1][-1]["content"]


# ------------------------------------------------------------------ keys and settings
def test_openai_key_comes_from_the_environment_and_never_shows(oai, monkeypatch):
    monkeypatch.setenv("ADREEL_LLM_KEY_TEST", "sk-wrong-0000000000000000")
    with pytest.raises(LLMError) as exc:
        run(brief(), openai_backend(oai))
    with pytest.raises(AdReelInputError) as err:
        raise_for_user(exc.value)
    msg = str(err.value)
    assert err.value.field == "api_key_env" and "ADREEL_LLM_KEY_TEST" in msg and "401" in msg
    assert "sk-wrong-0000000000000000" not in msg and "sk-wrong-000" not in msg
    monkeypatch.delenv("ADREEL_LLM_KEY_TEST")
    with pytest.raises(LLMError) as exc:
        run(brief(), openai_backend(oai))
    assert "is not set" in str(exc.value)


def test_the_key_widget_holds_a_name_never_a_key():
    with pytest.raises(LLMError) as exc:
        OpenAIBackend("m", "http://127.0.0.1:1/v1", api_key_env="sk-proj-abcdef123456")
    assert "looks like an API key itself" in str(exc.value) and "abcdef" not in str(exc.value)
    assert exc.value.field == "api_key_env"


def test_base_url_from_the_environment(monkeypatch, oai):
    monkeypatch.setenv("OPENAI_BASE_URL", oai.url + "/v1/")
    backend = OpenAIBackend("local-model", "", api_key_env="ADREEL_LLM_KEY_TEST", timeout=10)
    assert backend.base_url == oai.url + "/v1"
    assert not run(brief(), backend).fell_back


def test_host_from_ollama_host(monkeypatch, ollama):
    monkeypatch.setenv("OLLAMA_HOST", ollama.url.replace("http://", ""))
    backend = OllamaBackend("qwen2.5:7b", "", timeout=10)
    assert backend.host == ollama.url
    assert not run(brief(), backend).fell_back


@pytest.mark.parametrize("value,sent", [("10m", "10m"), ("0", 0), ("-1", 3600), ("300", 300), ("1h30m", 3600),
                                        ("45m", "45m")])
def test_keep_alive_reaches_ollama_in_its_form(ollama, value, sent):
    assert parse_keep_alive(value) == sent
    run(brief(), ollama_backend(ollama, keep_alive=value))
    assert ollama.chats()[-1].body["keep_alive"] == sent


def test_bad_keep_alive_names_the_widget():
    with pytest.raises(LLMError) as exc:
        parse_keep_alive("forever")
    assert exc.value.field == "keep_alive"


# ------------------------------------------------------------------ variants
def test_seed_decides_the_llm_script(ollama):
    b = brief()
    a1 = run(b, ollama_backend(ollama), seed=11).script
    a2 = run(b, ollama_backend(ollama), seed=11).script
    others = {run(b, ollama_backend(ollama), seed=s).script.model_dump_json() for s in (12, 13, 14)}
    assert a1 == a2
    assert a1.model_dump_json() not in others and len(others) == 3
    assert [r.body["options"]["seed"] for r in ollama.chats()] == [11, 11, 12, 13, 14]


# ------------------------------------------------------------------ the bar itself
def test_the_bar_names_what_is_wrong():
    b = brief(duration_seconds=10)
    s = write_template_script(b, seed=0)
    bar = bar_for(b)
    assert bar.check(s) == []
    bad = s.model_copy(deep=True)
    bad.scenes[-1].on_screen_text = "Buy it"
    bad.scenes[-1].narration = "Buy it."
    bad.scenes[0].narration = "This is a far too long narration that nobody could ever say in a few seconds " * 2
    found = {str(i) for i in bar.check(bad)}
    assert any(i.startswith("scenes[2].on_screen_text: the brief's call to action") for i in found)
    assert any(i.startswith("scenes[0].narration:") and "words take about" in i for i in found)


def test_a_line_the_bar_passes_is_said_inside_its_scene_and_languages_are_told_apart():
    from nodes.engine.speech.fit import narration_fits, narration_seconds, scene_seconds_for, speak_line, speech_room
    from nodes.engine.speech.voice import default_voice
    for text, lang in [("one two three four five six", "en"), ("Shop now at acme.com", "en"),
                       ("지금 바로 구매하세요", "ko")]:
        scene = scene_seconds_for(narration_seconds(text, lang))  # the line at its voice's pace, lead-in and breath
        assert narration_fits(text, lang, scene) and not narration_fits(text, lang, scene / 2)
        # the voice SceneNarration speaks with says it inside that scene, leaving the lead-in and breath free
        said = speak_line(text, lang, default_voice(lang), scene).speech.duration
        assert 0 < said <= speech_room(scene) + 1e-6, (text, said, scene)
    # an address is said as words ("acme dot com"): it takes longer than the name alone
    assert narration_seconds("Shop now at acme.com", "en") > narration_seconds("Shop now at acme", "en") + 0.2
    assert language_problem("Buy the best vacuum for your home today", "ko")
    assert language_problem("지금 바로 아크미에서 만나보세요", "ko") is None
    assert language_problem("Acme 로보청소기 X2, 지금 만나보세요", "ko", ["Acme"]) is None
    assert "Spanish" in language_problem("Compra ahora el mejor robot de la casa para tu familia", "en")
    assert language_problem("Buy the best robot for your home and your family", "en") is None


def test_structure_rules():
    for n in range(1, 12):
        plan = structure_for(n)
        assert len(plan) == n and plan[-1] == "cta" and (n == 1 or plan[0] == "hook")
    b = brief()
    s = write_template_script(b, seed=0)
    swapped = s.model_copy(deep=True)
    swapped.scenes[0].segment, swapped.scenes[-1].segment = "cta", "hook"
    msgs = " ".join(map(str, bar_for(b).check(swapped)))
    assert "open on a hook" in msgs and "close on the cta" in msgs


def test_json_schema_is_derived_from_the_scene_model():
    schema = json_schema(plan_for(brief()))
    scene = schema["properties"]["scenes"]["items"]
    fields = set(Scene.model_fields) - {"index", "start", "end"} | {"duration"}
    assert set(scene["properties"]) == fields == set(scene["required"])
    # every choice the schema offers the LLM is one AdReel then accepts, and a choice outside it is refused by name
    b = brief()
    answer = json.loads(write_template_script(b, seed=0).model_dump_json(include={"title", "scenes"}))
    for sc in answer["scenes"]:
        sc["duration"] = round(sc.pop("end") - sc.pop("start"), 3)
        sc.pop("index")
    for field in ("camera", "transition", "segment"):
        offered = scene["properties"][field]["enum"]
        assert len(offered) >= 2
        for value in offered:
            trial = json.loads(json.dumps(answer))
            trial["scenes"][1][field] = value
            assert getattr(to_script(trial, b, "llm").scenes[1], field) == value
        trial["scenes"][1][field] = "spin-around"
        with pytest.raises(AnswerProblem) as exc:
            to_script(trial, b, "llm")
        assert f"scenes[1].{field}" in str(exc.value)
    # a narration longer than the schema tells the LLM is refused, naming the field
    trial = json.loads(json.dumps(answer))
    trial["scenes"][1]["narration"] = "word " * (scene["properties"]["narration"]["maxLength"] // 5 + 1)
    with pytest.raises(AnswerProblem) as exc:
        to_script(trial, b, "llm")
    assert "scenes[1].narration" in str(exc.value)
    assert schema["properties"]["scenes"]["minItems"] == 4 and schema["properties"]["scenes"]["maxItems"] == 6
    assert "maxLength" not in json.dumps(json_schema(None, portable=True))


# ------------------------------------------------------------------ reference pacing
def reference(cuts, duration, structure=()):
    edges = [0.0, *cuts, duration]
    shots = [b - a for a, b in zip(edges, edges[1:])]
    shots_sorted = sorted(shots)
    return ReferenceStyle(duration_seconds=duration, shot_count=len(shots), mean_shot_seconds=duration / len(shots),
                          median_shot_seconds=shots_sorted[len(shots) // 2], shot_boundaries=list(cuts),
                          structure=list(structure), aspect_ratio="9:16")


def test_llm_script_follows_a_reference_pacing_and_structure(ollama):
    ref = reference([1.2, 3.2, 4.0, 7.0], 8.5, ["hook", "problem", "solution", "proof", "cta"])
    b = brief(duration_seconds=8.5)
    gen = run(b, ollama_backend(ollama), reference=ref, seed=0)
    assert_valid(gen, b)
    assert not gen.fell_back and gen.bar.plan.source == "reference"
    assert [sc.segment for sc in gen.script.scenes] == ref.structure
    assert [round(sc.duration, 2) for sc in gen.script.scenes] == pytest.approx([1.1, 2.1, 0.8, 3.0, 1.5], abs=0.11)
    assert "exactly 5 scenes" in sent_messages(ollama)[0][1]["content"]
    assert ollama.chats()[0].body["format"]["properties"]["scenes"]["minItems"] == 5


def test_template_follows_a_reference_pacing_at_another_length():
    ref = reference([1.0, 2.0, 3.0, 4.0, 5.0], 6.0)  # 1 s shots
    b = brief(duration_seconds=12)
    gen = asyncio.run(generate_script(b, None, ScriptOptions(reference=ref)))
    assert [sc.duration for sc in gen.script.scenes] == pytest.approx([1.0] * 12, abs=0.011)
    assert gen.script.scenes[0].segment == "hook" and gen.script.scenes[-1].segment == "cta"
    assert gen.bar.check(gen.script) == []


def test_an_llm_ignoring_the_reference_pacing_is_sent_back(ollama):
    ref = reference([2.0, 4.0, 6.0], 8.0)
    b = brief(duration_seconds=8.0)
    ollama.script(lambda body: json.dumps({"title": "t", "scenes": [
        {"segment": "hook", "duration": 4, "on_screen_text": "Meet RoboVac X2", "narration": "Acme RoboVac X2.",
         "visual_direction": "", "image_prompt": "robot vacuum", "negative_prompt": "", "camera": "zoom_in",
         "transition": "cut", "music_mood": "", "brand_elements": []},
        {"segment": "cta", "duration": 4, "on_screen_text": "Shop now at acme.com", "narration": "Shop now at acme.com",
         "visual_direction": "", "image_prompt": "robot vacuum", "negative_prompt": "", "camera": "zoom_in",
         "transition": "cut", "music_mood": "", "brand_elements": []}]}))
    gen = run(b, ollama_backend(ollama), reference=ref)
    assert "2 scenes; the reference pacing asks for 4" in sent_messages(ollama)[1][-1]["content"]
    assert not gen.fell_back and len(gen.script.scenes) == 4


def test_given_shot_length(ollama):
    b = brief(duration_seconds=12)
    gen = run(b, ollama_backend(ollama), shot_seconds=2.0)
    assert not gen.fell_back and len(gen.script.scenes) == 6


# ------------------------------------------------------------------ editing
def test_an_edited_script_replaces_the_generation():
    b = brief()
    plan = plan_for(b)
    s = write_template_script(b, seed=2)
    data = json.loads(s.model_dump_json())
    data["scenes"][1]["on_screen_text"] = "Edited: hours back every week"
    edited = parse_edited_script(json.dumps(data), b, plan)
    assert edited.source == "edited" and edited.scenes[1].on_screen_text == "Edited: hours back every week"
    assert edited.notes == ["edited by hand: this script replaces the generated one"]


@pytest.mark.parametrize("change,field,fragment", [
    (lambda d: d["scenes"][2].update(camera="dolly"), "edited_script.scenes[2].camera", "is not one of zoom_in"),
    (lambda d: d["scenes"][1].update(end=d["scenes"][1]["end"] + 1.0), "edited_script.scenes[2].start",
     "previous scene ends at"),
    (lambda d: d["scenes"][4].update(on_screen_text="Bye", narration="Bye"), "edited_script.scenes[4].on_screen_text",
     "call to action"),
    (lambda d: d["scenes"][0].update(narration="word " * 40), "edited_script.scenes[0].narration", "40 words"),
    (lambda d: d["scenes"][3].pop("end"), "edited_script.scenes[3].end", "is missing"),
])
def test_a_bad_edit_names_the_scene_and_field(change, field, fragment):
    b = brief()
    data = json.loads(write_template_script(b, seed=2).model_dump_json())
    change(data)
    with pytest.raises(AdReelInputError) as exc:
        parse_edited_script(json.dumps(data), b, plan_for(b))
    assert exc.value.field == field, str(exc.value)
    assert fragment in str(exc.value)


def test_an_edit_that_is_not_json():
    with pytest.raises(AdReelInputError) as exc:
        parse_edited_script("{scenes: [", brief(), plan_for(brief()))
    assert exc.value.field == "edited_script" and "is not JSON" in str(exc.value)


# ------------------------------------------------------------------ the fake keeps Ollama's contract
def test_a_model_error_from_ollama_reaches_the_user_and_the_template_takes_over(ollama):
    """Ollama answers a failed model run with HTTP 500 {"error": …} (the shape of its API): AdReel says so and
    falls back; it never shows the raw body nor hangs."""
    b = Brief(**EN)
    ollama.script(StreamError("an error was encountered while running the model"),
                  StreamError("an error was encountered while running the model"))
    gen = run(b, ollama_backend(ollama), seed=2, max_attempts=2)
    assert gen.fell_back and gen.script.source == "template"
    assert "answered HTTP 500" in gen.script.notes[0]
    assert "an error was encountered while running the model" not in gen.script.notes[0]
    assert all(r.body["stream"] is False for r in ollama.chats())
    assert_valid(gen, b)
