"""The one safety layer (nodes/engine/cloud): redaction, log filter, key lookup, https and destination
policy, LLM key binding, Retry-After, capped reads — and the LLM-answer parsing it protects (size, depth)."""
from __future__ import annotations

import asyncio
import base64
import email.utils
import io
import json
import logging
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import httpx
import pytest

from fakes.llm_servers import Drip, FakeOllama, FakeOpenAICompatible, Redirect, Reply
from nodes.engine.cloud.http import (InsecureURL, ReadDeadline, ResponseTooLarge, check_destination,
                                     parse_retry_after, read_capped, require_https)
from nodes.engine.cloud.credentials import looks_like_key
from nodes.engine.cloud.llm_policy import PolicyError, check_key_name, check_llm_destination
from nodes.engine.cloud.redaction import redact, register_secret
from nodes.engine.cloud.secrets import find_key
from nodes.engine.models import AdReelInputError, Brief
from nodes.engine.script.backends import LLMConfigError
from nodes.engine.script.generate import generate_script, parse_edited_script
from nodes.engine.script.ollama_backend import OllamaBackend, parse_keep_alive, resolve_host
from nodes.engine.script.openai_backend import OpenAIBackend
from nodes.engine.script.llm import ScriptOptions
from nodes.engine.script.plan import plan_for
from nodes.engine.script.schema import AnswerProblem, parse_answer

BRIEF = Brief(brand="Acme", product="RoboVac X2", cta="Shop now at acme.com", audience="busy parents",
              duration_seconds=10)


# ============================================================ masking: every pattern
@pytest.mark.parametrize("text,leak", [
    ("GET https://b.s3.amazonaws.com/k.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F2025"
     "&X-Amz-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f0&X-Amz-Security-Token=FwoGZXIvYXdzEJr", ["AKIAEXAMPLE",
                                                                                            "0f1e2d3c4b5a",
                                                                                            "FwoGZXIvYXdzEJr"]),
    ("https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4&X-Goog-Credential=svc%40p.iam&X-Goog-Signature="
     "a1b2c3d4e5f60718293a", ["a1b2c3d4e5f60718293a", "svc%40p.iam"]),
    ("https://acct.blob.core.windows.net/c/b?sv=2022&sig=Zm9vYmFyYmF6cXV4%3D", ["Zm9vYmFyYmF6cXV4"]),
    ("postgres login password=hunter2hunter2 failed", ["hunter2hunter2"]),
    ('{"client_secret": "cs-9f8e7d6c5b4a"}', ["cs-9f8e7d6c5b4a"]),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY", ["wJalrXUtnFEMI"]),
    ("Authorization: Token r8_AbCdEfGhIjKlMnOpQrStUv12", ["r8_AbCdEfGhIjKlMnOpQrStUv12"]),
    ("curl -H 'Token r8_AbCdEfGhIjKlMnOpQrStUv12'", ["r8_AbCdEfGhIjKlMnOpQrStUv12"]),
    ("header was Key 1f2e3d4c-5b6a-7980:abcdef0123456789", ["abcdef0123456789", "1f2e3d4c-5b6a-7980"]),
    ("xi-api-key: 4f3e2d1c0b9a88776655", ["4f3e2d1c0b9a88776655"]),
    ("Bearer sk-proj-AAAABBBBCCCCDDDD1234", ["sk-proj-AAAABBBBCCCCDDDD1234"]),
    ("gsk_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP in a log", ["gsk_abcdefghij"]),
    ("hf_AbCdEfGhIjKlMnOpQrStUvWxYz and ghp_AbCdEfGhIjKlMnOpQrStUvWx", ["hf_AbCd", "ghp_AbCd"]),
    ("key AIzaSyA-1234567890abcdefghijklmnopq", ["AIzaSyA-1234567890"]),
])
def test_each_credential_shape_is_masked(text, leak):
    out = redact(text)
    for part in leak:
        assert part not in out, out
    assert "***" in out


def test_ordinary_text_is_left_alone():
    for text in ("Key frames are 2 seconds apart", "the token budget is 4096", "scene 3: a bright kitchen",
                 "https://api.openai.com/v1/chat/completions", "password reset email sent"):
        assert redact(text) == text


# ============================================================ masking: registered keys, partial and encoded
SECRET = "canary-Zx9Qw8Er7Ty6Ui5Op4As3Df2"


@pytest.fixture(scope="module", autouse=True)
def registered():
    register_secret(SECRET)


@pytest.mark.parametrize("cut", [8, 12, 20, len(SECRET) - 1])
def test_a_body_cut_mid_key_does_not_leak_the_prefix(cut):
    body = ('{"error": "Incorrect API key provided: ' + SECRET)[: 40 + cut]
    out = redact(body)
    assert SECRET[:8] not in out and "***" in out


def test_base64_and_url_encoded_forms_are_masked():
    for prefix in (b"", b"u:", b"ab:"):  # every base64 alignment
        enc = base64.b64encode(prefix + SECRET.encode()).decode()
        out = redact(f"Authorization header was {enc} (sent)")
        core = base64.b64encode(SECRET.encode()).decode()[4:16]
        assert enc not in out and core not in out
        inner = enc[4:-4]
        assert inner not in out, (prefix, out)
    assert redact("q=" + quote(SECRET + "/+", safe="")) .count(SECRET[:8]) == 0
    urlsafe = base64.urlsafe_b64encode(SECRET.encode()).decode()
    assert urlsafe[:12] not in redact("token in a url " + urlsafe)


def test_a_secret_registered_once_is_masked_in_every_layers_errors():
    """One registry: a secret registered by the storage config is masked in what providers, the LLM backends
    and storage raise (each used to keep its own list)."""
    from nodes.engine.providers.errors import ProviderError
    from nodes.engine.script.backends import LLMUnavailable
    from nodes.engine.storage.errors import StorageError
    register_secret("storage-secret-KJH45lkj98")
    for err in (ProviderError("x storage-secret-KJH45lkj98 y", provider="luma"),
                LLMUnavailable("x storage-secret-KJH45lkj98 y"), StorageError("x storage-secret-KJH45lkj98 y")):
        assert "storage-secret-KJH45lkj98" not in str(err), type(err).__name__
        assert "x " in str(err) and " y" in str(err)  # the rest of the message stays readable


# ============================================================ masking: logs and tracebacks
@pytest.fixture
def root_stream():
    """A handler on the root logger, added AFTER the filter was installed (as ComfyUI's may be)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old)


@pytest.mark.parametrize("name", ["adreel.upload", "AdReel", "adreel.providers.luma.child", "adreel.x.y.z",
                                  "some.other.pack", ""])
def test_every_logger_is_redacted_including_children_and_the_root(root_stream, name):
    log = logging.getLogger(name) if name else logging.getLogger()
    log.warning("sending %s to %s", {"Authorization": f"Bearer {SECRET}"}, "https://h/?X-Amz-Signature=abcdef12")
    out = root_stream.getvalue()
    assert SECRET not in out and SECRET[:8] not in out and "abcdef12" not in out and "***" in out


def test_tracebacks_are_redacted_as_comfyui_logs_them(root_stream):
    def fail():
        raise RuntimeError(f"upstream said: invalid key {SECRET}")

    try:
        fail()
    except RuntimeError:
        logging.error(traceback.format_exc())  # ComfyUI's execution.py does exactly this
        logging.getLogger("adreel.script").exception("ScriptLLM failed")
    out = root_stream.getvalue()
    assert "RuntimeError" in out and "upstream said" in out and "Traceback" in out
    assert SECRET not in out and SECRET[:8] not in out


def test_log_records_are_redacted_for_pytest_caplog_too(caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("adreel.storage.spool").info("put %s", f"password={SECRET}")
    assert SECRET not in caplog.text and "password=***" in caplog.text


# ============================================================ one key lookup
def test_key_lookup_environment_then_secrets_file(tmp_path, caplog):
    f = tmp_path / "secrets.json"
    f.write_text(json.dumps({"OPENAI_API_KEY": "from-file-0000111122223333", "groq": "by-provider-4444555566"}))
    f.chmod(0o644)
    env = {"ADREEL_SECRETS_FILE": str(f)}
    caplog.set_level(logging.WARNING)
    key = find_key(["OPENAI_API_KEY"], environ=env)
    assert key.reveal() == "from-file-0000111122223333" and "secrets file" in key.source
    assert "readable by other users" in caplog.text and "chmod 600" in caplog.text
    assert find_key(["OPENAI_API_KEY"], environ={**env, "OPENAI_API_KEY": "env-wins-99998888"}).reveal() == \
        "env-wins-99998888"
    assert find_key(["GROQ_API_KEY"], "groq", environ=env).reveal() == "by-provider-4444555566"
    assert find_key(["NOPE"], environ=env) is None
    assert "from-file-0000111122223333" not in redact("x from-file-0000111122223333")  # registered on read
    assert "from-file" not in repr(key)


# ============================================================ https and destination policy
def test_require_https():
    assert require_https("https://api.example.com/v1/", "X") == "https://api.example.com/v1"
    assert require_https("http://127.0.0.1:8000/v1", "X", allow_loopback_http=True) == "http://127.0.0.1:8000/v1"
    for bad in ("http://api.example.com/v1", "ftp://h/x", "https://user:pw@h/x", "http://10.0.0.5/v1"):
        with pytest.raises(InsecureURL):
            require_https(bad, "X", allow_loopback_http=True)
    with pytest.raises(InsecureURL):
        require_https("http://127.0.0.1:8000/v1", "X")


@pytest.mark.parametrize("url,kind", [
    ("http://169.254.169.254/latest/meta-data", "metadata"), ("http://[fd00:ec2::254]/", "metadata"),
    ("http://100.100.100.200/", "metadata"), ("http://[fe80::1]:80/", "metadata"),
    ("http://10.0.0.5:9200", "private"), ("http://192.168.1.20:11434", "private"), ("http://172.20.0.2", "private"),
    ("http://[fd12::1]/", "private"),
])
def test_private_and_metadata_destinations_are_refused(url, kind):
    with pytest.raises(InsecureURL, match="cloud-metadata" if kind == "metadata" else "private network"):
        check_destination(url, "ollama_host")
    if kind == "private":
        check_destination(url, "ollama_host", allow_private=True)
    else:  # metadata stays refused even when private ranges are allowed
        with pytest.raises(InsecureURL):
            check_destination(url, "ollama_host", allow_private=True)
    host = url.split("//")[1].split("/")[0]
    check_destination(url, "ollama_host", trusted=[host.strip("[]").rsplit(":", 1)[0] if "]" not in host
                                                   else host.split("]")[0].strip("[")])


def test_a_name_that_resolves_to_a_metadata_address_is_refused():
    resolver = lambda host, port: [__import__("ipaddress").ip_address("169.254.169.254")]  # noqa: E731
    with pytest.raises(InsecureURL):
        check_destination("http://metadata.attacker.example/", "x", resolver=resolver)


# ============================================================ key names and key binding
@pytest.mark.parametrize("value", [
    "gsk_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5oQ7sU9wY1aC3eG5",
    "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345", "r8_AbCdEfGhIjKlMnOpQrStUvWxYz01234", "ghp_AbCdEfGhIjKlMnOpQrStUvWx0123456789",
    "fw_3ZbCdEfGhIjKlMnOpQrStUv", "AIzaSyA-1234567890abcdefghijklmnopqrs", "sk-proj-abcdef1234567890",
    "sk_live_abcdef", "Xk3mP9qR2sT7vW4yZ6aB8cD1eF5gH0jK",  # Mistral-style, no prefix
    "0123456789abcdef0123456789abcdef",
])
def test_a_pasted_key_is_refused_without_echo(value):
    assert looks_like_key(value, name_expected=True)
    with pytest.raises(PolicyError) as exc:
        check_key_name(value)
    assert exc.value.field == "api_key_env" and "looks like an API key" in str(exc.value)
    assert value not in str(exc.value) and value[:8] not in str(exc.value)


@pytest.mark.parametrize("name", ["MINIO_SECRET_KEY", "AWS_SECRET_ACCESS_KEY", "LUMA_API_KEY", "HF_TOKEN", "HOME",
                                  "PATH", "ADREEL_LLM_KEY_", "adreel_llm_key_x"])
def test_only_allowlisted_variables_may_be_named(name):
    with pytest.raises(PolicyError, match="names a variable AdReel may not send"):
        check_key_name(name)


@pytest.mark.parametrize("value", ["AKIAIOSFODNN7EXAMPLE", "ABCD1234EFGH5678IJKL", "QWERTYUIOPASDFGHJKLZXCVB"])
def test_an_uppercase_token_is_refused_and_never_echoed(value):
    with pytest.raises(PolicyError) as exc:
        check_key_name(value)
    assert value not in str(exc.value) and value[:8] not in str(exc.value)


def test_widget_problems_are_refused_at_prompt_whatever_the_backend():
    from nodes.engine.cloud.llm_policy import widget_problem
    pasted = "gsk_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5oQ7s"
    for backend in ("ollama", "openai", "template"):
        msg = widget_problem(backend, api_key_env=pasted)
        assert msg.startswith("api_key_env: looks like an API key") and pasted[:8] not in msg
        msg = widget_problem(backend, openai_base_url="https://me:sk-abcdef0123456789@gw.example.com/v1")
        assert msg.startswith("openai_base_url: must not carry") and "sk-abc" not in msg
        assert widget_problem(backend, ollama_host="http://u:pw@10.0.0.5:11434").startswith("ollama_host:")
    assert widget_problem("ollama", api_key_env="MINIO_SECRET_KEY") is None  # not used by this backend
    msg = widget_problem("openai", api_key_env="MINIO_SECRET_KEY")
    assert msg.startswith("api_key_env: names a variable AdReel may not send") and "MINIO" not in msg
    assert widget_problem("openai", "OPENAI_API_KEY", "http://127.0.0.1:8000/v1", "") is None


def test_allowed_names():
    assert check_key_name("") == "OPENAI_API_KEY"
    assert check_key_name("none") is None and check_key_name("NONE") is None
    for ok in ("OPENAI_API_KEY", "GROQ_API_KEY", "ADREEL_LLM_KEY_LAB", "ADREEL_LLM_KEY_VLLM_2"):
        assert check_key_name(ok) == ok


def test_a_key_goes_only_to_its_configured_host():
    env = {"OPENAI_BASE_URL": "https://gw.example.com/v1", "ADREEL_LLM_URL_LAB": "http://127.0.0.1:8000/v1",
           "ADREEL_LLM_ALLOWED_HOSTS": "llm.example.org, 127.0.0.1:9999"}
    ok = [("https://gw.example.com/v1", "OPENAI_API_KEY"), ("https://gw.example.com:443/other", "OPENAI_API_KEY"),
          ("http://127.0.0.1:8000/v1", "ADREEL_LLM_KEY_LAB"), ("https://llm.example.org/v1", "OPENAI_API_KEY"),
          ("http://127.0.0.1:9999/v1", "GROQ_API_KEY"), ("http://attacker.example:8000/v1", None)]
    for url, key in ok:
        check_llm_destination(url, key, environ=env)
    refused = [("http://attacker.example:8000/v1", "OPENAI_API_KEY"),        # a host of the workflow's choice
               ("https://api.openai.com/v1", "OPENAI_API_KEY"),               # not the configured one any more
               ("http://127.0.0.1:8001/v1", "ADREEL_LLM_KEY_LAB"),            # another port
               ("https://gw.example.com/v1", "ADREEL_LLM_KEY_LAB"),           # another key's host
               ("http://127.0.0.1:8000/v1", "ADREEL_LLM_KEY_OTHER"),          # a key with no URL configured
               ("http://llm.example.org/v1", "OPENAI_API_KEY")]               # allowlisted, but http with a key
    for url, key in refused:
        with pytest.raises(PolicyError) as exc:
            check_llm_destination(url, key, environ=env)
        assert exc.value.field == "openai_base_url"
    # the default binding: OPENAI_API_KEY → api.openai.com only
    check_llm_destination("https://api.openai.com/v1", "OPENAI_API_KEY", environ={})
    with pytest.raises(PolicyError, match="only sent to api.openai.com"):
        check_llm_destination("https://proxy.example.net/v1", "OPENAI_API_KEY", environ={})


def test_keyless_requests_follow_the_destination_rules():
    with pytest.raises(PolicyError, match="cloud-metadata"):
        check_llm_destination("http://169.254.169.254/latest", None, "ollama_host", environ={})
    with pytest.raises(PolicyError, match="private network"):
        check_llm_destination("http://10.0.0.5:11434", None, "ollama_host", environ={})
    check_llm_destination("http://10.0.0.5:11434", None, "ollama_host", environ={"ADREEL_LLM_ALLOW_PRIVATE": "1"})
    check_llm_destination("http://10.0.0.5:11434", None, "ollama_host", environ={"OLLAMA_HOST": "10.0.0.5:11434"})


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://127.9.9.9:22", "http://localhost:6379",
                                 "http://LOCALHOST.:6379", "http://db.localhost/", "http://[::1]:5432",
                                 "http://[::ffff:127.0.0.1]:11434", "http://0.0.0.0:80", "http://[fe80::1%25eth0]/"])
def test_keyless_requests_to_loopback_are_off_unless_the_operator_allows_the_host(url):
    """A visitor's widget URL must not turn ScriptLLM into a scanner of the server's own ports."""
    with pytest.raises(PolicyError) as exc:
        check_llm_destination(url, None, "openai_base_url", environ={})
    assert exc.value.field == "openai_base_url"
    host = url.split("//")[1].split("/")[0].rsplit(":", 1)[0].lower()
    assert host.strip("[]") not in str(exc.value) or host in ("localhost",)  # the host is never repeated
    resolved = lambda h, p: [__import__("ipaddress").ip_address("127.0.0.1")]  # noqa: E731
    with pytest.raises(PolicyError):  # a public-looking name that resolves to loopback
        check_llm_destination("http://llm.example.com:8000/v1", None, "openai_base_url", environ={},
                              resolve=True, resolver=resolved)
    if "fe80" not in url and "0.0.0.0" not in url:
        check_llm_destination(url, None, "openai_base_url", environ={"ADREEL_LLM_ALLOW_PRIVATE": "1"})
    allowed = url.split("//")[1].split("/")[0].lower().rstrip(".")
    check_llm_destination(url, None, "openai_base_url", environ={"ADREEL_LLM_ALLOWED_HOSTS": allowed})


def test_backends_refuse_before_sending(monkeypatch):
    monkeypatch.setenv("MINIO_SECRET_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-operator-0123456789abcdef")
    with FakeOpenAICompatible(models=("m",)) as attacker:
        for key_env in ("MINIO_SECRET_KEY", "OPENAI_API_KEY"):
            with pytest.raises(LLMConfigError) as exc:
                OpenAIBackend("m", attacker.url + "/v1", key_env)
            assert exc.value.field in ("api_key_env", "openai_base_url")
            assert SECRET not in str(exc.value) and "sk-operator" not in str(exc.value)
        # no key: a loopback server is refused (a port scanner otherwise) ...
        monkeypatch.delenv("OPENAI_API_KEY")
        with pytest.raises(LLMConfigError, match="loopback"):
            OpenAIBackend("m", attacker.url + "/v1", "OPENAI_API_KEY", timeout=10)
        assert attacker.requests == []
        # ... unless the operator allows it; it then gets no Authorization header
        monkeypatch.setenv("ADREEL_LLM_ALLOWED_HOSTS", attacker.url.split("//")[1])
        backend = OpenAIBackend("m", attacker.url + "/v1", "OPENAI_API_KEY", timeout=10)
        asyncio.run(backend.list_models())
        assert attacker.requests and all("Authorization" not in r.headers for r in attacker.requests)
    with pytest.raises(LLMConfigError) as exc:
        OllamaBackend("m", "http://169.254.169.254/latest")
    assert exc.value.field == "ollama_host"
    with pytest.raises(LLMConfigError, match="without a path"):
        resolve_host("http://127.0.0.1:11434/api/../admin")


# ============================================================ redirects, reflection, keep_alive, num_ctx
@pytest.fixture(scope="module")
def fake():
    with FakeOllama(models=("qwen2.5:7b",), hang_seconds=20) as f:
        yield f


@pytest.fixture
def ollama(fake, monkeypatch):
    # the fake stands for an Ollama the operator allows (it listens on loopback)
    monkeypatch.setenv("ADREEL_LLM_ALLOW_PRIVATE", "1")
    return fake.fresh()


def test_a_redirect_is_not_followed(ollama):
    with FakeOllama(models=("qwen2.5:7b",)) as internal:
        ollama.script(Redirect(internal.url + "/api/chat", 307))
        with pytest.raises(LLMConfigError, match=r"redirect \(307\)"):
            asyncio.run(generate_script(BRIEF, OllamaBackend("qwen2.5:7b", ollama.url, timeout=10)))
        assert internal.requests == []


def test_error_bodies_are_not_reflected(ollama):
    reflected = "INTERNAL " + SECRET + " " + "x" * 5000
    ollama.script(Reply(400, {"error": reflected}))
    gen = asyncio.run(generate_script(BRIEF, OllamaBackend("qwen2.5:7b", ollama.url, timeout=10)))
    note = gen.script.notes[0]
    assert "HTTP 400" in note and "INTERNAL" not in note and SECRET[:8] not in note and len(note) < 400
    assert ollama.url.split("//")[1] not in note  # the widget's host is not repeated either


def test_keep_alive_and_context_are_capped(ollama, monkeypatch):
    monkeypatch.setenv("ADREEL_LLM_MAX_KEEP_ALIVE", "600")
    monkeypatch.setenv("ADREEL_LLM_MAX_CONTEXT", "16384")
    asyncio.run(generate_script(BRIEF, OllamaBackend("qwen2.5:7b", ollama.url, keep_alive="-1",
                                                     context_size=262144, timeout=10)))
    body = ollama.chats()[-1].body
    assert body["keep_alive"] == 600 and body["options"]["num_ctx"] == 16384
    assert parse_keep_alive("5m") == "5m" and parse_keep_alive("2h", cap=3600) == 3600


def test_the_ollama_api_key_goes_only_to_the_configured_host(ollama, monkeypatch):
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama-cloud-key-ABCDEF123456")
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:1")
    asyncio.run(generate_script(BRIEF, OllamaBackend("qwen2.5:7b", ollama.url, timeout=10)))
    assert ollama.chats() and all("Authorization" not in r.headers for r in ollama.requests)
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    asyncio.run(generate_script(BRIEF, OllamaBackend("qwen2.5:7b", "", timeout=10)))
    assert ollama.chats()[-1].headers["Authorization"] == "Bearer ollama-cloud-key-ABCDEF123456"


# ============================================================ answer size, linear parse, interrupt
def test_an_oversized_answer_is_not_read(ollama, monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_LLM_ANSWER_BYTES", "20000")
    ollama.script(json.dumps({"title": "x" * 50000}))
    gen = asyncio.run(generate_script(BRIEF, OllamaBackend("qwen2.5:7b", ollama.url, timeout=10), ScriptOptions(max_attempts=3)))
    assert gen.fell_back and "larger than 20000 bytes" in gen.reason
    assert len(ollama.chats()) == 1  # not retried: the same server would send the same


def test_a_slow_drip_ends_at_the_total_time(ollama, monkeypatch):
    monkeypatch.setenv("ADREEL_HTTP_TOTAL_SECONDS", "2")
    ollama.script(Drip("{}", 4, 0.5))  # about 150 bytes at 8 B/s
    t0 = time.monotonic()
    gen = asyncio.run(generate_script(BRIEF, OllamaBackend("qwen2.5:7b", ollama.url, timeout=60), ScriptOptions(max_attempts=1)))
    assert gen.fell_back and "no answer within 2 s" in gen.reason
    assert time.monotonic() - t0 < 30  # generous: the drip alone would take about a minute


def test_the_fence_scan_is_linear():
    """The old regex took ~0.7 s for 32 k characters and grew with the square (≈40 s here)."""
    hostile = "```{" * 60000  # 240 000 characters, under the 256 KB answer cap
    t0 = time.monotonic()
    with pytest.raises(AnswerProblem):
        parse_answer(hostile)
    assert time.monotonic() - t0 < 10  # a generous bound: proves it does not hang
    good = json.dumps({"title": "T", "scenes": []})
    assert parse_answer("Sure!\n```json\n" + good + "\n```\nthanks")[0] == {"title": "T", "scenes": []}
    assert parse_answer("noise ```{ broken ``` then ```" + good + "```")[0]["title"] == "T"
    assert parse_answer("prose {" + good[1:] + " more prose")[0]["title"] == "T"


def test_an_answer_over_the_cap_is_an_answer_problem(monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_LLM_ANSWER_BYTES", "1000")
    with pytest.raises(AnswerProblem, match="more than the 1000 allowed"):
        parse_answer("{" + " " * 2000 + "}")


# ============================================================ depth and bounds
def test_deep_nesting_is_a_field_error_not_a_recursion_error():
    with pytest.raises(AnswerProblem, match="not JSON"):
        parse_answer("[" * 100000)
    with pytest.raises(AnswerProblem):
        parse_answer('{"title": ' + "[" * 100000)
    with pytest.raises(AdReelInputError) as exc:
        parse_edited_script("[" * 100000, BRIEF, plan_for(BRIEF))
    assert exc.value.field == "edited_script"


def test_an_llm_answer_nested_deep_falls_back(ollama):
    ollama.script("[" * 100000, "[" * 100000)
    gen = asyncio.run(generate_script(BRIEF, OllamaBackend("qwen2.5:7b", ollama.url, timeout=10), ScriptOptions(max_attempts=2)))
    assert gen.fell_back and gen.script.source == "template"


@pytest.mark.parametrize("change,field", [
    (lambda s: s["scenes"][0].__setitem__("brand_elements", ["logo"] * 1000), "scenes[0].brand_elements"),
    (lambda s: s["scenes"][1].__setitem__("brand_elements", ["x" * 5000]), "scenes[1].brand_elements"),
    (lambda s: s["scenes"][0].__setitem__("music_mood", "m" * 5000), "scenes[0].music_mood"),
])
def test_edited_script_fields_are_bounded(change, field):
    from nodes.engine.script import write_template_script
    data = json.loads(write_template_script(BRIEF, seed=1).model_dump_json())
    change(data)
    with pytest.raises(AdReelInputError) as exc:
        parse_edited_script(json.dumps(data), BRIEF, plan_for(BRIEF))
    assert exc.value.field == f"edited_script.{field}"


def test_an_edited_script_over_the_text_cap_is_refused(monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_TEXT_CHARS", "5000")
    with pytest.raises(AdReelInputError, match="ADREEL_MAX_TEXT_CHARS") as exc:
        parse_edited_script('{"scenes": []}' + " " * 6000, BRIEF, plan_for(BRIEF))
    assert exc.value.field == "edited_script"


# ============================================================ Retry-After, one parser
def test_retry_after_forms():
    now = time.time()
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert 28 <= parse_retry_after({"Retry-After": email.utils.formatdate(now + 30, usegmt=True)}, now=now) <= 31
    assert parse_retry_after({"Retry-After": email.utils.formatdate(now - 60, usegmt=True)}, now=now) == 0.0
    for bad in ("soon", "nan", "inf", "-inf", ""):
        assert parse_retry_after({"Retry-After": bad}) is None
    assert parse_retry_after({"Retry-After": "-5"}) == 0.0
    assert parse_retry_after(httpx.Headers({"RETRY-AFTER": "7"})) == 7.0
    from nodes.engine.script.backends import retry_after_seconds
    assert retry_after_seconds("4") == 4.0 and retry_after_seconds("soon") is None


# ============================================================ capped reads
class _Big(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        if self.path == "/announced":
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
            return
        self.end_headers()
        try:
            if self.path == "/drip":
                for _ in range(200):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            else:
                for _ in range(100):
                    self.wfile.write(b"y" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def big_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Big)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_read_capped_stops_at_the_cap_and_the_deadline(big_server):
    with httpx.Client(timeout=5) as c:
        with c.stream("GET", big_server + "/big") as r, pytest.raises(ResponseTooLarge):
            read_capped(r, 1_000_000)
        with c.stream("GET", big_server + "/announced") as r, pytest.raises(ResponseTooLarge):
            read_capped(r, 1_000_000)
        t0 = time.monotonic()
        with c.stream("GET", big_server + "/drip") as r, pytest.raises(ReadDeadline):
            read_capped(r, 1_000_000, deadline=time.monotonic() + 1.0)
        assert time.monotonic() - t0 < 20  # the drip lasts 40 s
