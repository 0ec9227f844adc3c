"""GET /adreel/providers/estimate on a real ComfyUI: the engine's numbers, 400 naming the parameter for
bad input, and the server keeps serving."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from nodes.engine.providers.estimate import estimate_query

pytestmark = pytest.mark.comfy
ROUTE = "/adreel/providers/estimate"


def get(comfy, params, method="GET"):
    query = urllib.parse.urlencode(params, doseq=True)
    req = urllib.request.Request(f"{comfy.url}{ROUTE}?{query}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body), dict(e.headers)
        except ValueError:
            return e.code, {"raw": body.decode(errors="replace")}, dict(e.headers)


def test_answers_the_engines_estimate(comfy):
    params = {"provider": "runway", "model": "gen4_turbo", "aspect_ratio": "9:16", "durations": "2.5,3,12",
              "max_cost_usd": "0.5"}
    status, body, headers = get(comfy, params)
    assert status == 200, body
    assert body == json.loads(json.dumps(estimate_query(params)))
    assert body["total_usd"] == pytest.approx(0.8) and not body["within_budget"]
    assert headers.get("Cache-Control") == "no-store"
    # narrations travel as a JSON list (HeyGen prices what is spoken)
    status, body, _ = get(comfy, {"provider": "heygen", "model": "talking_photo", "durations": "3,4",
                                  "narrations": json.dumps(["안녕하세요 여러분", " ".join(["word"] * 200)]),
                                  "options_json": json.dumps({"heygen": {"talking_photo_id": "p", "voice_id": "v"}})})
    assert status == 200, body
    assert body["scenes"][1]["usd"] > body["scenes"][0]["usd"]  # 200 words take longer to say than 4 s


@pytest.mark.parametrize("params,field", [
    ({"provider": "luma", "model": "ray-2", "durations": "nan"}, "durations[0]"),
    ({"provider": "luma", "model": "ray-2", "durations": "Infinity"}, "durations[0]"),
    ({"provider": "nope", "model": "x"}, "provider"),
    ({"provider": ["luma", "runway"], "model": "ray-2"}, "provider"),
    ({"provider": "luma", "model": "ray-2", "max_cost_usd": "1e400"}, "max_cost_usd"),
    ({"provider": "luma", "model": "ray-2", "options_json": '{"hf_token": "abc"}'}, "options_json.hf_token"),
    ({"provider": "luma", "model": "ray-2", "evil": "1"}, "query"),
])
def test_bad_input_is_a_400_naming_the_parameter(comfy, params, field):
    status, body, _ = get(comfy, params)
    assert status == 400, body
    assert body["field"] == field and body["error"].startswith(f"{field}: "), body
    assert comfy.alive()


def test_only_reads(comfy):
    status, _, _ = get(comfy, {"provider": "luma", "model": "ray-2"}, method="POST")
    assert status in (404, 405)
    before = comfy.get_json("/queue"), len(comfy.get_json("/history"))
    for _ in range(3):
        assert get(comfy, {"provider": "luma", "model": "ray-2", "durations": "5"})[0] == 200
    assert (comfy.get_json("/queue"), len(comfy.get_json("/history"))) == before
    # a request line longer than the server takes is refused by the server itself, which keeps serving
    status, _, _ = get(comfy, {"provider": "luma", "model": "ray-2", "durations": ",".join(["1.5"] * 5000)})
    assert status in (400, 414) and comfy.alive()
