"""The job API's pieces that need no ComfyUI: its keys (kept only as hashes), where a webhook may go, and the
per-key rate limit (a real redis-server and the API process).

The webhook signature is checked with the ``standardwebhooks`` library, an implementation of the scheme
independent of AdReel's."""
from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fleet.api.settings import load_api_settings
from fleet.api.webhooks import Refused, check_url, sign
from fleet.config import FleetError

KEY = "k-" + "x" * 30
SECRET = "f" * 64
#: the fleet's own settings, as an operator gives them to the API: Redis with its password, the signing secret
FLEET_ENV = {"ADREEL_REDIS_URL": "redis://:pw-0123456789@127.0.0.1:6379/0", "ADREEL_FLEET_SECRET": SECRET}


def test_keys_are_kept_only_as_hashes_and_short_keys_are_refused():
    settings = load_api_settings(environ={**FLEET_ENV, "ADREEL_API_KEYS": f" {KEY} , other-key-0123456789 "})
    assert KEY not in repr(settings) and KEY not in json.dumps([settings.key_hashes, list(settings.webhook_secrets)])
    owner = settings.owner_of(KEY)
    assert owner and owner == settings.owner_of(KEY) and owner != settings.owner_of("other-key-0123456789")
    assert settings.owner_of(KEY + "y") is None and settings.owner_of("") is None
    with pytest.raises(FleetError, match="shorter than 16"):
        load_api_settings(environ={**FLEET_ENV, "ADREEL_API_KEYS": "short"})
    with pytest.raises(FleetError, match="ADREEL_API_KEYS"):
        load_api_settings(environ=FLEET_ENV)


@pytest.mark.parametrize("env, named", [
    ({"ADREEL_FLEET_SECRET": ""}, "ADREEL_FLEET_SECRET is not set"),
    ({"ADREEL_FLEET_SECRET": "short-secret"}, "at least 32"),
    ({"ADREEL_REDIS_URL": "redis://127.0.0.1:6379/0"}, "no password"),
])
def test_the_api_needs_the_fleets_signing_secret_and_a_redis_password(env, named):
    with pytest.raises(FleetError, match=named) as err:
        load_api_settings(environ={**FLEET_ENV, "ADREEL_API_KEYS": KEY, **env})
    assert KEY not in str(err.value) and SECRET not in str(err.value) and "pw-0123456789" not in str(err.value)


def resolver(table):
    return lambda host, port: [ipaddress.ip_address(a) for a in table[host]]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9000/hook", "http://[::1]/hook", "http://10.1.2.3/hook", "https://192.168.0.7/hook",
    "http://internal.example/hook", "https://localhost/hook",
])
def test_a_webhook_never_goes_to_loopback_or_private_addresses_unless_allowed(url):
    names = resolver({"internal.example": ["172.16.5.4"], "localhost": ["127.0.0.1"], "127.0.0.1": ["127.0.0.1"],
                      "::1": ["::1"], "10.1.2.3": ["10.1.2.3"], "192.168.0.7": ["192.168.0.7"]})
    with pytest.raises(Refused, match="ADREEL_API_WEBHOOK_ALLOW_PRIVATE"):
        check_url(url, allow_private=False, resolver=names)
    assert check_url(url, allow_private=True, resolver=names) == url


@pytest.mark.parametrize("url, allow", [
    ("http://169.254.169.254/latest/meta-data", True), ("http://metadata.example/", True),
    ("ftp://hooks.example/", False), ("https://user:pw@hooks.example/", False), ("not a url", False),
    ("https://hooks.example:99999/", False), ("https://split.example/", False),
])
def test_metadata_addresses_and_odd_urls_are_always_refused(url, allow):
    names = resolver({"metadata.example": ["169.254.169.254"], "hooks.example": ["93.184.216.34"],
                      "169.254.169.254": ["169.254.169.254"], "split.example": ["93.184.216.34", "10.0.0.1"]})
    with pytest.raises(Refused):
        check_url(url, allow_private=allow, resolver=names)
    assert check_url("https://hooks.example/in", allow_private=False, resolver=names) == "https://hooks.example/in"


def test_the_signature_verifies_with_the_standard_webhooks_library():
    standardwebhooks = pytest.importorskip("standardwebhooks")
    secret = hashlib.sha256(("adreel-webhook:" + KEY).encode()).digest()  # as the README derives it
    body = json.dumps({"id": "evt_1", "type": "job.succeeded", "data": {"status": "succeeded"}})
    stamp = int(time.time())
    headers = {"webhook-id": "evt_1", "webhook-timestamp": str(stamp), "webhook-signature": sign(secret, "evt_1",
                                                                                                 stamp, body)}
    hook = standardwebhooks.Webhook("whsec_" + base64.b64encode(secret).decode())
    assert hook.verify(body, headers)["type"] == "job.succeeded"
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        hook.verify(body.replace("succeeded", "failed"), headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        hook.verify(body, {**headers, "webhook-timestamp": str(stamp - 3600)})


def test_each_key_has_its_own_rate_limit_across_the_api(tmp_path):
    """A real redis-server and `python -m fleet api` (no ComfyUI): a key past its requests per minute gets 429
    with Retry-After; another key goes on. The window is shared through Redis, so a second API process on the
    same fleet counts the same requests."""
    import requests

    from fleet_stack import ApiServer, Fleet, RedisServer

    other = "k-" + "y" * 30
    red = RedisServer(tmp_path / "redis").start()
    fleet = Fleet(base=tmp_path, redis=red, s3=None, fleet_env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                                               "ADREEL_API_RATE_PER_MINUTE": "12",
                                                               "ADREEL_FLEET_SECRET": "s" * 64})
    first, second = ApiServer(fleet, [KEY, other]), ApiServer(fleet, [KEY, other])
    try:
        first.wait_healthy(), second.wait_healthy()
        if time.time() % 60 > 50:  # the window turns every minute: start the count early in one
            time.sleep(61 - time.time() % 60)
        answers = [requests.get((first if n % 2 else second).url + "/api/v2/jobs", timeout=10,
                                headers={"Authorization": f"Bearer {KEY}"}) for n in range(13)]
        assert [a.status_code for a in answers] == [200] * 12 + [429]
        err = answers[-1].json()["error"]
        assert err["code"] == "rate_limited" and 1 <= int(answers[-1].headers["Retry-After"]) <= 60
        assert requests.get(first.url + "/api/v2/jobs", headers={"Authorization": f"Bearer {other}"},
                            timeout=10).status_code == 200
        assert requests.get(first.url + "/api/v2/health", timeout=10).status_code == 200
    finally:
        first.stop()
        second.stop()
        red.stop()


def _shipped(name):
    from fleet.jobs import load_workflow
    from fleet.api.views import SHIPPED

    return load_workflow(str(SHIPPED / f"{name}.json"))


@pytest.mark.parametrize("name", ["brief_to_ad_upload", "brief_to_ad_cloud"])
def test_an_approval_prefix_writes_the_script_storyboard_and_key_images_and_nothing_that_costs(name):
    from fleet.api.approval import prefix_prompt

    prompt = _shipped(name)
    prefix = prefix_prompt(prompt)
    classes = sorted(n["class_type"] for n in prefix.values())
    assert classes == ["BrandBrief", "BrandImage", "BrandImage", "PreviewImage", "SceneKeyImage", "ScriptLLM",
                       "StoryboardSplit"]
    # every link inside the prefix points at a node of the prefix, with the workflow's own widgets
    for node_id, node in prefix.items():
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert value[0] in prefix, (node_id, value)
        if node_id in prompt:
            assert node == prompt[node_id]


def test_an_edited_script_is_checked_as_scriptllm_checks_it_and_the_estimate_is_providerrenders():
    from fleet.api.approval import check_script, estimate
    from nodes.engine.models import AdReelInputError

    prompt = _shipped("brief_to_ad_cloud")
    with pytest.raises(AdReelInputError, match=r"script.*scenes"):
        check_script(prompt, {"title": "x", "scenes": [{"narration": "hi", "start": 0, "end": 99}]})
    with pytest.raises(AdReelInputError, match="script"):
        check_script(prompt, ["not", "a", "script"])
    scenes = [(3.0, "Morning starts here."), (4.0, "Rich crema in every cup."), (3.0, "Shop now at acme.com")]
    est = estimate(prompt, {"scenes": [{"duration": d, "narration": n} for d, n in scenes]})
    (runway,) = est["providers"]
    assert runway["provider"] == "runway" and len(runway["scenes"]) == 3 and est["total_usd"] > 0
    assert est["total_usd"] == pytest.approx(runway["total_usd"])
    assert estimate(_shipped("brief_to_ad_upload"), None)["total_usd"] == 0.0


# ------------------------------------------------------------------ a real API on a real redis-server, no worker
@pytest.fixture(scope="module")
def queue_api(tmp_path_factory):
    """`python -m fleet api` on a real redis-server with no worker: what is submitted stays queued. Key A may
    have 4 jobs waiting (ADREEL_API_MAX_QUEUED_PER_KEY), the fleet 10 (ADREEL_FLEET_MAX_QUEUED)."""
    from fleet_stack import ApiServer, Fleet, RedisServer, fleet_secret

    base = tmp_path_factory.mktemp("queue-api")
    red = RedisServer(base / "redis").start()
    fleet = Fleet(base=base, redis=red, s3=None, fleet_env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                                            "ADREEL_FLEET_SECRET": fleet_secret(),
                                                            "ADREEL_FLEET_MAX_QUEUED": "10",
                                                            "ADREEL_API_MAX_QUEUED_PER_KEY": "4",
                                                            "ADREEL_API_WEBHOOK_ALLOW_PRIVATE": "1",
                                                            "ADREEL_API_WEBHOOK_RETRY_SECONDS": "1"})
    api = ApiServer(fleet, [KEY, OTHER])
    try:
        yield api.wait_healthy()
    finally:
        api.stop()
        print("--- api log tail ---\n" + api.log_tail())
        red.stop()


OTHER = "k-" + "z" * 30


def call(api, method, path, key=KEY, **kw):
    import requests

    headers = {"Authorization": f"Bearer {key}", **kw.pop("headers", {})}
    return requests.request(method, api.url + path, headers=headers, timeout=30, **kw)


def brief(**values):
    return {"workflow_name": "brief_to_ad_upload", "brief": {"product": "Tea", **values},
            "node_inputs": {"ScriptLLM": {"backend": "template"}}}


def cancel_all(api, key=KEY):
    for job in call(api, "GET", "/api/v2/jobs?status=queued&limit=100", key=key).json()["jobs"]:
        assert call(api, "POST", f"/api/v2/jobs/{job['id']}/cancel", key=key).status_code == 200


def test_a_csv_batch_makes_a_job_per_row_and_variant_with_the_rows_values(queue_api):
    csv_text = "brand,product,cta\nAcme,Daybreak Espresso,Shop now\n한빛,녹차 라떼,지금 구매\n"
    r = call(queue_api, "POST", "/api/v2/batches", json={
        "workflow_name": "brief_to_ad_upload", "csv": csv_text, "variants": 2, "metadata": {"campaign": "may"},
        "node_inputs": {"ScriptLLM": {"backend": "template"}}})
    assert r.status_code == 201, r.text
    batch = r.json()
    assert r.headers["Location"] == f"/api/v2/batches/{batch['id']}"
    assert (batch["rows"], batch["variants"], batch["counts"]) == (2, 2, {"queued": 4})
    got = sorted((j["adreel"]["row"], j["adreel"]["variant"], j["adreel"]["brand"]) for j in batch["jobs"])
    assert got == [(1, 0, "Acme"), (1, 1, "Acme"), (2, 0, "한빛"), (2, 1, "한빛")]
    for job in batch["jobs"]:
        graph = call(queue_api, "GET", f"/api/v2/jobs/{job['id']}/workflow").json()["workflow"]
        (b,) = [n for n in graph.values() if n["class_type"] == "BrandBrief"]
        (s,) = [n for n in graph.values() if n["class_type"] == "ScriptLLM"]
        row = {1: ("Acme", "Daybreak Espresso", "Shop now"), 2: ("한빛", "녹차 라떼", "지금 구매")}[job["adreel"]["row"]]
        assert (b["inputs"]["brand"], b["inputs"]["product"], b["inputs"]["cta"]) == row
        assert s["inputs"]["seed"] == 7 + job["adreel"]["variant"] and s["inputs"]["backend"] == "template"
        assert job["metadata"] == {"campaign": "may"}
    listed = call(queue_api, "GET", f"/api/v2/jobs?batch={batch['id']}").json()["jobs"]
    assert sorted(j["id"] for j in listed) == sorted(j["id"] for j in batch["jobs"])
    assert [j["adreel"]["brand"] for j in call(queue_api, "GET", "/api/v2/jobs?brand=acme").json()["jobs"]] \
        == ["Acme", "Acme"]
    assert call(queue_api, "GET", f"/api/v2/batches/{batch['id']}", key=OTHER).status_code == 404
    assert call(queue_api, "GET", f"/api/v2/batches/{batch['id']}").json()["counts"] == {"queued": 4}
    cancel_all(queue_api)
    assert call(queue_api, "GET", f"/api/v2/batches/{batch['id']}").json()["counts"] == {"canceled": 4}


@pytest.mark.parametrize("body, status, code, named", [
    ({"csv": "brand,<colour>\nAcme,red\n"}, 422, "invalid_rows", "'csv' row 1: unknown column; BrandBrief's"),
    ({"jsonl": '{"brand": "Acme"}\n[1]\n'}, 422, "invalid_rows", "'jsonl' line 2"),
    ({"jsonl": '{"brand": "Acme", "cta": {"x": 1}}\n'}, 422, "invalid_request", "row 1.cta"),
    ({"rows": [{"brand": "Acme"}], "csv": "brand\nAcme\n"}, 422, "invalid_request", "exactly one of"),
    ({"rows": [{"brand": "../../etc"}]}, 422, "invalid_request", "row 1.brand"),
    ({"rows": [{"brand": "Acme"}], "variants": 0}, 422, "invalid_request", "'variants'"),
    ({"rows": [{"brand": f"B{i}"} for i in range(6)], "variants": 2}, 422, "batch_too_large", "12 jobs"),
])
def test_a_bad_batch_is_refused_naming_the_row_and_field_and_nothing_is_queued(queue_api, body, status, code,
                                                                                named):
    r = call(queue_api, "POST", "/api/v2/batches", json={"workflow_name": "brief_to_ad_upload", **body})
    err = r.json()["error"]
    assert (r.status_code, err["code"]) == (status, code) and named in err["message"], r.text
    assert "<colour>" not in r.text and "etc" not in r.text
    assert call(queue_api, "GET", "/api/v2/jobs?status=queued").json()["jobs"] == []


def test_each_key_has_its_own_queue_quota_and_the_429_says_how_many_of_its_jobs_wait(queue_api):
    made = [call(queue_api, "POST", "/api/v2/jobs", json=brief(brand=f"Q{n}")) for n in range(4)]
    assert [r.status_code for r in made] == [201] * 4
    over = call(queue_api, "POST", "/api/v2/jobs", json=brief(brand="Q4"), headers={"Idempotency-Key": "q-4"})
    assert over.status_code == 429 and int(over.headers["Retry-After"]) > 0
    err = over.json()["error"]
    assert err["code"] == "key_queue_full" and "this API key has 4 job(s) waiting" in err["message"]
    assert "ADREEL_API_MAX_QUEUED_PER_KEY" in err["message"]
    assert err["details"] == {"waiting_for_key": 4, "max_queued_per_key": 4, "adding": 1}
    batch = call(queue_api, "POST", "/api/v2/batches", json={"workflow_name": "brief_to_ad_upload",
                                                             "rows": [{"brand": "R"}]})
    assert batch.status_code == 429 and batch.json()["error"]["code"] == "key_queue_full"
    # another key is not held up by this one's quota, and the fleet's cap (10) still counts every key's jobs
    others = [call(queue_api, "POST", "/api/v2/jobs", key=OTHER, json=brief(brand=f"O{n}")) for n in range(4)]
    assert [r.status_code for r in others] == [201] * 4
    assert len(call(queue_api, "GET", "/api/v2/jobs?status=queued").json()["jobs"]) == 4
    # past both, the fleet's cap answers: 8 jobs wait in all, 3 more would pass its 10
    both = call(queue_api, "POST", "/api/v2/batches", json={"workflow_name": "brief_to_ad_upload",
                                                            "rows": [{"brand": f"S{n}"} for n in range(3)]})
    err = both.json()["error"]
    assert both.status_code == 429 and err["code"] == "queue_full" and "8 job(s) are waiting" in err["message"]
    # a job that leaves the queue frees its place: the refused request's Idempotency-Key is free as well
    first = made[0].json()["id"]
    assert call(queue_api, "POST", f"/api/v2/jobs/{first}/cancel").json()["status"] == "canceled"
    again = call(queue_api, "POST", "/api/v2/jobs", json=brief(brand="Q4"), headers={"Idempotency-Key": "q-4"})
    assert again.status_code == 201, again.text
    cancel_all(queue_api)
    cancel_all(queue_api, key=OTHER)


def test_a_brand_is_a_plain_name_set_in_the_brief_and_filters_the_job_list(queue_api):
    ok = call(queue_api, "POST", "/api/v2/jobs", json={**brief(), "brand": "Blue Finch Co."})
    assert ok.status_code == 201, ok.text
    job_id = ok.json()["id"]
    graph = call(queue_api, "GET", f"/api/v2/jobs/{job_id}/workflow").json()["workflow"]
    assert [n["inputs"]["brand"] for n in graph.values() if n["class_type"] == "BrandBrief"] == ["Blue Finch Co."]
    assert [j["id"] for j in call(queue_api, "GET", "/api/v2/jobs?brand=blue%20finch%20co.").json()["jobs"]] \
        == [job_id]
    for bad in ("../brands/x", "a/b", "a\\b", ".hidden", "x" * 65, " padded", "tab\there", 7, ""):
        r = call(queue_api, "POST", "/api/v2/jobs", json={**brief(), "brand": bad})
        assert r.status_code == 422 and "'brand' must be a brand's plain name" in r.json()["error"]["message"], bad
        assert "brands/x" not in r.text and "hidden" not in r.text
    cancel_all(queue_api)


def test_a_keys_file_gives_a_key_its_own_webhook_and_never_repeats_the_key_in_an_error(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"# team keys\n{KEY} webhook=https://hooks.example/adreel\n{OTHER}\n")
    settings = load_api_settings(environ={**FLEET_ENV, "ADREEL_API_KEYS_FILE": str(path)})
    assert settings.key_webhooks == {settings.owner_of(KEY): "https://hooks.example/adreel"}
    assert settings.owner_of(OTHER) and settings.max_queued_per_key == 100
    for line in (f"{KEY} webhook=ftp://hooks.example/", f"{KEY} hook=https://x.example/",
                 f"{KEY} webhook=https://user:pw@x.example/"):
        path.write_text(line + "\n")
        with pytest.raises(FleetError, match="line 1") as err:
            load_api_settings(environ={**FLEET_ENV, "ADREEL_API_KEYS_FILE": str(path)})
        assert KEY not in str(err.value)


@contextlib.contextmanager
def webhook_receiver(on_post):
    """A receiver on loopback: ``on_post(handler)`` for each POST, then 204. Yields its port."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            on_post(self)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def test_a_delivery_connects_to_the_address_that_was_checked_with_the_name_as_host(tmp_path):
    """DNS rebinding: the name is resolved once per delivery; the connection goes to that address, with the name
    in the Host header. A resolver that would answer a private address on a second lookup is never asked again."""
    import asyncio

    import httpx

    from fleet.api.webhooks import checked_address, pinned_request

    seen = []
    answers = iter([["127.0.0.1"], ["10.9.9.9"]])
    lookups = []

    def rebinding(host, port_):
        lookups.append(host)
        return [ipaddress.ip_address(a) for a in next(answers)]

    with webhook_receiver(lambda h: seen.append((h.headers["Host"], h.rfile.read(int(h.headers["Content-Length"]))))) \
            as port:
        url = f"http://receiver.example:{port}/hook"
        host, _, address = checked_address(url, allow_private=True, resolver=rebinding)

        async def post():
            async with httpx.AsyncClient(trust_env=False) as client:
                resp = await client.send(pinned_request(client, url, address, host, b'{"ok":1}', {}))
                return resp.status_code

        assert asyncio.run(post()) == 204
        assert seen == [(f"receiver.example:{port}", b'{"ok":1}')] and lookups == ["receiver.example"]
        with pytest.raises(Refused, match="private"):
            checked_address(url, allow_private=False, resolver=resolver({"receiver.example": ["10.9.9.9"]}))


def test_a_slow_webhook_receiver_holds_up_only_its_own_delivery(queue_api):
    """Two jobs with their own webhooks, one receiver that never answers in time: the other receiver gets its
    event at once; the slow one's delivery is given up after 10 s and sent again (the same event id)."""
    got = {"slow": [], "fast": []}
    release = threading.Event()

    def on_post(handler):
        name = handler.path.strip("/")
        got[name].append((time.monotonic(), handler.headers["webhook-id"]))
        if name == "slow":
            release.wait(40)  # longer than the API waits for an answer

    with webhook_receiver(on_post) as port:
        try:
            base = f"http://127.0.0.1:{port}"
            ids = {}
            for name in ("slow", "fast"):
                r = call(queue_api, "POST", "/api/v2/jobs", json={**brief(brand=name), "webhook_url": f"{base}/{name}"})
                assert r.status_code == 201, r.text
                ids[name] = r.json()["id"]
            start = time.monotonic()
            call(queue_api, "POST", f"/api/v2/jobs/{ids['slow']}/cancel")  # its event is filed first
            call(queue_api, "POST", f"/api/v2/jobs/{ids['fast']}/cancel")
            deadline = start + 60
            while time.monotonic() < deadline and not (got["fast"] and len(got["slow"]) >= 2):
                time.sleep(0.2)
            assert [i for _, i in got["fast"]] == [f"evt_{ids['fast']}_canceled"]
            assert got["fast"][0][0] - start < 8  # not behind the slow receiver's 10 s
            assert [i for _, i in got["slow"][:2]] == [f"evt_{ids['slow']}_canceled"] * 2
            assert got["slow"][1][0] - got["slow"][0][0] >= 10  # given up after 10 s, then sent again
        finally:
            release.set()
