"""ProviderRender's engine side without ComfyUI (engine.providers.request): widgets → plan, progress text.

No network: every plan here is made locally (the camera move costs nothing and sends nothing; a paid
provider without its key is refused while planning, before any request).
"""
from __future__ import annotations

import pytest

from nodes.engine.models import AdReelInputError, StoryboardScene
from nodes.engine.providers import MissingApiKeyError, ProgressEvent
from nodes.engine.providers.request import ProgressLines, RenderWidgets, aspect_for, plan_run, widget_problem


@pytest.fixture(autouse=True)
def no_keys(monkeypatch, tmp_path):
    for var in ("RUNWAY_API_KEY", "RUNWAYML_API_SECRET", "LUMA_API_KEY", "LUMAAI_API_KEY", "FAL_KEY",
                "GEMINI_API_KEY", "GOOGLE_API_KEY", "HEYGEN_API_KEY", "REPLICATE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ADREEL_SECRETS_FILE", str(tmp_path / "no-secrets.json"))
    monkeypatch.setenv("ADREEL_PAID_PROVIDERS", "1")


def scenes(n=3):
    return [StoryboardScene(index=i, segment="cta" if i == n - 1 else "hook", start=3.0 * i, duration=3.0,
                            start_frame=90 * i, frame_count=90, narration="Meet the sneaker.",
                            image_prompt=f"a red sneaker, scene {i}", camera="zoom_in") for i in range(n)]


@pytest.fixture
def key_image(tmp_path):
    from PIL import Image

    path = tmp_path / "key.png"
    Image.new("RGB", (576, 1024), (200, 40, 40)).save(path)
    return str(path)


def widgets(**kw):
    values = dict(provider="auto", model="gen4_turbo", fallback="camera move", quality="balanced",
                  chain="camera", max_cost_usd=2.0, options_json="")
    values.update(kw)
    return RenderWidgets(**values)


def test_aspect_for_picks_the_nearest_provider_ratio():
    assert aspect_for(1080, 1920) == "9:16"
    assert aspect_for(1920, 1080) == "16:9"
    assert aspect_for(1080, 1080) == "1:1"
    assert aspect_for(1080, 1350) == "1:1"  # 4:5 is nearer to square than to 9:16


def test_auto_with_only_the_camera_plans_every_scene_locally_for_nothing():
    sc = scenes()
    plan, cands = plan_run(sc, [None] * 3, widgets(), aspect_ratio="9:16")
    assert [str(c) for c in cands] == ["camera"]
    assert [r.pick.candidate.is_camera for r in plan.routes] == [True] * 3
    assert plan.total_usd == 0.0 and plan.paid == []


def test_a_missing_key_falls_back_to_the_camera_and_says_why(key_image):
    plan, _ = plan_run(scenes(2), [key_image] * 2, widgets(provider="runway", chain="", quality="best"), aspect_ratio="9:16")
    assert all(r.pick.candidate.is_camera for r in plan.routes)
    assert all(any("RUNWAY_API_KEY" in n for n in r.notes) for r in plan.routes)


def test_one_provider_and_fallback_error_plans_strictly(key_image):
    with pytest.raises(MissingApiKeyError) as err:
        plan_run(scenes(2), [key_image] * 2, widgets(provider="runway", fallback="error", chain=""), aspect_ratio="9:16")
    assert "RUNWAY_API_KEY" in str(err.value)


def test_a_key_pasted_into_the_options_is_refused_without_echoing_it():
    key = "sk-" + "Ab3dE6gH9jK2mN5pQ8sT1vW4"
    with pytest.raises(AdReelInputError) as err:
        plan_run(scenes(1), [None], widgets(options_json='{"api_key": "%s"}' % key), aspect_ratio="9:16")
    assert err.value.field.startswith("options_json") and key not in str(err.value)


@pytest.mark.parametrize("values, words", [
    (dict(max_cost_usd=float("nan")), "max_cost_usd"),
    (dict(max_cost_usd=-1.0), "max_cost_usd: must be 0"),
    (dict(provider="auto", chain="runway:gen9"), "chain"),
    (dict(provider="luma", model="gen4_turbo"), "model"),
    (dict(options_json="{not json"), "options_json"),
])
def test_widget_problem_names_the_field(values, words):
    base = dict(provider="runway", model="gen4_turbo", fallback="error", quality="balanced", max_cost_usd=1.0,
                chain="", options_json="")
    base.update(values)
    problem = widget_problem(**base)
    assert problem and words in problem


def test_widget_problem_passes_good_and_linked_widgets():
    assert widget_problem("runway", "gen4_turbo", "error", "balanced", 1.0, "", "") is None
    assert widget_problem("auto", "gen4_turbo", "camera move", "best", 0.0, "luma:ray-2, camera", '{"seed": 3}') is None
    assert widget_problem(None, "gen4_turbo", "error", "balanced") is None  # linked: checked at the run


def event(index, status, *, fraction=None, remaining=None, elapsed=10.0, job="j1"):
    return ProgressEvent(scene_index=index, provider="runway", model="gen4_turbo", job_id=job, status=status,
                         elapsed=elapsed, remaining=remaining, fraction=fraction, cost_usd=0.5, message="m")


def test_progress_lines_show_the_engines_time_left_and_count_completion(key_image):
    # both scenes: the camera (no key)
    plan, _ = plan_run(scenes(2), [key_image] * 2, widgets(provider="runway", chain=""), aspect_ratio="9:16")
    lines = ProgressLines(plan, "ProviderRender — runway")
    assert lines.done() == 2.0  # camera scenes are done from the start
    lines.lines[0], lines.fractions[0] = "runway gen4_turbo: waiting", 0.0  # as if scene 0 went to Runway
    lines(event(0, "running", fraction=0.4, remaining=33.0))
    text = lines.text()
    assert "scene 0: runway gen4_turbo · running 40% · 10 s · ~33 s left · $0.50 · job j1" in text
    assert text.splitlines()[0] == "ProviderRender — runway" and text.splitlines()[1].startswith("estimate $0.00")
    assert lines.done() == pytest.approx(1.4)
    lines(event(0, "running", remaining=30.0, elapsed=10.0))  # no fraction: from the time left
    assert lines.fractions[0] == pytest.approx(0.25)
    lines(event(0, "done", fraction=1.0, remaining=0.0))
    assert "left" not in lines.lines[0] and lines.done() == 2.0
    lines(ProgressEvent(scene_index=1, provider="", model="", job_id=None, status="fallback", elapsed=0.0,
                        remaining=None, fraction=None, cost_usd=None, message="scene 1: luma failed; falling back"))
    assert lines.lines[1] == "luma failed; falling back"


def test_the_provider_report_carries_the_records_to_the_manifest(key_image):
    """ProviderRender's provider_report → FFmpegAssemble: the records it reads back are the run's, as
    the node shows them; costs, providers and models survive the trip."""
    import json

    from nodes.engine.providers.request import provider_records, provider_report_json, report_text
    from nodes.engine.providers.routes import SceneOutcome

    plan, _ = plan_run(scenes(2), [key_image] * 2, widgets(), aspect_ratio="9:16")
    outcomes = [SceneOutcome(i, "camera", position=i) for i in range(2)]
    _, summary = report_text(plan, outcomes, 1.0)
    text = provider_report_json(summary)
    records = provider_records([text, None, ""])  # an unconnected input adds nothing
    assert records == summary["scenes"] == json.loads(json.dumps([o.record() for o in outcomes]))
    assert [r["provider"] for r in records] == ["camera", "camera"]
    assert provider_records([text, text]) == records * 2  # two ProviderRender nodes: both runs


@pytest.mark.parametrize("text,words", [
    ("not json", "not JSON"),
    ('{"scenes": 3}', 'no "scenes" list'),
    ('["a"]', 'no "scenes" list'),
    ('{"scenes": [{"provider": "runway"}]}', "scenes[0] is not a scene record"),
    ('{"scenes": [{"provider": "runway", "model": "m", "actual_cost_usd": -1}]}', "actual_cost_usd is not a cost"),
    ('{"scenes": [{"provider": "runway", "model": "m", "actual_cost_usd": "free"}]}', "not a cost"),
    ('{"scenes": [{"provider": "runway", "model": "m", "estimated_cost_usd": 1e999}]}', "estimated_cost_usd"),
])
def test_a_bad_provider_report_is_refused_naming_the_field(text, words):
    from nodes.engine.providers.request import provider_records

    with pytest.raises(AdReelInputError) as err:
        provider_records([text])
    assert err.value.field == "provider_report" and words in str(err.value)
