"""Pure parts of the provider engine: prices, durations, retry hints, redaction, secrets, media sniffing."""
from __future__ import annotations

import email.utils
import json
import logging
import pickle
import time
from pathlib import Path

import pytest
from PIL import Image

from nodes.engine.models import AdReelInputError, StoryboardScene
from nodes.engine.providers import (
    PROVIDERS,
    ApiKey,
    MissingApiKeyError,
    ProviderConfigError,
    RenderJob,
    choose_duration,
    estimate_scenes,
    get_api_key,
    list_models,
    plan_jobs,
)
from nodes.engine.providers import cost
from nodes.engine.providers.download import sniff_video
from nodes.engine.providers.fal import app_root
from nodes.engine.providers.http import parse_proto_duration, parse_retry_after, ssl_context
from nodes.engine.providers.images import load_image, sniff_image_type
from nodes.engine.cloud.redaction import RedactingFilter, redact, redact_url, register_secret
from nodes.engine.providers.replicate import first_url, parse_model_ref, progress_from_logs


@pytest.fixture(autouse=True)
def paid_providers_on(monkeypatch, tmp_path):
    """The operator's opt-in; tests of the default (off) set it themselves."""
    monkeypatch.setenv("ADREEL_PAID_PROVIDERS", "1")
    monkeypatch.delenv("ADREEL_MAX_COST_USD", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def spec(provider, model):
    return PROVIDERS[provider].models[model]


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize("provider,model,scene_s,chosen", [
    ("luma", "ray-2", 3.0, 5), ("luma", "ray-2", 5.0, 5), ("luma", "ray-2", 7.0, 9), ("luma", "ray-flash-2", 12.0, 9),
    ("runway", "gen4_turbo", 2.5, 3), ("runway", "gen4_turbo", 1.0, 2), ("runway", "gen4_turbo", 10.0, 10),
    ("runway", "gen4_turbo", 14.0, 10), ("runway", "veo3", 3.0, 8),
    ("fal", "fal-ai/kling-video/v2.1/pro/image-to-video", 6.0, 10), ("fal", "fal-ai/kling-video/v2.1/standard/image-to-video", 4.0, 5),
    ("veo", "veo-3.1-generate-preview", 5.0, 6), ("veo", "veo-3.0-generate-001", 3.0, 4), ("veo", "veo-2.0-generate-001", 4.2, 5),
    ("veo", "veo-2.0-generate-001", 7.5, 8),
])
def test_nearest_allowed_duration_at_least_the_scene(provider, model, scene_s, chosen):
    value, note = choose_duration(scene_s, spec(provider, model))
    assert value == chosen
    if value == scene_s:
        assert note is None
    elif value > scene_s:
        assert f"requested {chosen:g} s" in note and "trims" in note
    else:
        assert "longest clip" in note and "extend" in note


def test_providers_without_duration_control_choose_none():
    assert choose_duration(3.0, spec("heygen", "avatar")) == (None, None)
    assert choose_duration(3.0, spec("fal", "fal-ai/stable-video")) == (None, None)


# --------------------------------------------------------------------------- prices


def published_prices() -> list[tuple]:
    """The rows of docs/provider-contracts.md's published-price table (what a user is told a clip costs)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "provider-contracts.md").read_text(encoding="utf-8")
    block = text.split("<!-- published prices: read by tests/unit/test_providers_units.py -->", 1)[1]
    block = block.split("<!-- end of the published prices -->", 1)[0]
    rows = []
    for line in block.strip().splitlines()[2:]:
        provider, model, res, secs, usd, _source = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((provider, model, res or None, float(secs) if secs else None, float(usd)))
    return rows


def estimate(provider: str, model: str, res, secs) -> float | None:
    if provider == "luma":
        return cost.luma(model, res, secs).usd
    if provider == "veo":
        return cost.veo(model, secs, res).usd
    if provider == "heygen":
        return cost.heygen(model, secs, usd_per_credit=0.99).usd  # the Pro plan the row quotes
    if provider == "replicate":
        return cost.replicate(model, secs, {}).usd
    return getattr(cost, provider)(model, secs).usd


PUBLISHED = published_prices()


def test_the_published_price_table_was_read():
    assert len(PUBLISHED) >= 20 and {p for p, *_ in PUBLISHED} == {"luma", "runway", "heygen", "fal", "veo",
                                                                   "replicate"}


@pytest.mark.parametrize("provider,model,res,secs,usd", PUBLISHED, ids=[f"{p}-{m}-{r}-{s}" for p, m, r, s, _ in PUBLISHED])
def test_estimates_match_the_published_prices(provider, model, res, secs, usd):
    """The estimator against the prices the docs quote (Luma's are computed from a per-Mpx rate and checked
    against its published table)."""
    assert estimate(provider, model, res, secs) == pytest.approx(usd, abs=0.006)


@pytest.mark.parametrize("kind,secs,credits", [
    ("avatar", 2, 0.5), ("avatar", 30, 0.5), ("avatar", 31, 1.0), ("avatar", 90, 1.5), ("talking_photo", 45, 0.2),
])
def test_heygen_bills_in_30_second_steps(kind, secs, credits):
    # the price of a credit is the user's plan (an option); the steps are HeyGen's
    assert cost.heygen(kind, secs, usd_per_credit=0.5).usd == pytest.approx(credits * 0.5, abs=1e-4)
    assert cost.heygen(kind, secs, usd_per_credit=2.0).usd == pytest.approx(credits * 2.0, abs=1e-4)


def test_replicate_prices_are_known_given_or_explicitly_unknown():
    assert cost.replicate("minimax/video-01", 5, {}).usd == 0.5
    assert cost.replicate("minimax/video-01:abc123", 5, {}).usd == 0.5
    unknown = cost.replicate("someone/new-model", 5, {})
    assert unknown.usd is None and not unknown.known and "unknown price" in unknown.basis and "price_usd_per_run" in unknown.basis
    assert cost.replicate("someone/new-model", 5, {"price_usd_per_run": 0.3}).usd == 0.3
    assert cost.replicate("someone/new-model", 6, {"price_usd_per_second": 0.05}).usd == pytest.approx(0.30)
    assert cost.summarize([cost.CostEstimate(0.5, ""), unknown, cost.CostEstimate(0.25, "")]) == (0.75, 1)


def test_proto_duration():
    assert parse_proto_duration("27s") == 27.0
    assert parse_proto_duration("0.5s") == 0.5
    assert parse_proto_duration("1m") is None
    assert parse_proto_duration(None) is None


def test_veo_retry_hint_reads_retryinfo_from_the_body():
    from nodes.engine.providers.http import HttpReply

    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "27s"}]}}
    assert PROVIDERS["veo"].retry_hint(HttpReply(429, {}, body)) == 27.0
    assert PROVIDERS["veo"].retry_hint(HttpReply(429, {}, {"error": {"code": 429}})) is None


# --------------------------------------------------------------------------- redaction & secrets


def test_redact_masks_registered_secrets_and_credential_shapes():
    register_secret("abcd-registered-secret-9876")
    text = "key abcd-registered-secret-9876 in a message"
    assert redact(text) == "key *** in a message"
    assert redact("Authorization: Bearer r8_unregistered123") == "Authorization: Bearer ***"
    assert redact("Authorization: Key id:secretpart") == "Authorization: Key ***"
    assert redact("{'x-goog-api-key': 'AIzaSyUnregistered'}") == "{'x-goog-api-key': '***'}"
    assert redact("X-Api-Key: hg_unregistered") == "X-Api-Key: ***"
    assert redact("GET https://host/v1/files/x?alt=media&key=AIzaSy123") == "GET https://host/v1/files/x?alt=media&key=***"
    assert redact("nothing secret here") == "nothing secret here"


def test_redact_url_drops_presigned_query():
    assert redact_url("https://cdn.example.com/a/b.mp4?X-Amz-Signature=deadbeef") == "https://cdn.example.com/a/b.mp4?…"
    assert redact_url("https://127.0.0.1:8443/x") == "https://127.0.0.1:8443/x"


def test_redacting_filter_renders_and_masks_log_arguments(caplog):
    secret = "sk-filter-test-7f3a9c"
    register_secret(secret)
    log = logging.getLogger("adreel.providers")
    assert any(isinstance(f, RedactingFilter) for f in log.filters)
    caplog.set_level(logging.INFO, logger="adreel.providers")
    log.info("headers were %s", {"Authorization": f"Bearer {secret}"})
    assert secret not in caplog.text and "***" in caplog.text


def test_api_key_never_prints_or_pickles():
    key = ApiKey("sk-apikey-object-123456", "fal", "environment variable FAL_KEY")
    assert key.reveal() == "sk-apikey-object-123456"
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert "sk-apikey-object-123456" not in text and "FAL_KEY" in text
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_key_lookup_order_and_messages(tmp_path):
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"RUNWAY_API_KEY": "from-file-1234", "fal": "fal-by-provider-name"}))
    env = {"ADREEL_SECRETS_FILE": str(secrets)}
    assert get_api_key("runway", ("RUNWAY_API_KEY", "RUNWAYML_API_SECRET"), environ=env).reveal() == "from-file-1234"
    env2 = {**env, "RUNWAYML_API_SECRET": "from-env-5678"}
    key = get_api_key("runway", ("RUNWAY_API_KEY", "RUNWAYML_API_SECRET"), environ=env2)
    assert key.reveal() == "from-env-5678" and "RUNWAYML_API_SECRET" in key.source
    assert get_api_key("fal", ("FAL_KEY",), environ=env).reveal() == "fal-by-provider-name"
    with pytest.raises(MissingApiKeyError) as err:
        get_api_key("heygen", ("HEYGEN_API_KEY",), label="HeyGen", environ=env)
    assert "HEYGEN_API_KEY" in str(err.value) and str(secrets) in str(err.value) and "widget" in str(err.value)


def test_default_secrets_file_location(tmp_path):
    cfg = tmp_path / "cfg"
    (cfg / "adreel").mkdir(parents=True)
    (cfg / "adreel" / "secrets.json").write_text('{"FAL_KEY": "xdg-key-0001"}')
    assert get_api_key("fal", ("FAL_KEY",), environ={"XDG_CONFIG_HOME": str(cfg)}).reveal() == "xdg-key-0001"


def test_broken_secrets_file_does_not_quote_its_content(tmp_path):
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"FAL_KEY": "sk-broken-file-4242" oops')
    with pytest.raises(ProviderConfigError) as err:
        get_api_key("fal", ("FAL_KEY",), environ={"ADREEL_SECRETS_FILE": str(secrets)})
    assert "sk-broken-file-4242" not in str(err.value) and str(secrets) in str(err.value)


def test_base_urls_must_be_https(monkeypatch):
    monkeypatch.setenv("LUMA_BASE_URL", "http://api.example.com/dream-machine/v1")
    with pytest.raises(ProviderConfigError, match="LUMA_BASE_URL"):
        PROVIDERS["luma"].base_url()
    monkeypatch.setenv("LUMA_BASE_URL", "https://proxy.example.com/luma/")
    assert PROVIDERS["luma"].base_url() == "https://proxy.example.com/luma"


def test_bad_ca_bundle_is_a_clear_error(tmp_path, monkeypatch):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    monkeypatch.setenv("ADREEL_CA_BUNDLE", str(bogus))
    with pytest.raises(ProviderConfigError, match="ADREEL_CA_BUNDLE"):
        ssl_context()


# --------------------------------------------------------------------------- media sniffing


def test_image_and_video_magic_bytes():
    assert sniff_image_type(b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert sniff_image_type(b"\xff\xd8\xff\xe0....") == "image/jpeg"
    assert sniff_image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image_type(b"GIF89a......") is None
    assert sniff_video(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00") == "mp4"
    assert sniff_video(b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00") == "mov"
    assert sniff_video(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm") == "webm"
    assert sniff_video(b"<html><body>") is None


def test_load_image_checks_content_size_and_decodability(tmp_path):
    for fmt, mime in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        p = tmp_path / f"img.{fmt.lower()}"
        Image.new("RGB", (90, 160), (1, 2, 3)).save(p, fmt)
        info = load_image(p)
        assert (info.mime, info.width, info.height) == (mime, 90, 160)
        assert info.data_uri_length() == len(info.data_uri())
    renamed = tmp_path / "really-a-gif.png"
    Image.new("RGB", (90, 160)).save(renamed, "GIF")
    with pytest.raises(AdReelInputError, match="not a PNG, JPEG or WebP"):
        load_image(renamed, "jobs[0].image")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    with pytest.raises(AdReelInputError, match="cannot be decoded"):
        load_image(broken)
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (8, 8)).save(tiny)
    with pytest.raises(AdReelInputError, match="at least 16"):
        load_image(tiny)
    with pytest.raises(AdReelInputError, match="does not exist") as err:
        load_image(tmp_path / "missing.png", "jobs[3].image")
    assert err.value.field == "jobs[3].image"


# --------------------------------------------------------------------------- provider details


def test_replicate_helpers():
    assert parse_model_ref("minimax/video-01") == ("minimax", "video-01", None)
    assert parse_model_ref("acme/clip-maker:5c7d5dc6dd8bf75c") == ("acme", "clip-maker", "5c7d5dc6dd8bf75c")
    assert parse_model_ref("no-slash") is None and parse_model_ref("a/b/c") is None
    logs = "loading\n 10%|█         | 5/50 [00:01<00:09]\n 40%|████      | 20/50 [00:04<00:06]\n"
    assert progress_from_logs(logs) == pytest.approx(0.4)
    assert progress_from_logs("no progress here") is None and progress_from_logs(None) is None
    assert first_url(["https://a/1.mp4", "https://a/2.mp4"]) == "https://a/1.mp4"
    assert first_url({"video": "https://a/v.mp4"}) == "https://a/v.mp4"


def test_fal_app_root_drops_the_subpath():
    assert app_root("fal-ai/kling-video/v2.1/standard/image-to-video") == "fal-ai/kling-video"
    assert app_root("fal-ai/stable-video") == "fal-ai/stable-video"


def _scene(**kw):
    values = dict(index=0, segment="hook", start=0, duration=3, start_frame=0, frame_count=90,
                  image_prompt="a sneaker", narration="Hello.")
    values.update(kw)
    return StoryboardScene(**values)


def test_runway_prompt_is_shortened_to_1000_utf16_units(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNWAY_API_KEY", "unit-test-key-1")
    img = tmp_path / "k.png"
    Image.new("RGB", (72, 128)).save(img)
    long_prompt = "🙂 sneaker " * 200  # each 🙂 is two UTF-16 units
    [plan] = plan_jobs([RenderJob(_scene(), "runway", "gen4_turbo", image_path=str(img), prompt=long_prompt)])
    text = plan.params["prompt"]
    assert len(text.encode("utf-16-le")) // 2 <= 1000
    assert long_prompt.startswith(text)
    assert any("prompt shortened" in n for n in plan.notes)


def test_estimate_is_secret_free_and_reports_choices(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNWAY_API_KEY", "Zq9-estimate-secret-key-77")
    monkeypatch.setenv("FAL_KEY", "Zq9-estimate-secret-key-88")
    img = tmp_path / "k.png"
    Image.new("RGB", (1280, 720)).save(img)  # landscape image for a 9:16 output
    jobs = [RenderJob(_scene(), "runway", "gen4_turbo", image_path=str(img)),
            RenderJob(_scene(index=1, duration=6), "fal", "fal-ai/kling-video/v2.1/pro/image-to-video", image_path=str(img))]
    est = estimate_scenes(jobs, max_cost_usd=2.0)
    assert est.within_budget and est.total_usd == pytest.approx(0.15 + 0.98)
    text = json.dumps(est.jobs)
    assert "estimate-secret-key" not in text
    assert est.jobs[1]["requested_duration"] == 10 and any("requested 10 s" in n for n in est.jobs[1]["notes"])
    assert any("crop or pad" in n for n in est.jobs[0]["notes"])
    assert "estimated $1.13 for 2 scene(s)" in est.describe()


def test_every_listed_model_plans(monkeypatch, tmp_path):
    img = tmp_path / "k.png"
    Image.new("RGB", (720, 1280)).save(img)
    for provider in PROVIDERS.values():
        for var in provider.key_env:
            monkeypatch.setenv(var, f"key-for-{provider.name}")
    for provider, models in list_models().items():
        for model in models:
            job = RenderJob(_scene(), provider, model, image_path=str(img),
                            options={"avatar_id": "a", "talking_photo_id": "t", "voice_id": "v"})
            [plan] = plan_jobs([job], image_host=lambda p: "https://cdn.example.com/k.png")
            assert plan.cost.usd is not None and plan.cost.usd > 0, (provider, model)


# --------------------------------------------------------------------------- prices the user may set: finite, >= 0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), -0.01, -100, "NaN", "-1", True, [1]])
def test_every_price_option_must_be_finite_and_not_negative(value):
    with pytest.raises(AdReelInputError) as err:
        cost.require_price(value, "jobs[0].options.price_usd_per_run")
    assert "jobs[0].options.price_usd_per_run" in str(err.value)
    for key in ("price_usd_per_run", "price_usd_per_second"):
        with pytest.raises(AdReelInputError) as err:
            cost.replicate("acme/pricey", 5.0, {key: value})
        assert key in str(err.value)
    with pytest.raises(AdReelInputError) as err:
        cost.heygen("avatar", 10.0, value)
    assert "usd_per_credit" in str(err.value)


def test_a_cost_estimate_is_never_nan_or_negative():
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError):
            cost.CostEstimate(bad, "x")
    assert cost.CostEstimate(0.0, "free").usd == 0.0 and cost.CostEstimate(None, "unknown").usd is None


@pytest.mark.parametrize("provider,options,field", [
    ("replicate", {"price_usd_per_run": float("nan")}, "options.price_usd_per_run"),
    ("replicate", {"price_usd_per_second": -3}, "options.price_usd_per_second"),
    ("heygen", {"usd_per_credit": -100, "avatar_id": "Daisy-inskirt-20220818",
                "voice_id": "2d5b0e6cf36f460aa7fc47e3eee4ba54"}, "options.usd_per_credit"),
    ("heygen", {"usd_per_credit": float("nan"), "avatar_id": "Daisy-inskirt-20220818",
                "voice_id": "2d5b0e6cf36f460aa7fc47e3eee4ba54"}, "options.usd_per_credit"),
])
def test_planning_refuses_bad_prices_naming_the_option(provider, options, field, monkeypatch, tmp_path):
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_unit-test-token-000000")
    monkeypatch.setenv("HEYGEN_API_KEY", "heygen-unit-test-key-0000")
    monkeypatch.setenv("ADREEL_SECRETS_FILE", str(tmp_path / "none.json"))
    model = "acme/pricey" if provider == "replicate" else "avatar"
    with pytest.raises(AdReelInputError) as err:
        plan_jobs([RenderJob(_scene(), provider, model, options=dict(options))])
    assert f"jobs[0].{field}" in str(err.value)


def test_report_and_ui_summary_never_carry_nan():
    from nodes.engine.providers.request import json_safe

    data = json_safe({"a": float("nan"), "b": [1.0, float("inf"), {"c": float("-inf")}], "d": "x", "e": 2})
    assert data == {"a": None, "b": [1.0, None, {"c": None}], "d": "x", "e": 2}
    json.dumps(data, allow_nan=False)


# --------------------------------------------------------------------------- keys pasted into the options


@pytest.mark.parametrize("name", [
    "hf_token", "key", "github_token", "aws_secret_access_key", "private_key", "api_key", "X-Api-Key", "apikey",
    "githubToken", "client_secret", "accessToken", "refresh_token", "password", "Authorization", "hftoken",
    "openai_key", "credentials",
])
def test_credential_option_names_are_refused_anywhere(name):
    from nodes.engine.providers.request import parse_options

    for text in (json.dumps({name: "x"}), json.dumps({"replicate": {"input": {name: "x"}}}),
                 json.dumps({"heygen": {"extra": [{"nested": {name: 1}}]}})):
        with pytest.raises(AdReelInputError) as err:
            parse_options(text)
        assert name in str(err.value) and "never taken from a workflow" in str(err.value)


@pytest.mark.parametrize("value", [
    "hf_" + "aBcD1234" * 4, "r8_" + "Zx9" * 8, "ghp_" + "A1b2C3d4" * 5, "sk-proj-" + "q1W2e3R4" * 3,
    "gsk_" + "m9N8b7V6" * 6, "AIzaSy" + "B1c2D3e4F5" * 3 + "xyz", "AKIAIOSFODNN7EXAMPLE", "fw_" + "p0O9i8U7" * 3,
    "luma-CANARY-7d1f0c9e4b2a48f1a3c5", "xK9mP2qR7vL4nW8zT3bY6cF1hJ5dG0sA",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIB...", "Token r8_abcdefghijklmnopqrstu",
])
def test_key_shaped_values_are_refused_without_echoing_them(value):
    from nodes.engine.providers.request import parse_options

    for text in (json.dumps({"replicate": {"input": {"prompt_extra": value}}}), json.dumps({"note": [value]}),
                 json.dumps({"replicate": {"input": {value: 1}}})):
        with pytest.raises(AdReelInputError) as err:
            parse_options(text)
        msg = str(err.value)
        assert "shaped like an API key" in msg and value not in msg and value[:12] not in msg


def test_ordinary_options_pass():
    from nodes.engine.providers.request import parse_options

    opts = parse_options(json.dumps({
        "seed": 7, "resolution": "1080p", "negative_prompt": "blurry",
        "heygen": {"avatar_id": "Angela-inblackskirt-20220820", "voice_id": "2d5b0e6cf36f460aa7fc47e3eee4ba54",
                   "usd_per_credit": 0.5},
        "replicate": {"model": "stability-ai/stable-video-diffusion:3f0457e4619daac51203dedb472816fd4af51f3149fa7a9e0b5ffcf1b8172438",
                      "input": {"max_tokens": 10, "motion_bucket_id": 127, "video_length": "14_frames_with_svd"},
                      "price_usd_per_run": 0.4},
        "fal": {"cfg_scale": 0.5}, "veo": {"person_generation": "allow_adult"},
    }))
    assert opts.seed == 7 and opts.per_provider["heygen"]["usd_per_credit"] == 0.5


@pytest.mark.parametrize("text,expect", [
    ('{"replicate": {"price_usd_per_run": NaN}}', "options_json.replicate.price_usd_per_run: must be a finite number"),
    ('{"fal": {"cfg_scale": Infinity}}', "options_json.fal.cfg_scale: must be a finite number"),
    ("[" * 50000 + "]" * 50000, "options_json: "),
    ('{"a":' * 40 + "1" + "}" * 40, "nested more than 16 levels"),
])
def test_non_finite_numbers_and_deep_nesting_in_options_are_field_errors(text, expect):
    from nodes.engine.providers.request import parse_options

    with pytest.raises(AdReelInputError) as err:
        parse_options(text)
    assert expect in str(err.value)


@pytest.mark.parametrize("text,field", [
    ('{"heygen": {"usd_per_credit": -100}}', "options_json.heygen.usd_per_credit"),
    ('{"replicate": {"price_usd_per_run": -0.5}}', "options_json.replicate.price_usd_per_run"),
    ('{"replicate": {"price_usd_per_second": -1}}', "options_json.replicate.price_usd_per_second"),
])
def test_negative_prices_are_refused_when_the_options_are_read(text, field):
    from nodes.engine.providers.request import parse_options

    with pytest.raises(AdReelInputError) as err:
        parse_options(text)
    assert field in str(err.value) and "0 or more" in str(err.value)


# --------------------------------------------------------------------------- request.py (ProviderRender's logic)


def test_candidates_for_one_provider_and_for_auto():
    from nodes.engine.providers.routes import CAMERA_MOVE, Candidate
    from nodes.engine.providers.request import Options, candidates, parse_options

    assert candidates("runway", "gen4_turbo", "error", "balanced", "", Options()) == [Candidate("runway", "gen4_turbo")]
    assert candidates("runway", "gen4_turbo", "camera move", "best", "", Options())[-1] == CAMERA_MOVE
    opts = parse_options('{"replicate": {"model": "acme/clip-maker"}}')
    assert candidates("replicate", "minimax/video-01", "error", "best", "", opts) == [Candidate("replicate", "acme/clip-maker")]
    auto = candidates("auto", "gen4_turbo", "error", "budget", "", Options())
    assert auto[-1] == CAMERA_MOVE and len(auto) >= 2
    with pytest.raises(AdReelInputError) as err:
        candidates("runway", "ray-2", "error", "best", "", Options())
    assert "model: is not a Runway model" in str(err.value) and "ray-2" not in str(err.value)


def test_poll_interval_comes_from_the_environment_or_the_provider(monkeypatch):
    from nodes.engine.providers.request import poll_interval

    monkeypatch.delenv("ADREEL_PROVIDER_POLL_SECONDS", raising=False)
    assert poll_interval() is None
    monkeypatch.setenv("ADREEL_PROVIDER_POLL_SECONDS", "0.5")
    assert poll_interval() == 0.5
    for bad in ("0", "-1", "soon"):
        monkeypatch.setenv("ADREEL_PROVIDER_POLL_SECONDS", bad)
        assert poll_interval() is None


def test_report_of_a_camera_only_run_shows_the_server_ceiling(monkeypatch):
    from nodes.engine.providers.routes import CAMERA_MOVE, SceneOutcome, SceneRequest, plan_routes
    from nodes.engine.providers.request import report_text

    monkeypatch.setenv("ADREEL_MAX_COST_USD", "3")
    plan = plan_routes([SceneRequest(scene=_scene(), aspect_ratio="9:16")], [CAMERA_MOVE], max_cost_usd=0)
    text, summary = report_text(plan, [SceneOutcome(0, "camera")], 1.0)
    assert "budget $3.00, the server ceiling ADREEL_MAX_COST_USD" in text
    assert summary["max_cost_usd"] == 3.0 and summary["scenes"][0]["provider"] == "camera"
    json.dumps(summary, allow_nan=False)
