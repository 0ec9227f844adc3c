"""Attacks on the paid providers — spending, hanging, restarts, keys in options — through a real ComfyUI.

Each test does what any network user of a shared ComfyUI can do — POST an
API-format prompt to ``/prompt``, press Interrupt — against contract-faithful
HTTPS fakes of Runway and fal.ai (tests/fakes/provider_servers.py, trusted
through ADREEL_CA_BUNDLE), and checks from the outside: how many jobs the
fakes were asked to create (what was paid for), the node's error text,
``/history`` parsed strictly (no NaN), wall-time bounds where something must
not hang, the clips folder (no ``.part`` left), and, for a restart, a SIGKILL of the
ComfyUI process mid-job followed by a fresh start and a re-queue. After each
test the server still answers; the last test renders a normal ad and checks
that no canary key reached a history entry, an output or a log line.

The server's environment is the operator's: ``ADREEL_MAX_COST_USD=1.00``
(the spending ceiling), ``ADREEL_MAX_DOWNLOAD_SECONDS=10``, and paid providers
on (``ADREEL_PAID_PROVIDERS=1``) except where a test turns them off.
"""
from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fakes.provider_servers import FakeTLS, FalFake, Reply, RunwayFake, make_sample_mp4
from harness import ComfyServer, PromptError, node_by_type, output_files, short_cloud_prompt
from media import ffprobe, stream

pytestmark = [pytest.mark.comfy, pytest.mark.timeout(900)]

CANARY = {
    "RUNWAY_API_KEY": "key_CANARY-runway-sec-5e8b2d7c91f04a6b",
    "FAL_KEY": "fal-CANARY-sec-id:3c2b1a0f9e8d7c6b",
}
PROVIDER_NODE = "5"
CEILING = 1.00
DOWNLOAD_SECONDS = 10
KLING = "fal-ai/kling-video/v2.1/standard/image-to-video"


@dataclass
class Stack:
    comfy: ComfyServer
    runway: RunwayFake
    fal: FalFake
    env: dict = field(default_factory=dict)

    def reset(self):
        for fake in (self.runway, self.fal):
            fake.reset()
            fake.job_latency = 1.0

    @property
    def paid_on(self) -> bool:
        return self.comfy.env.get("ADREEL_PAID_PROVIDERS") == "1"

    def kill(self):
        """kill -9 of the whole ComfyUI process group: no clean-up of any kind runs."""
        proc = self.comfy.proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        self.comfy.stop()  # closes the log

    def restart(self, **env):
        self.kill()
        self.comfy.env.update(env)
        self.comfy.start()

    def creates(self) -> int:
        return len(self.runway.calls("create")) + len(self.fal.calls("create"))

    def clip_parts(self) -> list[str]:
        folder = Path(self.comfy.folder("output")) / "AdReel" / "provider_clips"
        return sorted(p.name for p in folder.glob("*.part")) if folder.exists() else []


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("sec-providers")
    tls = FakeTLS(base)
    data = make_sample_mp4(base / "sample.mp4").read_bytes()
    runway = RunwayFake(tls, data, valid_key=CANARY["RUNWAY_API_KEY"]).start()
    fal = FalFake(tls, data, valid_key=CANARY["FAL_KEY"]).start()
    closed = "https://127.0.0.1:9"  # providers without a fake here: nothing may reach the internet
    env = {
        **CANARY,
        "ADREEL_CA_BUNDLE": str(tls.ca_path),
        "ADREEL_SECRETS_FILE": str(base / "no-secrets.json"),
        "ADREEL_PROVIDER_POLL_SECONDS": "0.3",
        "ADREEL_PAID_PROVIDERS": "",  # off until a test turns it on (the default)
        "ADREEL_MAX_COST_USD": f"{CEILING:.2f}",
        "ADREEL_MAX_DOWNLOAD_SECONDS": str(DOWNLOAD_SECONDS),
        "XDG_STATE_HOME": str(base / "state"),
        "RUNWAY_BASE_URL": runway.base_url, "FAL_BASE_URL": fal.base_url,
        "LUMA_BASE_URL": closed, "HEYGEN_BASE_URL": closed, "REPLICATE_BASE_URL": closed,
        "GEMINI_BASE_URL": closed + "/v1beta",
        "RUNWAYML_API_SECRET": "", "LUMA_API_KEY": "", "LUMAAI_API_KEY": "", "HEYGEN_API_KEY": "",
        "REPLICATE_API_TOKEN": "", "GEMINI_API_KEY": "", "GOOGLE_API_KEY": "",
        "ADREEL_STORAGE_CONFIG": str(base / "no-storage.json"), "ADREEL_S3_BUCKET": "",
        "ADREEL_SPOOL_DIR": str(base / "spool"),
    }
    server = ComfyServer(env=dict(env))
    try:
        server.start()
        st = Stack(server, runway, fal, env)
        st.reset()
        yield st
    finally:
        server.cleanup()
        runway.stop()
        fal.stop()


@pytest.fixture
def paid(stack):
    if not stack.paid_on:
        stack.restart(ADREEL_PAID_PROVIDERS="1")
    stack.reset()
    return stack


@pytest.fixture
def unpaid(stack):
    if stack.paid_on:
        stack.restart(ADREEL_PAID_PROVIDERS="")
    stack.reset()
    return stack


def cloud_prompt(aspect_ratio: str = "1:1", **provider_inputs) -> dict:
    """The short cloud workflow (9 s, 3 scenes, 720p, ultrafast) made smaller still: 1:1 at 24 fps, what
    every check here needs of the finished MP4 (an h264 video of the brief's length)."""
    prompt = short_cloud_prompt(**provider_inputs)
    assert node_by_type(prompt, "ProviderRender")[0] == PROVIDER_NODE
    node_by_type(prompt, "BrandBrief")[1]["inputs"]["aspect_ratio"] = aspect_ratio
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"]["fps"] = "24"
    return prompt


def _refuse_constant(name):
    raise ValueError(f"{name} in JSON")


def strict_history(comfy: ComfyServer) -> dict:
    """``/history`` as a browser's JSON.parse sees it: NaN / Infinity are errors."""
    with urllib.request.urlopen(f"{comfy.url}/history?max_items=1000", timeout=30) as r:
        return json.loads(r.read(), parse_constant=_refuse_constant)


def still_serving(stack: Stack) -> None:
    assert stack.comfy.alive()
    strict_history(stack.comfy)
    with urllib.request.urlopen(f"{stack.comfy.url}/object_info/ProviderRender", timeout=30) as r:
        assert "ProviderRender" in json.loads(r.read())


def rejected(stack: Stack, prompt: dict) -> str:
    with pytest.raises(PromptError) as exc:
        stack.comfy.queue(prompt)
    assert exc.value.status == 400, str(exc.value)
    return str(exc.value)


def failed(stack: Stack, prompt: dict, timeout: float = 600) -> str:
    with pytest.raises(PromptError) as exc:
        stack.comfy.run(prompt, timeout)
    return str(exc.value)


def the_mp4(stack: Stack, prompt: dict, result) -> str:
    node_id, _ = node_by_type(prompt, "FFmpegAssemble")
    [mp4] = [p for p in output_files(stack.comfy, result, node_id) if p.endswith(".mp4")]
    return mp4


# ------------------------------------------------------------------ spending


def test_paid_providers_are_off_unless_the_operator_enables_them(unpaid):
    message = failed(unpaid, cloud_prompt(options_json='{"seed": 101}'))
    assert "paid cloud providers are turned off on this server" in message
    assert "ADREEL_PAID_PROVIDERS=1" in message
    assert unpaid.creates() == 0 and unpaid.runway.requests == []
    still_serving(unpaid)


@pytest.mark.parametrize("widget", [0.0, 10000.0])
def test_no_widget_can_raise_the_server_spending_ceiling(paid, widget):
    # Runway veo3: 8 s × 40 credits/s = $3.20 a scene, far above the operator's $1.00 ceiling
    prompt = cloud_prompt(aspect_ratio="9:16", model="veo3", max_cost_usd=widget, options_json='{"seed": 102}')
    message = failed(paid, prompt)
    assert f"above the budget of ${CEILING:.2f}, the server ceiling ADREEL_MAX_COST_USD" in message, message
    assert "only the operator can raise it" in message and "Nothing was sent" in message
    assert paid.creates() == 0
    still_serving(paid)


@pytest.mark.parametrize("inputs,expect", [
    ({"max_cost_usd": float("nan")}, "max_cost_usd: must be a finite number"),
    ({"max_cost_usd": float("-inf")}, "max_cost_usd: must be a finite number"),
    ({"max_cost_usd": -1.0}, "max_cost_usd: -1 is smaller than the minimum 0"),
    ({"provider": "replicate", "model": "minimax/video-01",
      "options_json": '{"replicate": {"model": "acme/pricey", "price_usd_per_run": NaN}}'},
     "options_json.replicate.price_usd_per_run: must be a finite number"),
    ({"provider": "replicate", "model": "minimax/video-01",
      "options_json": '{"replicate": {"model": "acme/pricey", "price_usd_per_second": -5}}'},
     "options_json.replicate.price_usd_per_second: must be a price, 0 or more"),
    ({"provider": "heygen", "model": "avatar",
      "options_json": '{"heygen": {"avatar_id": "Daisy-inskirt-20220818", "voice_id": "2d5b0e6cf36f460aa7fc47e3eee4ba54", '
                      '"usd_per_credit": -100}}'}, "options_json.heygen.usd_per_credit: must be a price, 0 or more"),
    ({"provider": "heygen", "model": "avatar",
      "options_json": '{"heygen": {"usd_per_credit": Infinity}}'}, "options_json.heygen.usd_per_credit: must be a finite"),
])
def test_nan_negative_and_infinite_prices_are_refused_at_prompt(paid, inputs, expect):
    # the prompt is POSTed with real NaN / -Infinity tokens (Python's JSON and ComfyUI's accept them)
    message = rejected(paid, cloud_prompt(**inputs))
    assert expect in message, message
    assert "ProviderRender" in message
    assert paid.creates() == 0
    history = strict_history(paid.comfy)  # nothing non-finite was stored
    assert not any("NaN" in json.dumps(h.get("prompt", "")) for h in history.values())
    still_serving(paid)


def test_an_ambiguous_create_failure_stays_counted_so_the_fallback_cannot_overspend(paid):
    # What the run would cost on Runway alone (the refusal lists it; nothing is sent)
    message = failed(paid, cloud_prompt(max_cost_usd=0.01, options_json='{"seed": 103}'))
    total = float(re.search(r"would cost about \$(\d+\.\d\d)", message).group(1))
    assert paid.creates() == 0
    # Every Runway create answers 500 (the task may exist: it is never repeated). fal's Kling costs $0.28 a
    # scene. With this budget, releasing a failed create's estimate would let the fallback spend it again;
    # keeping it counted sends every scene to the local camera move instead.
    budget = round(total + 0.15, 2)
    assert budget <= CEILING
    paid.runway.script("create", *[Reply(500, {"error": "An unexpected error occurred."})] * 3)
    prompt = cloud_prompt(provider="auto", quality="best", chain=f"runway:gen4_turbo, fal:{KLING}, camera",
                          max_cost_usd=budget, options_json='{"seed": 103}')
    result = paid.comfy.run(prompt)
    assert len(paid.runway.calls("create")) == 3, "a create that may have succeeded was repeated"
    assert paid.fal.calls("create") == [], "the fallback paid on top of creates that may have been billed"
    out = result.ui(PROVIDER_NODE)
    summary = out["adreel_provider"][0]
    assert [s["provider"] for s in summary["scenes"]] == ["camera"] * 3
    assert "may exist and be billed" in out["text"][0]
    mp4 = the_mp4(paid, prompt, result)
    assert stream(ffprobe(mp4), "video")["codec_name"] == "h264"
    still_serving(paid)


# ------------------------------------------------------------------ time and Interrupt


def test_a_dripping_result_url_is_stopped_at_the_total_download_time(paid):
    paid.runway.media_drip = 100.0  # the 64-byte ftyp head, then 1 byte per 100 s
    t0 = time.monotonic()
    message = failed(paid, cloud_prompt(options_json='{"seed": 104}'))
    wall = time.monotonic() - t0
    assert f"did not finish within {DOWNLOAD_SECONDS} s" in message and "ADREEL_MAX_DOWNLOAD_SECONDS" in message
    assert paid.runway.calls("media"), "the download was never started"
    assert wall < 240, f"the drip held the queue for {wall:.0f} s"  # a bound that proves it cannot hang
    assert paid.clip_parts() == []
    still_serving(paid)


def test_interrupt_stops_a_dripping_download_at_once(paid):
    paid.runway.media_drip = 100.0
    pid = paid.comfy.queue(cloud_prompt(options_json='{"seed": 105}'))
    deadline = time.monotonic() + 300
    while not paid.runway.calls("media"):
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.05)
    t0 = time.monotonic()
    paid.comfy.interrupt()
    with pytest.raises(PromptError) as exc:
        paid.comfy.wait(pid, 120)
    assert "interrupted at node 5 (ProviderRender)" in str(exc.value), str(exc.value)
    assert time.monotonic() - t0 < DOWNLOAD_SECONDS, "Interrupt waited for the download's own time limit"
    assert paid.clip_parts() == []
    still_serving(paid)


# ------------------------------------------------------------------ a restart mid-job


def test_a_restart_mid_job_resumes_instead_of_paying_twice(paid):
    paid.runway.outcome = "never"
    prompt = cloud_prompt(options_json='{"seed": 106}')
    paid.comfy.queue(prompt)
    deadline = time.monotonic() + 300
    while len({c.path for c in paid.runway.calls("status")}) < 3:
        assert time.monotonic() < deadline, "the jobs were never polled"
        time.sleep(0.1)
    jobs = dict(paid.runway.jobs)
    assert len(jobs) == 3
    paid.restart()  # kill -9 mid-job, then a fresh ComfyUI on the same folders
    for job in jobs.values():  # the remote jobs finished while the server was down
        job.outcome, job.latency = "success", 0.0
    result = paid.comfy.run(prompt)  # the same prompt, queued again
    assert len(paid.runway.calls("create")) == 3, "the re-queue paid for every scene again"
    assert not paid.runway.calls("cancel")
    summary = result.ui(PROVIDER_NODE)["adreel_provider"][0]
    assert sorted(s["job_id"] for s in summary["scenes"]) == sorted(jobs)
    assert "no new job was paid for" in result.ui(PROVIDER_NODE)["text"][0]
    mp4 = the_mp4(paid, prompt, result)
    info = ffprobe(mp4)
    assert stream(info, "video")["codec_name"] == "h264" and float(info["format"]["duration"]) > 8.0
    assert paid.clip_parts() == []
    still_serving(paid)


# ------------------------------------------------------------------ keys in options_json


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize("options,field", [
    ({"replicate": {"input": {"hf_token": "hf_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI"}}}, "options_json.replicate.input.hf_token"),
    ({"runway": {"key": "x"}}, "options_json.runway.key"),
    ({"github_token": "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"}, "options_json.github_token"),
    ({"fal": {"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}}, "options_json.fal.aws_secret_access_key"),
    ({"veo": {"private_key": "-----BEGIN PRIVATE KEY-----"}}, "options_json.veo.private_key"),
    # option names AdReel does not know are not repeated either: they are numbered
    ({"runway": {"extra": ["sk-proj-" + "q1W2e3R4t5Y6u7I8o9P0"]}}, "options_json.runway.<option 1>[0]"),
    ({"replicate": {"input": {"prompt_extra": "r8_" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3"}}}, "options_json.replicate.input.<option 1>"),
])
def test_credentials_in_options_are_refused_at_prompt_without_echoing_them(paid, options, field):
    text = json.dumps(options)
    message = rejected(paid, cloud_prompt(options_json=text))
    assert field in message and "never taken from a workflow" in message, message
    secrets = [v for v in _leaves(options) if len(v) >= 12]
    assert not any(s in message for s in secrets), "the refusal echoed the value"
    assert paid.creates() == 0
    assert not any(s in json.dumps(strict_history(paid.comfy)) for s in secrets)
    still_serving(paid)


# ------------------------------------------------------------------ after all of it


def test_a_normal_ad_still_renders_and_no_canary_key_leaked(paid):
    prompt = cloud_prompt(options_json='{"seed": 107}')
    result = paid.comfy.run(prompt)
    mp4 = the_mp4(paid, prompt, result)
    assert stream(ffprobe(mp4), "video")["codec_name"] == "h264"
    assert len(paid.runway.calls("create")) == 3
    assert paid.runway.calls("create")[0].headers["Authorization"] == f"Bearer {CANARY['RUNWAY_API_KEY']}"
    haystacks = {"history": json.dumps(strict_history(paid.comfy)), "log": paid.comfy.log_text()}
    for folder in ("output", "temp", "user"):
        for dirpath, _, names in os.walk(paid.comfy.folder(folder)):
            for name in names:
                with open(os.path.join(dirpath, name), "rb") as f:
                    haystacks[os.path.join(dirpath, name)] = f.read().decode("latin-1")
    state = Path(paid.env["XDG_STATE_HOME"])
    for path in state.rglob("*"):
        if path.is_file():
            haystacks[str(path)] = path.read_text("latin-1")
    assert any("provider_jobs" in k for k in haystacks), "the jobs journal was not written"
    leaks = [(where, name) for where, text in haystacks.items() for name, key in CANARY.items() if key in text]
    assert not leaks, leaks
    still_serving(paid)
