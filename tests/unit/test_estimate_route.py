"""The cost badge's numbers (engine: providers.estimate): the price of the run the
node would plan (plan_jobs, with keys and images), and a specific refusal, naming the parameter, for
every bad input."""
from __future__ import annotations

import json

import pytest

from nodes.engine.models import AdReelInputError, StoryboardScene
from nodes.engine.providers import PROVIDERS, RenderJob, plan_jobs
from harness import PLANNING_KEYS, provider_planning_env
from nodes.engine.providers.estimate import MAX_ESTIMATE_SCENES, estimate, estimate_query

WORDS = "Meet RoboVac X2, the vacuum that cleans while you live your life."


@pytest.fixture
def planning_env(monkeypatch, tmp_path):
    return provider_planning_env(monkeypatch, tmp_path)


def planned_cost(provider, model, seconds, narration, options, aspect, image):
    """What the node's own planning charges for one scene."""
    scene = StoryboardScene(index=0, segment="hook", start=0.0, duration=seconds, start_frame=0,
                            frame_count=max(1, round(seconds * 30)), narration=narration,
                            image_prompt="a robot vacuum in a bright living room", visual_direction="hero shot")
    spec = PROVIDERS[provider].models.get(model)
    job = RenderJob(scene=scene, provider=provider, model=model, aspect_ratio=aspect,
                    image_path=image if spec is not None and spec.needs_image else None, options=dict(options))
    return plan_jobs([job])[0].cost


def cases():
    out = []
    for pname, prov in PROVIDERS.items():
        for model, spec in prov.models.items():
            if pname == "heygen":
                continue
            for res in list(spec.resolutions) or [None]:
                for secs in (0.5, 4.0, 6.5, 12.0):
                    out.append((pname, model, secs, WORDS, {"resolution": res} if res else {}, "9:16"))
    for kind, id_key in (("avatar", "avatar_id"), ("talking_photo", "talking_photo_id")):
        for text in (WORDS, "로보백X2를만나보세요집안일은이제그만", " ".join(["word"] * 200)):
            for opts in ({}, {"usd_per_credit": 0.5}, {"resolution": "1080p"}):
                out.append(("heygen", kind, 3.0, text, {id_key: "x", "voice_id": "v", **opts}, "16:9"))
    for opts in ({"price_usd_per_run": 0.31}, {"price_usd_per_second": 0.02},
                 {"price_usd_per_second": 0.02, "duration_input": "d"}, {}):
        for secs in (2.5, 3.5):
            out.append(("replicate", "acme/text2video", secs, WORDS, opts, "9:16"))
    return out


def test_every_model_is_priced_as_the_node_plans_it(planning_env):
    checked = 0
    for provider, model, secs, text, opts, aspect in cases():
        want = planned_cost(provider, model, secs, text, opts, aspect, planning_env)
        got = estimate(provider, model, [(secs, text)], aspect_ratio=aspect,
                       options_json=json.dumps({provider: opts}) if opts else "")
        assert got["scenes"][0]["usd"] == want.usd and got["scenes"][0]["basis"] == want.basis, (provider, model, secs, opts)
        assert got["unknown"] == (1 if want.usd is None else 0)
        checked += 1
    assert checked > 60


def test_a_run_sums_its_scenes_and_checks_the_budget():
    got = estimate_query({"provider": "runway", "model": "gen4_turbo", "durations": "2.5, 3, 12", "max_cost_usd": "0.5"})
    assert [s["requested_duration"] for s in got["scenes"]] == [3, 3, 10]
    assert got["total_usd"] == pytest.approx(0.15 + 0.15 + 0.5)
    assert got["budget_usd"] == 0.5 and not got["within_budget"] and not got["per_scene"]
    # no durations: one scene of the model's shortest clip ("from …"); budget 0: the server's ceiling
    got = estimate_query({"provider": "luma", "model": "ray-flash-2"})
    assert got["per_scene"] and len(got["scenes"]) == 1 and got["scenes"][0]["requested_duration"] == 5
    assert got["budget_note"] == "the server ceiling ADREEL_MAX_COST_USD"
    # options_json as the node reads it: a section's model replaces the widget's
    got = estimate_query({"provider": "luma", "model": "ray-2", "options_json": '{"luma": {"model": "ray-flash-2"}}'})
    assert got["model"] == "ray-flash-2"


def test_no_key_no_image_no_paid_switch_needed(monkeypatch):
    for k in PLANNING_KEYS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delenv("ADREEL_PAID_PROVIDERS", raising=False)
    got = estimate_query({"provider": "fal", "model": "fal-ai/kling-video/v2.1/pro/image-to-video", "durations": "7"})
    assert got["total_usd"] == pytest.approx(0.49 + 5 * 0.098)


LONG = ",".join(["1"] * (MAX_ESTIMATE_SCENES + 1))
BAD = [
    ({}, "provider", "required"),
    ({"provider": "acme", "model": "x"}, "provider", "unknown provider"),
    ({"provider": "luma"}, "model", "required"),
    ({"provider": "luma", "model": "ray-9"}, "model", "no such model"),
    ({"provider": "luma", "model": "x" * 300}, "model", "more than 200"),
    ({"provider": "veo", "model": "veo-2.0-generate-001", "aspect_ratio": "1:1"}, "aspect_ratio", "cannot render"),
    ({"provider": "luma", "model": "ray-2", "aspect_ratio": "4:3"}, "aspect_ratio", "not one of"),
    ({"provider": "luma", "model": "ray-2", "durations": "3,nan"}, "durations[1]", "finite"),
    ({"provider": "luma", "model": "ray-2", "durations": "inf"}, "durations[0]", "finite"),
    ({"provider": "luma", "model": "ray-2", "durations": "-1"}, "durations[0]", "within 0..600"),
    ({"provider": "luma", "model": "ray-2", "durations": "1e9"}, "durations[0]", "within 0..600"),
    ({"provider": "luma", "model": "ray-2", "durations": "3,,4"}, "durations[1]", "number of seconds"),
    ({"provider": "luma", "model": "ray-2", "durations": LONG}, "durations", "more than"),
    ({"provider": "luma", "model": "ray-2", "durations": "3", "narrations": "[1]"}, "narrations", "list of strings"),
    ({"provider": "luma", "model": "ray-2", "durations": "3", "narrations": "{"}, "narrations", "list of strings"),
    ({"provider": "luma", "model": "ray-2", "durations": "3", "narrations": '["a", "b"]'}, "narrations", "2 narrations for 1"),
    ({"provider": "luma", "model": "ray-2", "max_cost_usd": "nan"}, "max_cost_usd", "finite"),
    ({"provider": "luma", "model": "ray-2", "max_cost_usd": "-2"}, "max_cost_usd", "finite"),
    ({"provider": "luma", "model": "ray-2", "max_cost_usd": "lots"}, "max_cost_usd", "must be a number"),
    ({"provider": "luma", "model": "ray-2", "options_json": "{"}, "options_json", "not valid JSON"),
    ({"provider": "luma", "model": "ray-2", "options_json": "[1]"}, "options_json", "JSON object"),
    ({"provider": "luma", "model": "ray-2", "options_json": '{"resolution": "8k"}'}, "scenes[0].resolution", "Luma takes"),
    ({"provider": "luma", "model": "ray-2", "options_json": '{"api_key": "x"}'}, "options_json.api_key", "never taken"),
    ({"provider": "luma", "model": "ray-2", "options_json": "x" * 5000}, "options_json", "more than 4000"),
    ({"provider": "heygen", "model": "avatar", "durations": "3", "narrations": '["hi there"]'}, "scenes[0].avatar_id", "needs"),
    ({"provider": "heygen", "model": "avatar", "durations": "3", "options_json": '{"avatar_id": "a", "voice_id": "v"}'},
     "scenes[0].narration", "has none"),
    ({"provider": "replicate", "model": "acme/v", "options_json": '{"price_usd_per_run": -1}'}, "options_json.price_usd_per_run", "0 or more"),
    ({"provider": "replicate", "model": "not a ref"}, "model", "owner/name"),
    ({"provider": "luma", "model": "ray-2", "cost": "1"}, "query", "a parameter this route does not take"),
]


@pytest.mark.parametrize("query,field,words", BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_bad_inputs_are_refused_naming_the_parameter(query, field, words):
    with pytest.raises(AdReelInputError) as err:
        estimate_query(query)
    assert err.value.field == field and words in err.value.message, str(err.value)


def test_a_key_in_the_options_is_refused_and_never_echoed():
    key = "sk-proj-" + "A1b2C3d4" * 4
    with pytest.raises(AdReelInputError) as err:
        estimate_query({"provider": "luma", "model": "ray-2", "options_json": json.dumps({"note": key})})
    assert key not in str(err.value)
