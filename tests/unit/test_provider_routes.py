"""The hybrid route (engine.providers.routes) and key-image hosting (engine.storage.hosting).

Routes run against the local HTTPS fakes of the providers (tests/fakes/provider_servers.py);
hosting runs against a real SeaweedFS. Checked: what is picked before anything is sent
(budget, quality, missing keys), what the fakes received, how a failed scene falls back
without stopping the others, and that a scene with nowhere to go stops the run.
"""
from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from fakes.provider_servers import FakeTLS, LumaFake, Reply, RunwayFake, make_sample_mp4
from fakes.seaweedfs import SECRET_KEY, SeaweedFS
from nodes.engine.models import AdReelInputError, StoryboardScene
from nodes.engine.providers import (
    BudgetExceededError,
    MissingApiKeyError,
    PaidProvidersDisabledError,
    ProviderConfigError,
    ProviderInterrupted,
    ProviderSafetyError,
    RetryPolicy,
)
from nodes.engine.providers.routes import (
    CAMERA_MOVE,
    Candidate,
    RenderSettings,
    SceneRequest,
    parse_chain,
    plan_routes,
    render_routes,
)
from nodes.engine.storage import StorageConfigError, load_storage_config
from nodes.engine.storage.hosting import host_image, image_host_from_environment

pytestmark = pytest.mark.timeout(120)
FAST = RetryPolicy(max_retries=2, base_delay=0.05, max_delay=0.2, max_retry_after=5.0, request_timeout=10.0)
RUNWAY = Candidate("runway", "gen4_turbo")
LUMA = Candidate("luma", "ray-flash-2")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    d = tmp_path_factory.mktemp("route-fakes")
    tls = FakeTLS(d)
    media = make_sample_mp4(d / "sample.mp4").read_bytes()
    runway, luma = RunwayFake(tls, media).start(), LumaFake(tls, media).start()
    key_image = d / "key.png"
    Image.new("RGB", (360, 640), (20, 120, 200)).save(key_image)
    yield {"tls": tls, "runway": runway, "luma": luma, "key_image": key_image}
    runway.stop()
    luma.stop()


@pytest.fixture
def fakes(servers, monkeypatch, tmp_path):
    monkeypatch.setenv("ADREEL_CA_BUNDLE", str(servers["tls"].ca_path))
    monkeypatch.setenv("ADREEL_SECRETS_FILE", str(tmp_path / "no-secrets.json"))
    monkeypatch.setenv("ADREEL_PAID_PROVIDERS", "1")  # the operator's opt-in (paid providers are off by default)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the provider jobs journal
    monkeypatch.delenv("ADREEL_MAX_COST_USD", raising=False)
    for name, base, key, other in (("runway", "RUNWAY_BASE_URL", "RUNWAY_API_KEY", "RUNWAYML_API_SECRET"),
                                   ("luma", "LUMA_BASE_URL", "LUMA_API_KEY", "LUMAAI_API_KEY")):
        servers[name].reset()
        monkeypatch.setenv(base, servers[name].base_url)
        monkeypatch.setenv(key, servers[name].valid_key)
        monkeypatch.delenv(other, raising=False)
    for var in ("FAL_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return servers


def scene(index: int, segment: str = "hook", camera: str = "zoom_in", duration: float = 3.0) -> StoryboardScene:
    return StoryboardScene(index=index, segment=segment, start=3.0 * index, duration=duration, start_frame=90 * index,
                           frame_count=int(30 * duration), image_prompt=f"a robot vacuum, shot {index}",
                           visual_direction="soft light", camera=camera, palette=["#1E3A8A"])


def requests_for(fakes, *scenes_) -> list[SceneRequest]:
    return [SceneRequest(scene=s, aspect_ratio="9:16", image_path=str(fakes["key_image"])) for s in scenes_]


def host(path: str) -> str:  # what the storage stage hands back
    return f"https://cdn.example.test/key-images/{Path(path).name}"


def render(plan, tmp_path, **kw):
    kw.setdefault("poll_interval", 0.05)
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout", 20)
    kw.setdefault("image_host", host)
    return asyncio.run(render_routes(plan, RenderSettings(output_dir=tmp_path / "clips", **kw)))


def total_requests(fakes) -> int:
    return len(fakes["runway"].requests) + len(fakes["luma"].requests)


# --------------------------------------------------------------------------- the chain


def test_chain_parses_providers_models_and_camera():
    chain = parse_chain("runway:gen4_turbo, luma:ray-flash-2 -> camera\n"
                        "replicate:acme/clip-maker:5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa")
    assert chain == [RUNWAY, LUMA, CAMERA_MOVE,
                     Candidate("replicate", "acme/clip-maker:5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa")]
    assert [str(c) for c in chain[:3]] == ["runway:gen4_turbo", "luma:ray-flash-2", "camera"]


@pytest.mark.parametrize("text,expect", [
    ("pika:v2", "entry 1 is not provider:model or camera"),
    ("runway", "name the model too, e.g. runway:gen4_turbo"),
    ("luma:ray-9", "Luma has no such model; choose one of ray-2"),
    ("replicate:not a model", "owner/name"),
    (" , ", "is empty"),
])
def test_bad_chain_items_are_named(text, expect):
    with pytest.raises(AdReelInputError) as err:
        parse_chain(text)
    assert err.value.args and expect in str(err.value) and "chain" in str(err.value)


# --------------------------------------------------------------------------- planning (no network)


def test_budget_is_spent_in_scene_order_and_the_rest_gets_the_camera_move(fakes):
    # runway gen4_turbo: 3 s × $0.05 = $0.15 a scene; $0.35 pays for two
    plan = plan_routes(requests_for(fakes, scene(0), scene(1), scene(2)), [RUNWAY, CAMERA_MOVE], quality="best",
                       max_cost_usd=0.35, image_host=host)
    assert [str(r.pick.candidate) for r in plan.routes] == ["runway:gen4_turbo", "runway:gen4_turbo", "camera"]
    assert plan.total_usd == pytest.approx(0.30)
    text = plan.describe()
    assert text.splitlines()[0] == "estimate $0.30 for 3 scene(s) (budget $0.35)"
    assert "scene 2: camera move, $0.00" in text and "more than the $0.05 left of the $0.35 budget" in text
    assert total_requests(fakes) == 0


def test_quality_orders_the_candidates(fakes):
    scenes_ = (scene(0), scene(1, camera="static"), scene(2, segment="cta"))
    chain = [RUNWAY, LUMA, CAMERA_MOVE]
    best = plan_routes(requests_for(fakes, *scenes_), chain, quality="best", image_host=host)
    assert [str(r.pick.candidate) for r in best.routes] == ["runway:gen4_turbo"] * 3
    balanced = plan_routes(requests_for(fakes, *scenes_), chain, quality="balanced", image_host=host)
    assert [str(r.pick.candidate) for r in balanced.routes] == ["runway:gen4_turbo", "camera", "camera"]
    # budget: the cheapest provider first, whatever the chain's order — Runway gen4_turbo 3 s = $0.15,
    # Luma ray-flash-2 (5 s at 720p) ≈ $0.24
    luma_first = [LUMA, RUNWAY, CAMERA_MOVE]
    assert str(plan_routes(requests_for(fakes, scene(0)), luma_first, quality="best", image_host=host)
               .routes[0].pick.candidate) == "luma:ray-flash-2"
    cheap = plan_routes(requests_for(fakes, scene(0), scene(1, segment="cta")), luma_first, quality="budget",
                        image_host=host)
    assert [str(o.candidate) for o in cheap.routes[0].options] == ["runway:gen4_turbo", "luma:ray-flash-2", "camera"]
    assert [str(r.pick.candidate) for r in cheap.routes] == ["runway:gen4_turbo", "camera"]
    assert total_requests(fakes) == 0


def test_a_candidate_without_a_key_is_skipped_with_the_reason(fakes, monkeypatch):
    monkeypatch.delenv("RUNWAY_API_KEY")
    plan = plan_routes(requests_for(fakes, scene(0)), [RUNWAY, LUMA], image_host=host)
    route = plan.routes[0]
    assert str(route.pick.candidate) == "luma:ray-flash-2"
    assert "RUNWAY_API_KEY" in route.options[0].problem
    assert "skipped runway:gen4_turbo" in plan.describe()
    # with nothing left, the one candidate's own error is raised as it is
    with pytest.raises(MissingApiKeyError):
        plan_routes(requests_for(fakes, scene(0)), [RUNWAY])


def test_luma_without_storage_says_why_before_anything_is_sent(fakes):
    problem = image_host_from_environment({})[1]
    assert problem.startswith("storage is not configured")
    with pytest.raises(ProviderConfigError) as err:
        plan_routes(requests_for(fakes, scene(0)), [LUMA], image_host=None, image_host_problem=problem, strict=True)
    msg = str(err.value)
    assert "Luma needs the key image as a public https URL" in msg and "Storage: storage is not configured" in msg
    assert "ADREEL_S3_BUCKET" in msg
    assert total_requests(fakes) == 0


def test_strict_mode_raises_the_engine_budget_error(fakes):
    with pytest.raises(BudgetExceededError) as err:
        plan_routes(requests_for(fakes, scene(0), scene(1)), [RUNWAY], max_cost_usd=0.2, image_host=host, strict=True)
    msg = str(err.value)
    assert "would cost about $0.30, above the budget of $0.20" in msg and "scene 0 $0.15, scene 1 $0.15" in msg
    assert "Nothing was sent" in msg
    # not strict and nowhere to fall back: the same refusal, per scene
    with pytest.raises(BudgetExceededError) as err:
        plan_routes(requests_for(fakes, scene(0), scene(1)), [RUNWAY, LUMA], max_cost_usd=0.2, image_host=host)
    assert "scene 1 cannot be rendered by any candidate" in str(err.value)
    assert total_requests(fakes) == 0


# --------------------------------------------------------------------------- running


def test_a_failed_scene_falls_back_and_the_others_are_not_stopped(fakes, tmp_path):
    runway = fakes["runway"]
    runway.job_latency = 0.6
    runway.outcome_for = lambda body: "safety" if "shot 1" in body.get("promptText", "") else None
    plan = plan_routes(requests_for(fakes, scene(0), scene(1), scene(2)), [RUNWAY, LUMA, CAMERA_MOVE],
                       quality="best", image_host=host)
    outcomes = render(plan, tmp_path)
    assert [o.scene_index for o in outcomes] == [0, 1, 2]
    assert [o.route for o in outcomes] == ["runway:gen4_turbo", "luma:ray-flash-2", "runway:gen4_turbo"]
    failed = outcomes[1].attempts[0]
    assert failed.outcome == "failed" and "safety filter" in failed.reason and failed.job_id in runway.jobs
    assert outcomes[1].result.provider == "luma" and Path(outcomes[1].result.path).is_file()
    assert not runway.calls("cancel"), "the other scenes kept running"
    [luma_create] = fakes["luma"].calls("create")
    assert luma_create.body["keyframes"]["frame0"]["url"].startswith("https://cdn.example.test/key-images/")
    record = outcomes[1].record()
    assert record["route"] == "luma:ray-flash-2" and [a["outcome"] for a in record["attempts"]] == ["failed", "rendered"]


def test_fallback_to_the_camera_move_and_budget_kept_for_a_billed_failure(fakes, tmp_path):
    runway = fakes["runway"]
    runway.outcome = "fail"
    # Runway ($0.15) fits the $0.30 budget; it fails after being submitted (it may be billed), so Luma (≈$0.24)
    # no longer fits and the scene gets the camera move
    plan = plan_routes(requests_for(fakes, scene(0)), [RUNWAY, LUMA, CAMERA_MOVE], max_cost_usd=0.30, image_host=host)
    luma_cost = plan.routes[0].options[1].cost
    assert 0.15 < luma_cost < 0.30
    [outcome] = render(plan, tmp_path)
    assert outcome.is_camera and outcome.route == "camera"
    assert not fakes["luma"].requests
    assert any("luma:ray-flash-2 not tried" in n for n in outcome.notes + plan.routes[0].notes)


def test_a_scene_with_nowhere_to_go_stops_the_run_and_cancels_the_others(fakes, tmp_path):
    runway = fakes["runway"]
    runway.outcome = "never"
    runway.outcome_for = lambda body: "safety" if "shot 1" in body.get("promptText", "") else None
    plan = plan_routes(requests_for(fakes, scene(0), scene(1)), [RUNWAY], image_host=host, strict=True)
    with pytest.raises(ProviderSafetyError) as err:
        render(plan, tmp_path)
    assert "scene 1" in str(err.value)
    never = next(j for j in runway.jobs.values() if j.outcome == "never")
    [cancel] = runway.calls("cancel")
    assert cancel.path == f"/v1/tasks/{never.id}" and never.cancelled


def test_interrupt_cancels_every_remote_job_and_does_not_fall_back(fakes, tmp_path):
    runway = fakes["runway"]
    runway.outcome = "never"
    plan = plan_routes(requests_for(fakes, scene(0), scene(1)), [RUNWAY, LUMA, CAMERA_MOVE], image_host=host)
    seen = set()

    def progress(ev):
        if ev.job_id and ev.status in ("queued", "running"):
            seen.add(ev.scene_index)

    with pytest.raises(ProviderInterrupted):
        render(plan, tmp_path, cancel=lambda: len(seen) == 2, on_progress=progress)
    assert {c.path.rsplit("/", 1)[-1] for c in runway.calls("cancel")} == set(runway.jobs)
    assert not fakes["luma"].requests


def test_an_all_camera_plan_sends_nothing(fakes, tmp_path):
    plan = plan_routes(requests_for(fakes, scene(0, segment="cta")), [RUNWAY, CAMERA_MOVE], quality="balanced",
                       image_host=host)
    [outcome] = render(plan, tmp_path)
    assert outcome.is_camera and total_requests(fakes) == 0


# --------------------------------------------------------------------------- hosting on a real S3 store


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = SeaweedFS(tmp_path_factory.mktemp("s3-hosting"))
    server.start()
    server.create_bucket("keys")
    yield server
    server.stop()


def test_host_image_uploads_once_and_returns_a_working_presigned_url(s3, tmp_path):
    cfg = load_storage_config({**s3.env("keys")}, config_path=tmp_path / "none.json")
    image = tmp_path / "scene000_abc.png"
    Image.new("RGB", (64, 128), (250, 10, 10)).save(image)
    url = host_image(image, cfg, allow_http=True)
    keys = [o["Key"] for o in s3.list_keys("keys", "key-images/")]
    assert len(keys) == 1 and keys[0].startswith("key-images/scene000_abc-") and keys[0].endswith(".png")
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=21600" in url
    with urllib.request.urlopen(url, timeout=10) as r:  # the presigned URL works without credentials
        assert r.read() == image.read_bytes() and r.headers["Content-Type"] == "image/png"
    host_image(image, cfg, allow_http=True)
    assert len(s3.list_keys("keys", "key-images/")) == 1, "the same image is stored once"
    # a cloud provider needs https: a plain-http store is refused, saying what to set
    with pytest.raises(StorageConfigError) as err:
        host_image(image, cfg)
    assert "ADREEL_S3_PUBLIC_BASE_URL" in str(err.value) and SECRET_KEY not in str(err.value)
    public = load_storage_config({**s3.env("keys"), "ADREEL_S3_PUBLIC_BASE_URL": "https://cdn.example.test/keys"},
                                 config_path=tmp_path / "none.json")
    assert host_image(image, public) == f"https://cdn.example.test/keys/{keys[0]}"


def test_image_host_from_environment(s3, tmp_path):
    env = {**s3.env("keys"), "ADREEL_STORAGE_CONFIG": str(tmp_path / "none.json")}
    host_fn, problem = image_host_from_environment(env)
    assert host_fn is None and "plain http" in problem and "ADREEL_S3_PUBLIC_BASE_URL" in problem
    host_fn, problem = image_host_from_environment({**env, "ADREEL_S3_PUBLIC_BASE_URL": "https://cdn.example.test/keys"})
    assert problem is None
    image = tmp_path / "k.png"
    Image.new("RGB", (32, 32), (0, 200, 0)).save(image)
    assert host_fn(str(image)).startswith("https://cdn.example.test/keys/key-images/k-")
    missing = image_host_from_environment({"ADREEL_STORAGE_CONFIG": str(tmp_path / "none.json")})
    assert missing[0] is None and "no bucket" in missing[1]


# --------------------------------------------------------------------------- budgets the workflow cannot raise


@pytest.mark.parametrize("failure", [
    Reply(500, {"error": "An unexpected error occurred."}),  # a 5xx on create: the task may exist
    Reply(0, drop=True),  # the connection drops after the create request was sent: no job id came back
])
def test_an_ambiguous_create_failure_stays_counted_so_the_fallback_cannot_overspend(fakes, tmp_path, failure):
    runway = fakes["runway"]
    runway.script("create", failure)
    # Runway $0.15 + Luma ≈$0.24 > $0.30: if the failed create were released, Luma would be tried and the run
    # could pay for both.
    plan = plan_routes(requests_for(fakes, scene(0)), [RUNWAY, LUMA, CAMERA_MOVE], max_cost_usd=0.30, image_host=host)
    [outcome] = render(plan, tmp_path)
    assert outcome.is_camera
    assert len(runway.calls("create")) == 1, "a create that may have succeeded is never repeated"
    assert fakes["luma"].requests == [], "the fallback was paid for on top of a possibly billed create"
    assert any("may exist and be billed" in n for n in outcome.notes), outcome.notes
    assert any("luma:ray-flash-2 not tried" in n for n in plan.routes[0].notes)


def test_a_clear_refusal_of_the_create_releases_its_estimate(fakes, tmp_path):
    fakes["runway"].script("create", RunwayFake.error(400, "Invalid parameter 'promptText'"))
    plan = plan_routes(requests_for(fakes, scene(0)), [RUNWAY, LUMA, CAMERA_MOVE], max_cost_usd=0.30, image_host=host)
    [outcome] = render(plan, tmp_path)
    assert outcome.route == "luma:ray-flash-2" and len(fakes["luma"].calls("create")) == 1


def test_a_zero_or_huge_widget_budget_is_the_server_ceiling(fakes, monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_COST_USD", "0.20")
    for widget in (0.0, None, 10000.0, float("nan"), float("inf"), -5.0):
        with pytest.raises(BudgetExceededError) as err:
            plan_routes(requests_for(fakes, scene(0), scene(1)), [RUNWAY], max_cost_usd=widget, image_host=host,
                        strict=True)
        msg = str(err.value)
        assert "above the budget of $0.20, the server ceiling ADREEL_MAX_COST_USD" in msg, msg
        assert "only the operator can raise it" in msg
    # a widget below the ceiling still lowers it
    plan = plan_routes(requests_for(fakes, scene(0), scene(1)), [RUNWAY, CAMERA_MOVE], max_cost_usd=0.16,
                       image_host=host)
    assert plan.max_cost_usd == pytest.approx(0.16) and [str(r.pick.candidate) for r in plan.routes] == [
        "runway:gen4_turbo", "camera"]
    assert total_requests(fakes) == 0


def test_paid_providers_are_off_unless_the_operator_enables_them(fakes, monkeypatch, tmp_path):
    monkeypatch.delenv("ADREEL_PAID_PROVIDERS")
    with pytest.raises(PaidProvidersDisabledError) as err:
        plan_routes(requests_for(fakes, scene(0)), [RUNWAY], image_host=host, strict=True)
    assert "ADREEL_PAID_PROVIDERS=1" in str(err.value) and "Nothing was sent" in str(err.value)
    # with the camera move in the chain, the scene gets it and says why
    plan = plan_routes(requests_for(fakes, scene(0)), [RUNWAY, LUMA, CAMERA_MOVE], image_host=host)
    assert plan.routes[0].pick.candidate.is_camera
    assert "ADREEL_PAID_PROVIDERS" in plan.describe()
    for value in ("0", "no", "maybe"):
        monkeypatch.setenv("ADREEL_PAID_PROVIDERS", value)
        with pytest.raises(PaidProvidersDisabledError):
            plan_routes(requests_for(fakes, scene(0)), [RUNWAY], image_host=host, strict=True)
    assert total_requests(fakes) == 0
