"""Round two, as a network user tries it (a real ComfyUI; only /prompt, /history, /queue, /system_stats and
AdReel's routes): no secret read back through an error, no non-finite number stored, no keyless LLM call
to the server's own ports.

A. **No redaction oracle.** The server holds a 128-character ``OPENAI_API_KEY``. A visitor who sends the
   known start of it plus one guessed character, for every character, must get byte-identical answers
   whether the guess is right or wrong: from the estimate route (every parameter) and from node errors
   (/prompt's refusal, /history's execution error). The old masking stopped exactly where a guess stopped
   matching, which gave the key away in about 2,100 GETs.
B. **No NaN in /history or /queue.** Raw JSON bodies with NaN / Infinity tokens at many depths, in any
   node's inputs, in ``extra_data``, and as the prompt's ``number`` ("NaN", "-inf", 1e999 …), then /history
   and /queue parsed with a strict parser; a hypothesis fuzz builds the nested bodies.
C. **No keyless LLM call to loopback** unless the operator allows the host: the fake LLM servers on
   127.0.0.1 receive nothing, an open and a closed port give the same answer, and an allowed server's
   error body is never shown.
"""
from __future__ import annotations

import json
import random
import string
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fakes.llm_servers import FakeOllama, FakeOpenAICompatible, Reply, closed_url
from harness import ComfyServer

pytestmark = pytest.mark.comfy

_rng = random.Random()
ALPHABET = string.ascii_letters + string.digits
OPENAI_KEY = "sk-proj-" + "".join(_rng.choice(ALPHABET + "-_") for _ in range(120))   # 128 characters
MINIO_KEY = "".join(_rng.choice(ALPHABET) for _ in range(40))
ESTIMATE = "/adreel/providers/estimate"

BRIEF = {"brand": "Acme", "product": "RoboVac X2", "audience": "busy parents", "goal": "drive sales",
         "duration_seconds": 6.0, "tone": "confident", "aspect_ratio": "9:16", "language": "en",
         "brand_colors": "#1E3A8A, #F59E0B", "cta": "Shop now at acme.com", "channels": "tiktok"}


def strict_json(raw: bytes):
    def refuse(token):
        raise ValueError(f"non-finite JSON token {token}")
    return json.loads(raw, parse_constant=refuse)


def http(server, path: str, data: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(server.url + path, data=data,
                                 headers={"Content-Type": "application/json"} if data is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def llms():
    """On loopback: an LLM the operator allows (by host:port) and two it does not."""
    with FakeOpenAICompatible(models=("local-model",)) as allowed, \
            FakeOpenAICompatible(models=("local-model",)) as other, FakeOllama() as ollama:
        yield {"allowed": allowed, "other": other, "ollama": ollama}


@pytest.fixture(scope="module")
def server(llms):
    env = {"OPENAI_API_KEY": OPENAI_KEY, "MINIO_SECRET_KEY": MINIO_KEY,
           "ADREEL_LLM_ALLOWED_HOSTS": f"127.0.0.1:{llms['allowed'].port}",
           "ADREEL_SECRETS_FILE": "/nonexistent/adreel-secrets.json"}
    with ComfyServer(env=env) as s:
        yield s
        # the key never reached anything a visitor reads (beyond the short guesses the test itself sent)
        history = http(s, "/history?max_items=100000")[1].decode("utf-8", "replace")
        log = s.log_text()
        for secret in (OPENAI_KEY, MINIO_KEY):
            assert secret[12:40] not in history and secret[12:40] not in log


def script_prompt(**inputs) -> dict:
    base = {"brief": ["1", 0], "backend": "ollama", "seed": 1, "model": "qwen2.5:7b", "timeout_seconds": 20.0,
            "max_attempts": 1}
    base.update(inputs)
    return {"1": {"class_type": "BrandBrief", "inputs": dict(BRIEF)},
            "2": {"class_type": "ScriptLLM", "inputs": base},
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}}}


def outcome(server, prompt: dict, guess: str = "") -> str:
    """What a visitor reads back for ``prompt``: /prompt's refusal, or the execution error / node text in
    /history — with the visitor's own value replaced by a placeholder (ComfyUI itself repeats a refused
    value raw; what must not differ is everything else)."""
    status, raw = http(server, "/prompt", json.dumps({"prompt": prompt}).encode())
    if status != 200:
        body = strict_json(raw)
        # the errors as the editor shows them (ComfyUI's extra_info.received_value is its own raw echo)
        text = json.dumps([(e.get("type"), e.get("message"), e.get("details"))
                           for n in (body.get("node_errors") or {}).values() for e in n.get("errors", [])])
    else:
        pid = json.loads(raw)["prompt_id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            entry = strict_json(http(server, f"/history/{pid}")[1]).get(pid)
            if entry and entry.get("status", {}).get("completed") is not None:
                break
            time.sleep(0.2)
        else:
            raise TimeoutError(pid)
        errors = [d.get("exception_message") for k, d in entry["status"]["messages"] if k == "execution_error"]
        text = json.dumps({"errors": errors, "outputs": entry.get("outputs")}, sort_keys=True)
    return text.replace(guess, "<GUESS>") if guess else text


# ====================================================================== A: no redaction oracle
def estimate_params(guess: str) -> list[dict]:
    """The guess in every parameter of the estimate route (and as a parameter's name, and as an option name)."""
    ok = {"provider": "luma", "model": "ray-2"}
    return [{**ok, "provider": guess}, {**ok, "model": guess}, {**ok, "aspect_ratio": guess},
            {**ok, "durations": guess}, {**ok, "max_cost_usd": guess}, {**ok, "durations": "3", "narrations": guess},
            {**ok, "options_json": json.dumps({guess: [float("nan")]})},
            {**ok, "options_json": json.dumps({"replicate": {guess: -1, "price_usd_per_run": -1}})},
            {**ok, "options_json": json.dumps({"resolution": guess})}, {**ok, guess: "1"},
            {"provider": "replicate", "model": guess}, {**ok, "provider": "auto", "model": guess}]


def get_estimate(server, params: dict) -> tuple[int, bytes]:
    return http(server, ESTIMATE + "?" + urllib.parse.urlencode(params))


def test_a_the_estimate_route_answers_a_right_and_a_wrong_guess_byte_identically(server):
    for known in (8, 9, 12, 40, 100, 127):
        right, wrong = OPENAI_KEY[: known + 1], OPENAI_KEY[:known] + ("A" if OPENAI_KEY[known] != "A" else "B")
        for p_right, p_wrong in zip(estimate_params(right), estimate_params(wrong)):
            a, b = get_estimate(server, p_right), get_estimate(server, p_wrong)
            assert a[0] == 400 and a == b, (known, p_right, a, b)
            # and nothing of the guess comes back, masked or not
            assert OPENAI_KEY[:8].encode() not in a[1] and b"***" not in a[1], a


def test_a_the_scripted_attack_of_the_review_learns_nothing(server):
    """The attack as reported: extend the known start one character at a time, keeping the character whose
    answer shows the longest match. Every candidate must get the same answer, at every position."""
    known = "sk-proj-"
    requests = 0
    for _ in range(3):
        answers = {}
        for c in ALPHABET + "-_":
            answers.setdefault(get_estimate(server, {"provider": known + c + "zz", "model": "ray-2"}), []).append(c)
            requests += 1
        assert len(answers) == 1, f"the answers split the candidates: {[v[:5] for v in answers.values()]}"
        known += OPENAI_KEY[len(known)]  # give the attacker the next character: still nothing to learn
    assert requests == 3 * 64 and server.alive()


def test_a_node_errors_answer_a_right_and_a_wrong_guess_the_same(server, llms):
    """Node errors pass through the secret masking (LLM errors, provider errors): the widget's value is never
    repeated in them, so a right and a wrong guess read back the same."""
    allowed = llms["allowed"]
    for known in (8, 10):
        right, wrong = OPENAI_KEY[: known + 1], OPENAI_KEY[:known] + ("A" if OPENAI_KEY[known] != "A" else "B")
        cases = [
            lambda g: script_prompt(keep_alive=g),                                      # LLMConfigError
            lambda g: script_prompt(backend="openai", openai_model=g, api_key_env="none",  # LLMModelMissing (404)
                                    openai_base_url=allowed.url + "/v1"),
            lambda g: script_prompt(backend="openai", openai_model="m", api_key_env=g),  # /prompt refusal
            lambda g: {"1": {"class_type": "BrandBrief", "inputs": {**BRIEF, "aspect_ratio": g}},
                       "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}},
        ]
        for make in cases:
            a, b = outcome(server, make(right), right), outcome(server, make(wrong), wrong)
            assert a == b, (known, a[:400], b[:400])
            assert OPENAI_KEY[:8] not in a and "***" not in a, a[:600]
    assert server.alive()


# ====================================================================== B: no non-finite number stored
HOSTILE_BODIES = [
    # a stored prompt whose other outputs are valid, NaN nested in ignored inputs, at many depths
    '{"prompt": {"1": {"class_type": "PrimitiveString", "inputs": {"value": "hi"}}, "2": {"class_type": '
    '"PreviewAny", "inputs": {"source": ["1", 0], "junk": {"__value__": [NaN]}, "deep": {"a": {"b": [[[Infinity, '
    '-Infinity, {"c": NaN}]]]}}}}}, "extra_data": {"w": [NaN, {"x": Infinity}]}, "number": NaN}',
    '{"prompt": {"1": {"class_type": "PrimitiveString", "inputs": {"value": "x"}}, "2": {"class_type": '
    '"PreviewAny", "inputs": {"source": ["1", 0]}}, "3": {"class_type": "PrimitiveFloat", "inputs": '
    '{"value": NaN}}, "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}}, "number": "NaN"}',
    '{"prompt": {"1": {"class_type": "PrimitiveString", "inputs": {"value": "y"}}, "2": {"class_type": '
    '"PreviewAny", "inputs": {"source": ["1", 0], "d": {"Infinity": -Infinity}}}}, "number": "-inf"}',
    '{"prompt": {"1": {"class_type": "PrimitiveString", "inputs": {"value": "z"}}, "2": {"class_type": '
    '"PreviewAny", "inputs": {"source": ["1", 0]}}}, "number": 1e999}',
    '{"prompt": {"1": {"class_type": "PrimitiveString", "inputs": {"value": "w"}}, "2": {"class_type": '
    '"PreviewAny", "inputs": {"source": ["1", 0]}}}, "number": "Infinity", "front": true}',
    '{"prompt": {"1": {"class_type": "PrimitiveString", "inputs": {"value": "v"}}, "2": {"class_type": '
    '"PreviewAny", "inputs": {"source": ["1", 0]}}}, "number": [1, NaN]}',
    '{"prompt": {"1": {"class_type": "FFmpegAssemble", "inputs": {"end_card_seconds": {"__value__": [NaN]}}}, '
    '"2": {"class_type": "PrimitiveString", "inputs": {"value": "u"}}, "3": {"class_type": "PreviewAny", '
    '"inputs": {"source": ["2", 0]}}}, "number": 5}',
]


def assert_history_and_queue_are_strict_json(server) -> None:
    for path in ("/history?max_items=100000", "/queue"):
        status, raw = http(server, path)
        assert status == 200
        strict_json(raw)  # raises on NaN / Infinity
    assert server.alive()


def wait_idle(server, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        q = strict_json(http(server, "/queue")[1])
        if not q["queue_running"] and not q["queue_pending"]:
            return
        time.sleep(0.2)
    raise TimeoutError("the queue did not drain")


def test_b_hostile_bodies_leave_history_and_queue_strict_json(server):
    queued = 0
    for body in HOSTILE_BODIES:
        status, raw = http(server, "/prompt", body.encode())
        assert status in (200, 400), (status, raw[:300])
        strict_json(raw)  # /prompt's own answer too
        queued += status == 200
        assert_history_and_queue_are_strict_json(server)
    assert queued >= 5  # the valid outputs of these prompts did run: their bodies were stored
    wait_idle(server)
    assert_history_and_queue_are_strict_json(server)
    history = strict_json(http(server, "/history?max_items=100000")[1])
    assert any("junk" in e["prompt"][2].get("2", {}).get("inputs", {}) for e in history.values())


def test_b_a_link_to_a_missing_node_cannot_stop_the_queue(server):
    """Found by the fuzz below: an input the node does not declare, shaped like a link to a node the prompt does
    not hold, passed ComfyUI's validation and killed the thread that runs the queue (every later prompt waited
    forever). It is removed at /prompt; a declared input linking nowhere is refused there; the queue runs on."""
    def preview(**inputs):
        return {"prompt": {"1": {"class_type": "PrimitiveString", "inputs": {"value": "links"}},
                           "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0], **inputs}}}}
    status, raw = http(server, "/prompt", json.dumps(preview(junk=["nowhere", 0])).encode())
    assert status == 200, raw[:300]
    wait_idle(server, 60)
    status, raw = http(server, "/prompt", json.dumps({"prompt": {"2": {"class_type": "PreviewAny", "inputs": {
        "source": ["nowhere", 0]}}}}).encode())
    assert status == 400, raw[:300]
    status, raw = http(server, "/prompt", json.dumps(preview()).encode())
    assert status == 200, raw[:300]
    wait_idle(server, 60)
    prompt_id = json.loads(raw)["prompt_id"]
    assert strict_json(http(server, f"/history/{prompt_id}")[1])[prompt_id]["status"]["status_str"] == "success"


_leaf = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6),
                  st.text(max_size=8), st.booleans(), st.none(), st.sampled_from(["NaN", "Infinity", "-inf"]))
_nested = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                       max_leaves=25)
_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(
    ["NaN", "nan", "Infinity", "-Infinity", "-inf", "inf", "1e999", "12", "x"]), st.integers(-5, 5),
    st.lists(st.floats(), max_size=2))
FUZZ_TRIED = []


@settings(max_examples=120, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(junk=_nested, extra=_nested, number=_number, core_value=_nested)
def test_b_fuzz_nested_non_finite_values_never_reach_history(server, junk, extra, number, core_value):
    body = {"prompt": {"1": {"class_type": "PrimitiveString", "inputs": {"value": "fuzz"}},
                       "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0], "junk": junk,
                                                                    "wrapped": {"__value__": [core_value]}}},
                       "3": {"class_type": "PrimitiveFloat", "inputs": {"value": core_value}}},
            "extra_data": {"extra": extra}, "number": number}
    raw = json.dumps(body, allow_nan=True).encode()   # NaN / Infinity as the raw JSON tokens Python's json sends
    status, answer = http(server, "/prompt", raw)
    assert status in (200, 400), (status, answer[:300])
    strict_json(answer)
    strict_json(http(server, "/queue")[1])
    FUZZ_TRIED.append(1)


def test_b_after_the_fuzz_history_is_strict_json_and_the_server_serves(server):
    wait_idle(server, 300)
    assert_history_and_queue_are_strict_json(server)
    print(f"fuzz bodies tried: {len(FUZZ_TRIED)}")
    assert len(FUZZ_TRIED) >= 100


# ====================================================================== C: keyless LLM calls and loopback
def fallback_or_error(server, prompt: dict) -> str:
    return outcome(server, prompt)


def test_c_keyless_calls_to_loopback_are_refused_before_anything_is_sent(server, llms):
    other, ollama = llms["other"], llms["ollama"]
    answers = []
    for prompt in (script_prompt(backend="openai", openai_model="m", api_key_env="none",
                                 openai_base_url=other.url + "/v1"),
                   script_prompt(backend="openai", openai_model="m", api_key_env="none",
                                 openai_base_url=other.url.replace("127.0.0.1", "localhost") + "/v1"),
                   script_prompt(backend="openai", openai_model="m", api_key_env="none",
                                 openai_base_url=other.url.replace("127.0.0.1", "[::ffff:127.0.0.1]") + "/v1"),
                   script_prompt(backend="ollama", ollama_host=ollama.url),
                   script_prompt(backend="ollama", ollama_host="http://10.0.0.5:11434"),
                   script_prompt(backend="openai", openai_model="m", api_key_env="none",
                                 openai_base_url="http://169.254.169.254/latest")):
        text = fallback_or_error(server, prompt)
        assert "AdReel sends no request there" in text and "ADREEL_LLM_ALLOWED_HOSTS" in text, text[:500]
        assert str(other.port) not in text and str(ollama.port) not in text and "10.0.0.5" not in text
        answers.append(text)
    assert other.requests == [] and ollama.requests == []
    assert server.alive()


def test_c_an_open_and_a_closed_port_answer_the_same(server, llms):
    """No port scanner: the server's answer does not depend on what listens there."""
    other = llms["other"]
    other.script(Reply(200, {"choices": [{"message": {"content": "SSH-2.0-OpenSSH_9.6 secret banner"}}]}))
    open_port = outcome(server, script_prompt(backend="openai", openai_model="m", api_key_env="none",
                                              openai_base_url=other.url + "/v1"))
    closed = outcome(server, script_prompt(backend="openai", openai_model="m", api_key_env="none",
                                           openai_base_url=closed_url() + "/v1"))
    assert open_port == closed and "banner" not in open_port
    assert other.requests == []


def test_c_an_allowed_server_is_used_but_its_error_body_is_never_shown(server, llms):
    allowed = llms["allowed"]
    allowed.requests.clear()
    allowed.script(Reply(500, {"error": {"message": "ami-id i-0abc internal page " + "INTERNAL-" * 500}}))
    text = outcome(server, script_prompt(backend="openai", openai_model="local-model", api_key_env="none",
                                         openai_base_url=allowed.url + "/v1"))
    assert allowed.chats(), "the operator allowed this host: the request goes out"
    assert all("Authorization" not in r.headers for r in allowed.requests)   # keyless
    assert "HTTP 500" in text and "ami-id" not in text and "INTERNAL" not in text, text[:600]
    assert str(allowed.port) not in text   # the widget's URL is not repeated either
    assert server.alive()
