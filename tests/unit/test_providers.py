"""The provider engine against local HTTPS fakes of each provider's documented contract.

Every test drives the code ProviderRender runs, end to end: ``plan_routes`` (one
candidate per scene, ``strict=True``: what a fixed provider with ``fallback: error``
plans) then ``render_routes`` (submit → poll → download), and checks what a user would see: the clip on disk (ffprobe), the error class
and its message, and what the fake server actually received.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from nodes.engine.models import AdReelInputError, StoryboardScene
from nodes.engine.providers import cost
from nodes.engine.providers import (
    BudgetExceededError,
    MissingApiKeyError,
    ProviderAuthError,
    ProviderConfigError,
    ProviderCreditError,
    ProviderDownloadError,
    ProviderForbiddenError,
    ProviderInterrupted,
    ProviderJobFailed,
    ProviderRateLimitError,
    ProviderRequestError,
    ProviderSafetyError,
    ProviderServerError,
    ProviderTimeoutError,
    RenderJob,
    RenderSettings,
    RetryPolicy,
    SceneRequest,
    estimate_scenes,
    plan_jobs,
    plan_routes,
    render_routes,
)
from fakes.provider_servers import (
    FalFake,
    FakeTLS,
    HeyGenFake,
    LumaFake,
    MediaServer,
    ReplicateFake,
    Reply,
    RunwayFake,
    VeoFake,
    make_sample_mp4,
)

pytestmark = pytest.mark.timeout(60)

ENV = {  # provider → (base URL variable, key variable, alternative key variables to clear)
    "luma": ("LUMA_BASE_URL", "LUMA_API_KEY", ("LUMAAI_API_KEY",)),
    "runway": ("RUNWAY_BASE_URL", "RUNWAY_API_KEY", ("RUNWAYML_API_SECRET",)),
    "heygen": ("HEYGEN_BASE_URL", "HEYGEN_API_KEY", ()),
    "fal": ("FAL_BASE_URL", "FAL_KEY", ()),
    "replicate": ("REPLICATE_BASE_URL", "REPLICATE_API_TOKEN", ()),
    "veo": ("GEMINI_BASE_URL", "GEMINI_API_KEY", ("GOOGLE_API_KEY",)),
}
MODEL = {
    "luma": "ray-2",
    "runway": "gen4_turbo",
    "heygen": "avatar",
    "fal": "fal-ai/kling-video/v2.1/standard/image-to-video",
    "replicate": "minimax/video-01",
    "veo": "veo-3.1-fast-generate-preview",
}
ALL = list(ENV)
CANCELLABLE = ["runway", "fal", "replicate"]
NOT_CANCELLABLE = ["luma", "heygen", "veo"]
FAST = RetryPolicy(max_retries=3, base_delay=0.05, max_delay=0.2, max_retry_after=5.0, request_timeout=10.0)


@dataclass
class Fakes:
    tls: FakeTLS
    dir: Path
    storage: MediaServer
    servers: dict
    key_image: Path

    def __getitem__(self, name):
        return self.servers[name]

    def total_requests(self) -> int:
        return sum(len(s.requests) for s in self.servers.values()) + len(self.storage.requests)


@pytest.fixture(scope="session")
def fakes_session(tmp_path_factory):
    d = tmp_path_factory.mktemp("provider-fakes")
    tls = FakeTLS(d)
    media = make_sample_mp4(d / "sample.mp4").read_bytes()
    storage = MediaServer(tls, media).start()
    servers = {
        "luma": LumaFake(tls, media).start(),
        "runway": RunwayFake(tls, media).start(),
        "heygen": HeyGenFake(tls, media).start(),
        "fal": FalFake(tls, media).start(),
        "replicate": ReplicateFake(tls, media).start(),
        "veo": VeoFake(tls, media, storage=storage).start(),
    }
    key_image = d / "key.png"
    Image.new("RGB", (360, 640), (200, 40, 40)).save(key_image)
    yield Fakes(tls, d, storage, servers, key_image)
    for s in [*servers.values(), storage]:
        s.stop()


@pytest.fixture
def fakes(fakes_session, monkeypatch, tmp_path):
    monkeypatch.setenv("ADREEL_CA_BUNDLE", str(fakes_session.tls.ca_path))
    monkeypatch.setenv("ADREEL_SECRETS_FILE", str(tmp_path / "no-secrets.json"))
    monkeypatch.setenv("ADREEL_PAID_PROVIDERS", "1")  # the operator's opt-in (paid providers are off by default)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the provider jobs journal
    monkeypatch.delenv("ADREEL_MAX_COST_USD", raising=False)
    for name, (base_env, key_env, others) in ENV.items():
        server = fakes_session[name]
        server.reset()
        monkeypatch.setenv(base_env, server.base_url)
        monkeypatch.setenv(key_env, server.valid_key)
        for other in others:
            monkeypatch.delenv(other, raising=False)
    fakes_session.storage.reset()
    return fakes_session


def scene(index=0, duration=3.0, **kw) -> StoryboardScene:
    values = dict(index=index, segment="hook", start=index * duration, duration=duration, start_frame=0,
                  frame_count=int(duration * 30), narration="Meet the sneaker that keeps up with you.",
                  image_prompt=f"a red sneaker on a wooden table, scene {index}", visual_direction="soft morning light",
                  palette=["#1E3A8A", "#F59E0B"])
    values.update(kw)
    return StoryboardScene(**values)


def make_job(fakes, provider, index=0, duration=3.0, image=True, model=None, **kw) -> RenderJob:
    options = kw.pop("options", {})
    if provider == "heygen":
        options = {"avatar_id": "Daisy-inskirt-20220818", "voice_id": "2d5b0e6cf36f460aa7fc47e3eee4ba54", **options}
        image = False
    return RenderJob(scene=scene(index, duration, **kw.pop("scene_kw", {})), provider=provider, model=model or MODEL[provider],
                     image_path=str(fakes.key_image) if image else None, options=options, **kw)


def host_for(fakes):
    async def host(path):
        # What the storage stage does: upload and hand back a presigned https URL.
        return f"{fakes.storage.url}/media/{Path(path).name}?X-Amz-Signature=abc"
    return host


async def render(jobs, *, max_cost_usd=None, image_host=None, **kw):
    """What ProviderRender runs for one provider and ``fallback: error``, one job per scene."""
    plan = plan_routes([SceneRequest.for_job(j) for j in jobs], strict=True, max_cost_usd=max_cost_usd,
                       image_host=image_host)
    outcomes = await render_routes(plan, RenderSettings(image_host=image_host, **kw))
    return [o.result for o in outcomes]


def run(fakes, jobs, tmp_path, **kw):
    kw.setdefault("poll_interval", 0.05)
    kw.setdefault("retry", FAST)
    kw.setdefault("image_host", host_for(fakes))
    kw.setdefault("timeout", 20)
    return asyncio.run(render(jobs, output_dir=tmp_path / "out", **kw))


def ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height,codec_name:format=duration",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


# --------------------------------------------------------------------------- success


@pytest.mark.parametrize("provider", ALL)
def test_success_downloads_a_real_clip_and_records_the_job(fakes, tmp_path, provider):
    server = fakes[provider]
    [result] = run(fakes, [make_job(fakes, provider)], tmp_path)

    info = ffprobe(result.path)
    assert (info["streams"][0]["width"], info["streams"][0]["height"]) == (320, 568)
    assert abs(float(info["format"]["duration"]) - 2.0) < 0.1
    assert (result.width, result.height) == (320, 568) and abs(result.duration - 2.0) < 0.1
    assert Path(result.path).parent == tmp_path / "out" and result.container == "mp4"
    [create] = server.calls("create")
    assert result.job_id in server.jobs
    assert server.calls("status"), "the job was polled"
    assert result.estimated_cost_usd is not None and result.estimated_cost_usd > 0
    assert result.actual_cost_usd is not None and result.cost_basis
    assert result.timings.total_s > 0 and result.timings.polls >= 1
    assert result.scene_index == 0 and result.provider == provider


def test_luma_request_follows_the_contract(fakes, tmp_path):
    [result] = run(fakes, [make_job(fakes, "luma", duration=7.0)], tmp_path)
    [create] = fakes["luma"].calls("create")
    assert create.path == "/dream-machine/v1/generations/video"
    assert create.headers["Authorization"] == f"Bearer {fakes['luma'].valid_key}"
    body = create.body
    assert body["duration"] == "9s" and body["aspect_ratio"] == "9:16" and body["model"] == "ray-2"
    assert body["keyframes"]["frame0"] == {"type": "image", "url": f"{fakes.storage.url}/media/key.png?X-Amz-Signature=abc"}
    assert result.requested_duration == 9
    assert any("requested 9 s" in n for n in result.notes)
    assert result.estimated_cost_usd == pytest.approx(1.27, abs=0.01)  # published ray-2 720p 9 s price


def test_runway_request_follows_the_contract(fakes, tmp_path):
    [result] = run(fakes, [make_job(fakes, "runway", duration=2.5)], tmp_path)
    [create] = fakes["runway"].calls("create")
    assert create.path == "/v1/image_to_video"
    assert create.headers["X-Runway-Version"] == "2024-11-06"
    assert create.body["promptImage"].startswith("data:image/png;base64,")
    assert create.body["ratio"] == "720:1280" and create.body["duration"] == 3
    assert result.estimated_cost_usd == cost.runway("gen4_turbo", 3).usd  # priced for the 3 s it asked for


def test_runway_veo3_without_image_uses_text_to_video_with_duration_8(fakes, tmp_path):
    [result] = run(fakes, [make_job(fakes, "runway", model="veo3", image=False, aspect_ratio="16:9")], tmp_path)
    [create] = fakes["runway"].calls("create")
    assert create.path == "/v1/text_to_video"
    assert create.body["duration"] == 8 and create.body["ratio"] == "1280:720" and create.body["model"] == "veo3"
    assert result.estimated_cost_usd == cost.runway("veo3", 8).usd  # priced for the 8 s it asked for


def test_fal_polls_status_result_and_cancel_without_the_subpath(fakes, tmp_path):
    run(fakes, [make_job(fakes, "fal", duration=6.0)], tmp_path)
    server = fakes["fal"]
    [create] = server.calls("create")
    assert create.path == "/fal-ai/kling-video/v2.1/standard/image-to-video"
    assert create.headers["Authorization"] == f"Key {server.valid_key}"
    assert create.body["duration"] == "10" and create.body["image_url"].startswith("data:image/png;base64,")
    statuses = server.calls("status")
    assert statuses and all(r.path.startswith("/fal-ai/kling-video/requests/") and r.path.endswith("/status") for r in statuses)
    assert all(r.query.get("logs") == "1" for r in statuses)
    assert [r.path for r in server.calls("result")] == [f"/fal-ai/kling-video/requests/{create_id(server)}"]
    assert not server.calls("unknown")


def create_id(server):
    return next(iter(server.jobs))


def test_heygen_sends_the_narration_and_dimension(fakes, tmp_path):
    [result] = run(fakes, [make_job(fakes, "heygen")], tmp_path)
    [create] = fakes["heygen"].calls("create")
    assert create.headers["X-Api-Key"] == fakes["heygen"].valid_key
    item = create.body["video_inputs"][0]
    assert item["voice"]["input_text"] == "Meet the sneaker that keeps up with you."
    assert item["character"] == {"type": "avatar", "avatar_id": "Daisy-inskirt-20220818"}
    assert create.body["dimension"] == {"width": 720, "height": 1280}
    assert item["background"] == {"type": "color", "value": "#1E3A8A"}
    status = fakes["heygen"].calls("status")[0]
    assert status.path == "/v1/video_status.get" and status.query == {"video_id": result.job_id}
    # 2 s rendered → billed as 30 s at 1 credit/min = 0.5 credit × $0.99
    assert result.actual_cost_usd == pytest.approx(0.495)


def test_replicate_official_model_and_pinned_version(fakes, tmp_path):
    version = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
    jobs = [make_job(fakes, "replicate"),
            make_job(fakes, "replicate", index=1, model=f"acme/clip-maker:{version}",
                     options={"price_usd_per_second": 0.1, "image_input": "start_image"})]
    results = run(fakes, jobs, tmp_path)
    creates = {r.path: r for r in fakes["replicate"].calls("create")}
    official = creates["/v1/models/minimax/video-01/predictions"]
    assert official.body["input"]["first_frame_image"].startswith("data:image/png;base64,")
    pinned = creates["/v1/predictions"]
    assert pinned.body["version"] == version and pinned.body["input"]["start_image"].startswith("data:image/png")
    assert results[0].estimated_cost_usd == 0.5
    assert results[1].actual_cost_usd == pytest.approx(0.2, abs=0.01)  # $0.1/s × the 2 s actually rendered


def test_veo_sends_inline_base64_and_the_key_never_reaches_storage(fakes, tmp_path):
    [result] = run(fakes, [make_job(fakes, "veo", duration=5.0)], tmp_path)
    server = fakes["veo"]
    [create] = server.calls("create")
    assert create.path == "/v1beta/models/veo-3.1-fast-generate-preview:predictLongRunning"
    inst, params = create.body["instances"][0], create.body["parameters"]
    assert inst["image"]["mimeType"] == "image/png" and len(inst["image"]["bytesBase64Encoded"]) > 100
    assert params["durationSeconds"] == 6 and params["aspectRatio"] == "9:16" and params["resolution"] == "720p"
    assert "negativePrompt" not in params  # empty negative prompts are not sent
    [download] = server.calls("download")
    assert download.headers["x-goog-api-key"] == server.valid_key  # the API host gets the key...
    [fetched] = fakes.storage.calls("media")
    assert "x-goog-api-key" not in {k.lower() for k in fetched.headers}  # ...the storage host it redirects to does not
    assert result.result_host == "127.0.0.1"
    assert result.estimated_cost_usd == cost.veo("veo-3.1-fast-generate-preview", 6).usd  # for the 6 s asked


# --------------------------------------------------------------------------- retries


def test_runway_429_retry_after_seconds_is_honoured(fakes, tmp_path):
    server = fakes["runway"]
    server.script("create", Reply(429, {"error": "Too many requests"}, {"Retry-After": "1"}))
    [result] = run(fakes, [make_job(fakes, "runway")], tmp_path)
    first, second = server.calls("create")
    assert second.time - first.time >= 0.95
    assert result.timings.retries == 1


def test_luma_retry_after_ms_is_honoured(fakes, tmp_path):
    server = fakes["luma"]
    server.script("create", Reply(429, {"detail": "Rate limit exceeded"}, {"retry-after-ms": "400"}))
    run(fakes, [make_job(fakes, "luma")], tmp_path)
    first, second = server.calls("create")
    assert 0.38 <= second.time - first.time < 2.0


def test_replicate_retry_after_http_date_is_honoured(fakes, tmp_path):
    server = fakes["replicate"]
    when = email.utils.formatdate(time.time() + 3, usegmt=True)  # whole seconds: at least ~2 s ahead
    server.script("status", Reply(429, {"title": "Too Many Requests", "detail": "Request was throttled.", "status": 429},
                                  {"Retry-After": when}))
    run(fakes, [make_job(fakes, "replicate")], tmp_path)
    polls = server.calls("status")
    assert polls[1].time - polls[0].time >= 0.9


def test_veo_429_retry_delay_in_the_body_is_honoured(fakes, tmp_path):
    server = fakes["veo"]
    server.script("create", VeoFake.quota_exhausted("1.2s"))
    [result] = run(fakes, [make_job(fakes, "veo")], tmp_path)
    first, second = server.calls("create")
    assert "Retry-After" not in first.headers
    assert second.time - first.time >= 1.15
    assert result.path


@pytest.mark.parametrize("provider", ["fal", "heygen"])
def test_429_on_status_then_success_with_backoff(fakes, tmp_path, provider):
    server = fakes[provider]
    server.script("status", Reply(429, {"detail": "slow down"}), Reply(429, {"detail": "slow down"}))
    [result] = run(fakes, [make_job(fakes, provider)], tmp_path)
    assert result.timings.retries == 2 and Path(result.path).exists()


def test_persistent_429_becomes_a_clear_rate_limit_error(fakes, tmp_path):
    server = fakes["runway"]
    server.script("create", *[RunwayFake.error(429, "Daily task limit reached")] * 4)
    with pytest.raises(ProviderRateLimitError) as err:
        run(fakes, [make_job(fakes, "runway")], tmp_path)
    msg = str(err.value)
    assert "Runway" in msg and "429" in msg and "4 attempt" in msg and "daily generation quota" in msg
    assert len(server.calls("create")) == 4


def test_veo_quota_wait_longer_than_allowed_is_not_slept(fakes, tmp_path):
    server = fakes["veo"]
    server.script("create", VeoFake.quota_exhausted("3600s"))
    t0 = time.monotonic()
    with pytest.raises(ProviderRateLimitError) as err:
        run(fakes, [make_job(fakes, "veo")], tmp_path)
    assert time.monotonic() - t0 < 3
    assert "RESOURCE_EXHAUSTED" in str(err.value) and "billing" in str(err.value)
    assert len(server.calls("create")) == 1


@pytest.mark.parametrize("provider", ALL)
def test_5xx_then_success(fakes, tmp_path, provider):
    server = fakes[provider]
    server.script("create", Reply(503, {"detail": "Service Unavailable"}))
    server.script("status", Reply(500, {"detail": "Internal Server Error"}), Reply(502, "Bad Gateway"))
    [result] = run(fakes, [make_job(fakes, provider)], tmp_path)
    assert len(server.calls("create")) == 2
    assert result.timings.retries == 3 and Path(result.path).exists()
    assert len(server.jobs) == 1


def test_500_on_create_is_not_repeated(fakes, tmp_path):
    server = fakes["replicate"]
    server.script("create", ReplicateFake.error(500, "Internal Server Error", "unexpected"))
    with pytest.raises(ProviderServerError) as err:
        run(fakes, [make_job(fakes, "replicate")], tmp_path)
    assert len(server.calls("create")) == 1
    assert "dashboard" in str(err.value) and "Replicate" in str(err.value)


def test_persistent_5xx_on_status_is_a_server_error(fakes, tmp_path):
    server = fakes["luma"]
    server.script("status", *[Reply(503, {"detail": "Service Unavailable"})] * 4)
    with pytest.raises(ProviderServerError) as err:
        run(fakes, [make_job(fakes, "luma")], tmp_path)
    assert "Luma" in str(err.value) and "503" in str(err.value) and "try again later" in str(err.value)


# --------------------------------------------------------------------------- bad key / credit / access


@pytest.mark.parametrize("provider", ALL)
def test_bad_key_is_a_clear_auth_error(fakes, tmp_path, monkeypatch, provider):
    base_env, key_env, _ = ENV[provider]
    monkeypatch.setenv(key_env, "wrong-key-0123456789")
    with pytest.raises(ProviderAuthError) as err:
        run(fakes, [make_job(fakes, provider)], tmp_path)
    msg = str(err.value)
    assert key_env in msg and "rejected the API key" in msg
    assert "wrong-key-0123456789" not in msg
    assert len(fakes[provider].calls("create")) == 1 and not fakes[provider].calls("status")


@pytest.mark.parametrize("provider,status", [("runway", 400), ("fal", 403), ("replicate", 402), ("heygen", 200)])
def test_exhausted_credit_is_a_clear_credit_error(fakes, tmp_path, provider, status):
    server = fakes[provider]
    server.outcome = "credit"
    with pytest.raises(ProviderCreditError) as err:
        run(fakes, [make_job(fakes, provider)], tmp_path)
    msg = str(err.value)
    assert "credit" in msg.lower()
    if provider == "heygen":  # accepted at create, failed at poll time
        assert len(server.calls("create")) == 1 and server.calls("status")
        assert "MOVIO_PAYMENT_INSUFFICIENT_CREDIT" in msg and "app.heygen.com" in msg
    else:
        assert not server.calls("status")
    if provider == "fal":
        assert "Exhausted balance" in msg and "fal.ai/dashboard/billing" in msg
    if provider == "replicate":
        assert "Insufficient credit" in msg and "402" in msg


def test_heygen_402_at_create_is_a_credit_error(fakes, tmp_path):
    fakes["heygen"].script("create", HeyGenFake.error(402, "insufficient_credit", "Insufficient credits"))
    with pytest.raises(ProviderCreditError):
        run(fakes, [make_job(fakes, "heygen")], tmp_path)


def test_403_without_credit_wording_is_an_access_error(fakes, tmp_path):
    fakes["veo"].script("create", VeoFake.error(403, "PERMISSION_DENIED", "The caller does not have permission"))
    with pytest.raises(ProviderForbiddenError) as err:
        run(fakes, [make_job(fakes, "veo")], tmp_path)
    assert "Google Veo" in str(err.value) and "403" in str(err.value) and "billing" in str(err.value)


def test_422_names_the_field_the_provider_rejected(fakes, tmp_path):
    fakes["fal"].script("create", FalFake.error(422, [{"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}]))
    with pytest.raises(ProviderRequestError) as err:
        run(fakes, [make_job(fakes, "fal")], tmp_path)
    assert "fal.ai" in str(err.value) and "422" in str(err.value) and "prompt: field required" in str(err.value)


# --------------------------------------------------------------------------- provider-side failures


@pytest.mark.parametrize("provider,marker", [
    ("runway", "SAFETY.INPUT.TEXT"),
    ("veo", "children"),
    ("fal", "content_policy_violation"),
    ("replicate", "NSFW"),
    ("luma", "moderation"),
])
def test_safety_rejection(fakes, tmp_path, provider, marker):
    fakes[provider].outcome = "safety"
    with pytest.raises(ProviderSafetyError) as err:
        run(fakes, [make_job(fakes, provider)], tmp_path)
    msg = str(err.value)
    assert marker in msg and "safety filter" in msg and "Rephrase" in msg
    assert err.value.job_id


@pytest.mark.parametrize("provider", ALL)
def test_job_failure_on_the_provider_side(fakes, tmp_path, provider):
    fakes[provider].outcome = "fail"
    with pytest.raises(ProviderJobFailed) as err:
        run(fakes, [make_job(fakes, provider)], tmp_path)
    assert not isinstance(err.value, ProviderSafetyError)
    assert "failed" in str(err.value) and str(err.value).startswith(("Luma", "Runway", "HeyGen", "fal.ai", "Replicate", "Google Veo", "scene 0"))
    assert not list((tmp_path / "out").glob("*.mp4"))


def test_runway_throttled_then_success_reports_throttled(fakes, tmp_path):
    fakes["runway"].outcome = "throttled"
    fakes["runway"].job_latency = 0.6
    events = []
    run(fakes, [make_job(fakes, "runway")], tmp_path, on_progress=events.append)
    assert "throttled" in [e.status for e in events]


def test_replicate_aborted_is_reported(fakes, tmp_path):
    fakes["replicate"].outcome = "aborted"
    with pytest.raises(ProviderJobFailed) as err:
        run(fakes, [make_job(fakes, "replicate")], tmp_path)
    assert "aborted" in str(err.value)


# --------------------------------------------------------------------------- timeout & interrupt


@pytest.mark.parametrize("provider", ALL)
def test_never_finishing_job_times_out_and_is_cancelled(fakes, tmp_path, provider):
    server = fakes[provider]
    server.outcome = "never"
    t0 = time.monotonic()
    with pytest.raises(ProviderTimeoutError) as err:
        run(fakes, [make_job(fakes, provider)], tmp_path, timeout=0.6)
    assert time.monotonic() - t0 < 4
    msg = str(err.value)
    assert "did not finish within 0.6 s" in msg
    job_id = next(iter(server.jobs))
    if provider in CANCELLABLE:
        [cancel] = server.calls("cancel")
        assert job_id in cancel.path and "was cancelled" in msg
    else:
        assert "has no cancel endpoint" in msg and job_id in msg
        assert not server.calls("cancel") and not server.calls("delete")


@pytest.mark.parametrize("provider", ALL)
def test_interrupt_mid_poll_cancels_the_remote_job(fakes, tmp_path, provider):
    server = fakes[provider]
    server.outcome = "never"
    stop = asyncio.Event()

    def on_progress(ev):
        if ev.job_id and ev.status in ("queued", "running", "throttled"):
            stop.set()

    with pytest.raises(ProviderInterrupted) as err:
        run(fakes, [make_job(fakes, provider)], tmp_path, cancel=stop, on_progress=on_progress)
    msg = str(err.value)
    assert "interrupted" in msg
    expected = {"runway": ("DELETE", "/v1/tasks/"), "fal": ("PUT", "/fal-ai/kling-video/requests/"),
                "replicate": ("POST", "/v1/predictions/")}
    if provider in expected:
        [cancel] = server.calls("cancel")
        method, prefix = expected[provider]
        assert cancel.method == method and cancel.path.startswith(prefix)
        assert "was cancelled" in msg
    else:
        assert "has no cancel endpoint" in msg and not server.calls("cancel")


def test_interrupt_callable_from_another_thread(fakes, tmp_path):
    server = fakes["replicate"]
    server.outcome = "never"
    flag = threading.Event()
    threading.Timer(0.3, flag.set).start()
    with pytest.raises(ProviderInterrupted):
        run(fakes, [make_job(fakes, "replicate")], tmp_path, cancel=lambda: flag.is_set())
    [cancel] = server.calls("cancel")
    assert cancel.path.endswith("/cancel")
    assert server.jobs[next(iter(server.jobs))].cancelled


def test_interrupt_before_submission_sends_nothing(fakes, tmp_path):
    with pytest.raises(ProviderInterrupted):
        run(fakes, [make_job(fakes, "runway")], tmp_path, cancel=lambda: True)
    assert fakes.total_requests() == 0


def test_one_failed_scene_stops_the_others(fakes, tmp_path):
    server = fakes["runway"]
    server.outcome = "never"  # scene 0 never finishes ...
    server.outcome_for = lambda body: "safety" if "TRIGGER-SAFETY" in body.get("promptText", "") else None
    jobs = [make_job(fakes, "runway", index=0), make_job(fakes, "runway", index=1)]
    jobs[1].prompt = "TRIGGER-SAFETY"  # ... scene 1 is rejected by the safety filter
    with pytest.raises(ProviderSafetyError) as err:
        run(fakes, jobs, tmp_path)
    assert err.value.scene_index == 1 and "scene 1" in str(err.value)
    never = next(j for j in server.jobs.values() if j.outcome == "never")
    [cancel] = server.calls("cancel")  # the still-running sibling was cancelled remotely
    assert cancel.path == f"/v1/tasks/{never.id}" and never.cancelled


# --------------------------------------------------------------------------- budget & planning


def test_budget_refusal_sends_nothing(fakes, tmp_path):
    jobs = [make_job(fakes, p, index=i) for i, p in enumerate(ALL)]
    est = estimate_scenes(jobs, image_host=host_for(fakes))
    assert est.total_usd > 1.0
    with pytest.raises(BudgetExceededError) as err:
        run(fakes, jobs, tmp_path, max_cost_usd=1.0)
    msg = str(err.value)
    assert "above the budget of $1.00" in msg and "Nothing was sent" in msg and f"${est.total_usd:.2f}" in msg
    assert fakes.total_requests() == 0
    assert not (tmp_path / "out").exists()


def test_budget_within_limit_runs(fakes, tmp_path):
    jobs = [make_job(fakes, "runway", index=i) for i in range(2)]
    results = run(fakes, jobs, tmp_path, max_cost_usd=0.30)  # 2 × 3 s × $0.05
    assert [r.estimated_cost_usd for r in results] == [0.15, 0.15]


def test_unknown_replicate_price_refuses_a_budgeted_run(fakes, tmp_path):
    job = make_job(fakes, "replicate", model="wan-video/wan-2.2-i2v-fast")
    with pytest.raises(BudgetExceededError) as err:
        run(fakes, [job], tmp_path, max_cost_usd=100)
    assert "unknown" in str(err.value) and "price_usd_per_run" in str(err.value)
    assert fakes.total_requests() == 0
    # Without a budget of its own the server ceiling (ADREEL_MAX_COST_USD) still applies: refused too.
    with pytest.raises(BudgetExceededError) as err:
        run(fakes, [job], tmp_path)
    assert "unknown" in str(err.value) and "$5.00" in str(err.value)
    assert fakes.total_requests() == 0
    # With a price given it is budgeted.
    job.options["price_usd_per_run"] = 0.4
    [result] = run(fakes, [job], tmp_path, max_cost_usd=0.5)
    assert result.estimated_cost_usd == 0.4


def test_missing_key_names_the_variable_and_sends_nothing(fakes, tmp_path, monkeypatch):
    monkeypatch.delenv("FAL_KEY")
    with pytest.raises(MissingApiKeyError) as err:
        run(fakes, [make_job(fakes, "runway"), make_job(fakes, "fal", index=1)], tmp_path)
    assert "FAL_KEY" in str(err.value) and "secrets file" in str(err.value)
    assert fakes.total_requests() == 0


def test_alternative_env_var_and_secrets_file(fakes, tmp_path, monkeypatch):
    monkeypatch.delenv("RUNWAY_API_KEY")
    monkeypatch.setenv("RUNWAYML_API_SECRET", fakes["runway"].valid_key)
    run(fakes, [make_job(fakes, "runway")], tmp_path)
    monkeypatch.delenv("GEMINI_API_KEY")
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"GEMINI_API_KEY": fakes["veo"].valid_key}))
    secrets.chmod(0o600)
    monkeypatch.setenv("ADREEL_SECRETS_FILE", str(secrets))
    [result] = run(fakes, [make_job(fakes, "veo")], tmp_path)
    assert fakes["veo"].calls("create")[0].headers["x-goog-api-key"] == fakes["veo"].valid_key


def test_luma_key_image_without_image_host_is_refused_before_any_request(fakes, tmp_path):
    # A Runway scene first: a late check would let its paid request out before Luma's refusal.
    with pytest.raises(ProviderConfigError) as err:
        run(fakes, [make_job(fakes, "runway"), make_job(fakes, "luma", index=1)], tmp_path, image_host=None)
    msg = str(err.value)
    assert "Luma" in msg and "https URL" in msg and "storage" in msg.lower()
    assert fakes.total_requests() == 0
    # Text-only Luma needs no host.
    [result] = run(fakes, [make_job(fakes, "luma", image=False)], tmp_path, image_host=None)
    assert "keyframes" not in fakes["luma"].calls("create")[0].body


def test_runway_large_image_goes_as_hosted_url(fakes, tmp_path):
    import os

    big = tmp_path / "big.png"
    Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3)).save(big)  # noise: ~5.9 MB PNG
    assert big.stat().st_size > 5 * 1024 * 1024 * 3 / 4
    job = make_job(fakes, "runway")
    job.image_path = str(big)
    with pytest.raises(ProviderConfigError):
        run(fakes, [job], tmp_path, image_host=None)
    assert fakes.total_requests() == 0
    [result] = run(fakes, [job], tmp_path)
    assert fakes["runway"].calls("create")[0].body["promptImage"].startswith(fakes.storage.url)
    assert any("hosted" in n for n in result.notes)


@pytest.mark.parametrize("case,match", [
    ("not_an_image", "not a PNG, JPEG or WebP"),
    ("veo3_square", "cannot render 1:1"),
    ("gen4_no_image", "animates a key image"),
    ("heygen_no_voice", "voice_id"),
    ("bad_replicate_ref", "owner/name"),
    ("unknown_model", "has no such model"),
])
def test_inputs_are_checked_before_any_paid_call(fakes, tmp_path, case, match):
    if case == "not_an_image":
        fake_png = tmp_path / "photo.png"
        fake_png.write_text("<html>not an image</html>")
        job = make_job(fakes, "fal")
        job.image_path = str(fake_png)
    elif case == "veo3_square":
        job = make_job(fakes, "runway", model="veo3", aspect_ratio="1:1")
    elif case == "gen4_no_image":
        job = make_job(fakes, "runway", image=False)
    elif case == "heygen_no_voice":
        job = make_job(fakes, "heygen")
        job.options.pop("voice_id")
    elif case == "bad_replicate_ref":
        job = make_job(fakes, "replicate", model="not a model")
    else:
        job = make_job(fakes, "luma", model="ray-9")
    with pytest.raises(AdReelInputError, match=match) as err:
        run(fakes, [make_job(fakes, "runway", index=5), job], tmp_path)
    assert err.value.field.startswith("scenes[1]")
    assert fakes.total_requests() == 0


# --------------------------------------------------------------------------- downloads


def test_non_https_result_url_is_refused(fakes, tmp_path):
    fakes["runway"].result_url_scheme = "http"
    with pytest.raises(ProviderDownloadError) as err:
        run(fakes, [make_job(fakes, "runway")], tmp_path)
    assert "non-https" in str(err.value)
    assert not fakes["runway"].calls("media")


def test_result_that_is_not_a_video_is_refused(fakes, tmp_path):
    fakes["fal"].media_override = b"<html><body>Access denied</body></html>"
    with pytest.raises(ProviderDownloadError) as err:
        run(fakes, [make_job(fakes, "fal")], tmp_path)
    assert "not an MP4, MOV or WebM" in str(err.value)
    assert not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("keep", [0.05, 0.9])
def test_truncated_mp4_fails_the_ffprobe_check(fakes, tmp_path, keep):
    media = fakes["luma"].media
    fakes["luma"].media_override = media[: int(len(media) * keep)]  # starts like an MP4, but is cut short
    with pytest.raises(ProviderDownloadError) as err:
        run(fakes, [make_job(fakes, "luma")], tmp_path)
    assert "not a playable video" in str(err.value)
    assert not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("chunked", [False, True])
def test_download_size_cap(fakes, tmp_path, chunked):
    fakes["replicate"].media_chunked = chunked  # without Content-Length the cap applies while streaming
    with pytest.raises(ProviderDownloadError) as err:
        run(fakes, [make_job(fakes, "replicate")], tmp_path, max_download_bytes=10_000)
    assert "download cap" in str(err.value)
    assert not list((tmp_path / "out").iterdir())


def test_chunked_download_without_content_length_succeeds(fakes, tmp_path):
    fakes["replicate"].media_chunked = True
    [result] = run(fakes, [make_job(fakes, "replicate")], tmp_path)
    assert result.bytes == len(fakes["replicate"].media)


def test_expired_result_url_is_explained(fakes, tmp_path):
    fakes["runway"].script("media", Reply(403, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"))
    with pytest.raises(ProviderDownloadError) as err:
        run(fakes, [make_job(fakes, "runway")], tmp_path)
    assert "403" in str(err.value) and "expire" in str(err.value)
    assert "sig=" not in str(err.value)  # the presigned query string is not repeated


# --------------------------------------------------------------------------- progress & concurrency


def test_progress_reports_fractions_from_runway_and_replicate(fakes, tmp_path):
    for name in ("runway", "replicate"):
        fakes[name].job_latency = 0.6
    events = []
    run(fakes, [make_job(fakes, "runway"), make_job(fakes, "replicate", index=1)], tmp_path, on_progress=events.append)
    for provider in ("runway", "replicate"):
        running = [e for e in events if e.provider == provider and e.status == "running"]
        fractions = [e.fraction for e in running]
        assert fractions and all(f is not None and 0 < f < 1 for f in fractions), (provider, fractions)
        assert fractions == sorted(fractions)
        assert all(e.remaining is not None and e.cost_usd is not None for e in running)
        done = [e for e in events if e.provider == provider and e.status == "done"]
        assert len(done) == 1 and done[0].fraction == 1.0 and done[0].job_id
    submitting = [e for e in events if e.status == "submitting"]
    assert len(submitting) == 2 and all(e.fraction is None and e.job_id is None for e in submitting)


def test_results_in_scene_order_under_concurrency(fakes, tmp_path):
    server = fakes["runway"]
    latencies = {0: 0.9, 1: 0.15, 2: 0.5, 3: 0.3}
    server.latency_for = lambda body: latencies[int(body["promptText"].split("scene ")[1][0])]
    jobs = [make_job(fakes, "runway", index=i) for i in (2, 0, 3, 1)]  # handed over shuffled
    finished, done_at = [], []

    def progress(e):
        if e.status == "done":
            finished.append(e.scene_index)
            done_at.append(time.monotonic())

    results = run(fakes, jobs, tmp_path, on_progress=progress)
    assert [r.scene_index for r in results] == [0, 1, 2, 3]
    assert finished != [0, 1, 2, 3]  # they did finish out of order
    # and overlapped: every job was submitted before the first one was done (an ordering, not a speed check)
    assert max(c.time for c in server.calls("create")) < min(done_at)
    for r in results:
        assert f"scene{r.scene_index:03d}_" in Path(r.path).name
        assert server.jobs[r.job_id].body["promptText"].count(f"scene {r.scene_index}") == 1


def test_per_provider_concurrency_cap(fakes, tmp_path):
    fakes["fal"].job_latency = 0.3
    active, peak = set(), []

    def track(e):
        if e.status == "submitting":
            active.add(e.scene_index)
        elif e.status == "done":
            active.discard(e.scene_index)
        peak.append(len(active))

    run(fakes, [make_job(fakes, "fal", index=i) for i in range(5)], tmp_path, concurrency={"fal": 2}, on_progress=track)
    assert max(peak) == 2


# --------------------------------------------------------------------------- secrets


def test_the_key_appears_in_no_error_log_or_result(fakes, tmp_path, monkeypatch, caplog):
    secret = "sk-live-" + uuid.uuid4().hex
    server = fakes["runway"]
    server.valid_key = secret
    monkeypatch.setenv("RUNWAY_API_KEY", secret)
    caplog.set_level(logging.DEBUG)
    events = []
    [result] = run(fakes, [make_job(fakes, "runway")], tmp_path, on_progress=events.append)
    assert server.calls("create")[0].headers["Authorization"] == f"Bearer {secret}"  # it was really used
    # A provider error that echoes the key back, and a log line that tries to print it.
    server.script("create", RunwayFake.error(400, f"Invalid key {secret} for Authorization: Bearer {secret}"))
    with pytest.raises(ProviderRequestError) as err:
        run(fakes, [make_job(fakes, "runway")], tmp_path)
    logging.getLogger("adreel.providers").warning("debug dump: %s", {"Authorization": f"Bearer {secret}"})
    plans = plan_jobs([make_job(fakes, "runway")])
    texts = [str(err.value), repr(err.value), caplog.text, result.model_dump_json(), repr(result),
             repr(plans[0]), repr(plans[0].key), json.dumps(plans[0].summary()), *(e.message for e in events), repr(events)]
    for text in texts:
        assert secret not in text
    assert "***" in str(err.value)
    assert "***" in caplog.text


# --------------------------------------------------------------------------- transport


def test_tls_is_verified_without_the_ca_bundle(fakes, tmp_path, monkeypatch):
    from nodes.engine.providers import ProviderConnectionError

    monkeypatch.delenv("ADREEL_CA_BUNDLE")
    with pytest.raises(ProviderConnectionError) as err:
        run(fakes, [make_job(fakes, "runway")], tmp_path)
    assert "Runway" in str(err.value) and "cannot connect" in str(err.value)
    assert fakes.total_requests() == 0  # the handshake failed: nothing reached the server


def test_cancelling_the_asyncio_task_cancels_the_remote_job(fakes, tmp_path):
    server = fakes["fal"]
    server.outcome = "never"

    async def main():
        submitted = asyncio.Event()
        task = asyncio.create_task(render(
            [make_job(fakes, "fal")], output_dir=tmp_path / "out", poll_interval=0.05, retry=FAST,
            on_progress=lambda e: e.job_id and submitted.set()))
        await asyncio.wait_for(submitted.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    [cancel] = server.calls("cancel")
    assert cancel.method == "PUT" and cancel.path.endswith("/cancel")


def test_interrupt_is_noticed_within_a_long_poll_interval(fakes, tmp_path):
    server = fakes["runway"]
    server.outcome = "never"
    flag = threading.Event()
    threading.Timer(0.4, flag.set).start()
    t0 = time.monotonic()
    with pytest.raises(ProviderInterrupted):
        run(fakes, [make_job(fakes, "runway")], tmp_path, cancel=flag.is_set, poll_interval=5.0)
    assert time.monotonic() - t0 < 1.5  # not after the 5 s poll wait
    assert len(server.calls("cancel")) == 1


def test_blocking_image_host_runs_off_the_event_loop(fakes, tmp_path):
    threads = []

    def upload(path):  # like a boto3 upload + presign: blocking
        threads.append(threading.current_thread().name)
        time.sleep(0.05)
        return f"{fakes.storage.url}/media/{Path(path).name}"

    [result] = run(fakes, [make_job(fakes, "luma")], tmp_path, image_host=upload)
    assert threads and threads[0] != threading.main_thread().name
    assert fakes["luma"].calls("create")[0].body["keyframes"]["frame0"]["url"].endswith("/media/key.png")


# --------------------------------------------------------------------------- downloads bounded in time and space


def _no_parts(folder: Path) -> list:
    return [p.name for p in folder.rglob("*.part")] if folder.exists() else []


@pytest.mark.timeout(120)
def test_a_dripping_result_url_is_stopped_at_the_total_download_time(fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_DOWNLOAD_SECONDS", "2")
    fakes["runway"].media_drip = 100.0  # the ftyp head, then 1 byte per 100 s: a socket read timeout never fires
    t0 = time.monotonic()
    with pytest.raises(ProviderDownloadError) as err:
        run(fakes, [make_job(fakes, "runway")], tmp_path)
    wall = time.monotonic() - t0
    assert "did not finish within 2 s" in str(err.value) and "ADREEL_MAX_DOWNLOAD_SECONDS" in str(err.value)
    assert "partial file was removed" in str(err.value)
    assert wall < 60, f"the drip held the worker for {wall:.0f} s"  # a bound proving it cannot hang, not a speed test
    assert _no_parts(tmp_path / "out") == [] and not list((tmp_path / "out").glob("*.mp4"))


@pytest.mark.timeout(120)
def test_interrupt_stops_a_dripping_download_at_once(fakes, tmp_path):
    fakes["runway"].media_drip = 100.0
    downloading = threading.Event()
    parts_seen = []

    def progress(e):
        if e.status == "downloading":
            downloading.set()

    def cancel():
        if downloading.is_set():
            parts_seen.extend(_no_parts(tmp_path / "out"))
            return len(parts_seen) > 0  # interrupt once the .part is really being written
        return False

    t0 = time.monotonic()
    with pytest.raises(ProviderInterrupted) as err:
        run(fakes, [make_job(fakes, "runway")], tmp_path, on_progress=progress, cancel=cancel, timeout=600)
    assert time.monotonic() - t0 < 60
    assert "interrupted" in str(err.value)
    assert parts_seen and _no_parts(tmp_path / "out") == [], "the partial download was left behind"


@pytest.mark.timeout(120)
def test_interrupt_ends_an_api_call_in_flight_and_cancels_the_job(fakes, tmp_path):
    server = fakes["runway"]
    server.outcome = "never"
    server.script("status", Reply(200, {"status": "PENDING"}, delay=100.0))  # a status call that hangs 100 s
    t0 = time.monotonic()
    with pytest.raises(ProviderInterrupted):
        run(fakes, [make_job(fakes, "runway")], tmp_path, timeout=600,
            cancel=lambda: len(server.calls("status")) >= 1 and time.monotonic() - server.calls("status")[0].time > 0.5)
    assert time.monotonic() - t0 < 60
    [job] = server.jobs.values()
    assert job.cancelled and [c.path for c in server.calls("cancel")] == [f"/v1/tasks/{job.id}"]


def test_one_prompt_s_clips_share_a_download_cap(fakes, tmp_path, monkeypatch):
    size = len(fakes["runway"].media)
    monkeypatch.setenv("ADREEL_MAX_RUN_DOWNLOAD_BYTES", str(int(size * 1.5)))
    with pytest.raises(ProviderDownloadError) as err:
        run(fakes, [make_job(fakes, "runway", index=i) for i in range(2)], tmp_path)
    assert "ADREEL_MAX_RUN_DOWNLOAD_BYTES" in str(err.value)
    assert _no_parts(tmp_path / "out") == []
    assert len(list((tmp_path / "out").glob("*.mp4"))) <= 1


def test_partial_downloads_left_by_a_stopped_run_are_removed_at_the_next(fakes, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "scene000_runway_gen4_turbo_dead-job.part").write_bytes(b"\0\0\0\x18ftypmp42" + b"x" * 1000)
    (out / "notes.part").write_text("not ours")
    run(fakes, [make_job(fakes, "runway")], tmp_path)
    assert sorted(p.name for p in out.glob("*.part")) == ["notes.part"]


# --------------------------------------------------------------------------- restarts: resume or cancel, never pay twice

CHILD = r"""
import asyncio, pickle, sys
sys.path.insert(0, sys.argv[1])
from nodes.engine.providers import RenderSettings, RetryPolicy, SceneRequest, plan_routes, render_routes
jobs = pickle.load(open(sys.argv[2], "rb"))
plan = plan_routes([SceneRequest.for_job(j) for j in jobs], strict=True)
asyncio.run(render_routes(plan, RenderSettings(
    output_dir=sys.argv[3], poll_interval=0.05, timeout=600,
    retry=RetryPolicy(max_retries=2, base_delay=0.05, max_delay=0.2, request_timeout=10.0))))
"""


def _journal_events(out: Path) -> list[dict]:
    from nodes.engine.providers.journal import journal_path

    path = journal_path(out)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _killed_mid_job(fakes, tmp_path, jobs, provider="runway") -> list[str]:
    """Run ``jobs`` in another process and kill -9 it once every job is submitted and polled; their ids."""
    import pickle
    import signal
    import sys

    root = Path(__file__).resolve().parents[2]
    blob = tmp_path / "jobs.pickle"
    blob.write_bytes(pickle.dumps(jobs))
    fakes[provider].outcome = "never"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(blob), str(tmp_path / "out")])
    try:
        deadline = time.monotonic() + 60
        while True:
            submitted = [e for e in _journal_events(tmp_path / "out") if e["event"] == "submitted"]
            if len(submitted) == len(jobs) and len({c.path for c in fakes[provider].calls("status")}) >= len(jobs):
                break
            assert child.poll() is None, "the child run ended early"
            assert time.monotonic() < deadline, "the child never submitted its jobs"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    return [e["job_id"] for e in submitted]


@pytest.mark.timeout(120)
def test_a_restart_mid_job_resumes_the_remote_job_instead_of_paying_twice(fakes, tmp_path):
    server = fakes["runway"]
    jobs = [make_job(fakes, "runway", index=i) for i in range(2)]
    ids = _killed_mid_job(fakes, tmp_path, jobs)
    assert len(server.calls("create")) == 2 and not server.calls("cancel")
    # the jobs finish on the provider's side while ComfyUI is down
    for job_id in ids:
        server.jobs[job_id].outcome, server.jobs[job_id].latency = "success", 0.0
    results = run(fakes, jobs, tmp_path)
    assert len(server.calls("create")) == 2, "the re-queue paid for the scenes again"
    assert sorted(r.job_id for r in results) == sorted(ids)
    assert all(Path(r.path).is_file() for r in results)
    assert all(any("no new job was paid for" in n for n in r.notes) for r in results)
    events = [e["event"] for e in _journal_events(tmp_path / "out")]
    assert events.count("resumed") == 2 and events.count("downloaded") == 2


@pytest.mark.timeout(120)
def test_a_restart_cancels_the_jobs_nobody_resumes(fakes, tmp_path):
    server = fakes["runway"]
    [old_id] = _killed_mid_job(fakes, tmp_path, [make_job(fakes, "runway", index=0)])
    server.outcome = "success"
    # the next prompt is a different one: the dead process's job is cancelled, not left running (and billed)
    [result] = run(fakes, [make_job(fakes, "runway", index=0, scene_kw={"image_prompt": "a blue kettle"})], tmp_path)
    assert result.job_id != old_id and server.jobs[old_id].cancelled
    assert [c.path for c in server.calls("cancel")] == [f"/v1/tasks/{old_id}"]
    assert server.calls("cancel")[0].headers["Authorization"] == f"Bearer {server.valid_key}"
    assert len(server.calls("create")) == 2


def test_an_interrupted_job_without_a_cancel_endpoint_is_resumed_by_the_next_run(fakes, tmp_path):
    server = fakes["luma"]  # Luma has no cancel endpoint: the job keeps running (and is billed) after a stop
    server.outcome = "never"
    job = make_job(fakes, "luma")
    with pytest.raises(ProviderInterrupted) as err:
        run(fakes, [job], tmp_path, cancel=lambda: len(server.calls("status")) >= 1)
    assert "no cancel endpoint" in str(err.value)
    [remote] = server.jobs.values()
    remote.outcome, remote.latency = "success", 0.0
    [result] = run(fakes, [job], tmp_path)
    assert result.job_id == remote.id and len(server.calls("create")) == 1


def test_a_job_whose_cancel_was_refused_is_resumed_by_the_next_run(fakes, tmp_path):
    server = fakes["runway"]  # the cancel endpoint answers 403: the job keeps running, so it stays open
    server.outcome = "never"
    server.script("cancel", Reply(403, {"error": "You do not have access to this task"}))
    job = make_job(fakes, "runway")
    with pytest.raises(ProviderInterrupted) as err:
        run(fakes, [job], tmp_path, cancel=lambda: len(server.calls("status")) >= 1)
    assert "failed (HTTP 403)" in str(err.value) and "dashboard" in str(err.value)
    [remote] = server.jobs.values()
    assert not remote.cancelled
    remote.outcome, remote.latency = "success", 0.0
    [result] = run(fakes, [job], tmp_path)
    assert result.job_id == remote.id and len(server.calls("create")) == 1


def test_a_recorded_job_the_provider_no_longer_knows_is_submitted_again(fakes, tmp_path):
    server = fakes["runway"]
    server.outcome = "never"
    job = make_job(fakes, "runway")
    with pytest.raises(ProviderInterrupted):
        run(fakes, [job], tmp_path, cancel=lambda: len(server.calls("status")) >= 1)
    # cancelled: closed in the journal, so the next run creates a new job
    server.outcome = "success"
    [result] = run(fakes, [job], tmp_path)
    assert len(server.calls("create")) == 2 and result.job_id != next(iter(server.jobs))


def test_the_journal_is_outside_comfyui_folders_and_holds_no_key(fakes, tmp_path):
    [result] = run(fakes, [make_job(fakes, "runway")], tmp_path)
    from nodes.engine.providers.journal import journal_path

    path = journal_path(tmp_path / "out")
    assert tmp_path / "state" in path.parents and (tmp_path / "out") not in path.parents
    text = path.read_text()
    assert result.job_id in text and fakes["runway"].valid_key not in text
    assert [e["event"] for e in _journal_events(tmp_path / "out")] == ["submitting", "submitted", "downloaded"]


@pytest.mark.parametrize("duration", [float("nan"), float("inf"), -30.0])
def test_a_non_finite_or_negative_length_from_the_provider_never_becomes_a_cost(fakes, tmp_path, duration):
    server = fakes["heygen"]
    media_url = server.media_url("clip")
    server.script("status", Reply(200, {"code": 100, "message": "Success", "data": {
        "id": "x", "status": "completed", "video_url": media_url, "duration": duration, "created_at": 1735689600}}))
    [result] = run(fakes, [make_job(fakes, "heygen")], tmp_path)
    from nodes.engine.providers.request import json_safe

    record = json_safe(result.manifest_entry())
    json.dumps(record, allow_nan=False)  # what the node's ui and /history would carry
    cost = result.actual_cost_usd
    assert cost is None or (cost == cost and 0 <= cost < 100), cost


def test_jobs_of_a_live_process_sharing_the_folder_are_never_cancelled(fakes, tmp_path):
    import socket
    import sys

    from nodes.engine.providers.journal import journal_path

    server = fakes["runway"]
    server.outcome = "never"
    remote = server.new_job("gen4_turbo", {"promptText": "another ComfyUI's scene"})
    path = journal_path(tmp_path / "out")
    path.parent.mkdir(parents=True, exist_ok=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # another live ComfyUI
    try:
        line = {"t": time.time(), "proc": "another-process", "pid": other.pid, "host": socket.gethostname(),
                "event": "submitted", "key": "k" * 32, "provider": "runway", "model": "gen4_turbo", "scene_index": 0,
                "job_id": remote.id, "cancel": {"method": "DELETE", "url": f"{server.base_url}/v1/tasks/{remote.id}"}}
        path.write_text(json.dumps(line) + "\n")
        server.outcome = "success"
        run(fakes, [make_job(fakes, "runway", index=1)], tmp_path)
        assert not remote.cancelled and not server.calls("cancel"), "a live process's job was cancelled"
    finally:
        other.kill()
        other.wait()
    # once that process is gone, its unfinished job is an orphan: cancelled at the next run
    run(fakes, [make_job(fakes, "runway", index=2)], tmp_path)
    assert remote.cancelled and [c.path for c in server.calls("cancel")] == [f"/v1/tasks/{remote.id}"]


def test_a_recorded_cancel_url_off_the_configured_host_gets_no_key(fakes, tmp_path):
    from nodes.engine.providers.journal import journal_path

    runway, luma = fakes["runway"], fakes["luma"]
    path = journal_path(tmp_path / "out")
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"t": time.time(), "proc": "dead", "pid": 2 ** 22 + 12345, "host": __import__("socket").gethostname(),
            "event": "submitted", "key": "q" * 32, "provider": "runway", "model": "gen4_turbo", "scene_index": 0,
            "job_id": "x", "cancel": {"method": "DELETE", "url": f"{luma.base_url}/generations/x"}}
    path.write_text(json.dumps(line) + "\n")
    run(fakes, [make_job(fakes, "runway")], tmp_path)
    assert luma.requests == [], "a Runway key was sent to another host named in the journal"
    assert not runway.calls("cancel")
    assert _journal_events(tmp_path / "out")[1]["event"] == "abandoned"
