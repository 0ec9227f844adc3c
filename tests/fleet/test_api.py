"""AdReel's job API (``python -m fleet api``) with ``comfy-sdk`` as the real client, on the real stack: a
redis-server, SeaweedFS, a ComfyUI with AdReel and its ``python -m fleet worker``, all on 127.0.0.1.

The SDK is given only the API's base URL and a key. Everything is checked from outside: the SDK's typed
answers and events, the MP4 it downloads (ffprobe, and byte for byte against the bucket), ComfyUI's
``/queue``, the bucket's objects, and raw HTTP answers (status codes, the error envelope) where the SDK
would retry or hide them. The tests share one stack and run in order.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from PIL import Image

from fleet_stack import BUCKET, ApiServer, assert_first_headline_reads, fast_workflow, start_fleet, wait_for, whsec
from harness import node_by_type

comfy_sdk = pytest.importorskip("comfy_sdk")
standardwebhooks = pytest.importorskip("standardwebhooks")

pytestmark = [pytest.mark.comfy, pytest.mark.timeout(1200)]

KEY_A = "key-a-" + secrets.token_urlsafe(24)
KEY_B = "key-b-" + secrets.token_urlsafe(24)
CAP = 3


def draft(duration: float, **brief) -> dict:
    """The shipped upload workflow at the 180p draft size (template script, 24 fps, ultrafast)."""
    return fast_workflow(duration, resolution="180p", **brief)


class Receiver:
    """A webhook receiver on 127.0.0.1, as a user would write one: it verifies each delivery on receipt with
    the ``standardwebhooks`` library and its key's secret, records it, and answers 500 to the first delivery
    of each event id (so each is retried), 204 after; a delivery that does not verify gets 400."""

    def __init__(self, secret: str, wrong_secret: str):
        self.deliveries: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    payload = standardwebhooks.Webhook(secret).verify(body, headers)
                except standardwebhooks.webhooks.WebhookVerificationError:
                    payload = None
                try:
                    standardwebhooks.Webhook(wrong_secret).verify(body, headers)
                    other_key_verifies = True
                except standardwebhooks.webhooks.WebhookVerificationError:
                    other_key_verifies = False
                with outer.lock:
                    seen = any(d["id"] == headers.get("webhook-id") for d in outer.deliveries)
                    code = 400 if payload is None else 204 if seen else 500
                    outer.deliveries.append({"id": headers.get("webhook-id"), "payload": payload, "code": code,
                                             "other_key_verifies": other_key_verifies})
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/adreel"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def acknowledged(self) -> dict:
        """event id → its deliveries, for the events that got a 2xx."""
        with self.lock:
            got = list(self.deliveries)
        done = {d["id"] for d in got if d["code"] < 300}
        return {e: [d for d in got if d["id"] == e] for e in done}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    fleet = start_fleet(tmp_path_factory.mktemp("api"), comfies=1, heartbeat=5, retry=2)
    fleet.state = {}
    fleet.receiver = Receiver(whsec(KEY_A), whsec(KEY_B))
    api = ApiServer(fleet, [KEY_A, KEY_B], env={
        "ADREEL_FLEET_MAX_QUEUED": str(CAP), "ADREEL_API_WEBHOOK_RETRY_SECONDS": "1",
        "ADREEL_API_WEBHOOK_ALLOW_PRIVATE": "1"})  # the test's receiver listens on loopback
    fleet.api = api.url
    try:
        api.wait_healthy()
        yield fleet
    finally:
        api.stop_and_report(fleet)
        fleet.receiver.server.shutdown()
        fleet.close()


def client(stack, key):
    """A comfy-sdk client given only the base URL (its documented COMFY_BASE_URL) and a key."""
    old = os.environ.get("COMFY_BASE_URL")
    os.environ["COMFY_BASE_URL"] = stack.api
    try:
        return comfy_sdk.Comfy(api_key=key, timeout=60)
    finally:
        if old is None:
            os.environ.pop("COMFY_BASE_URL", None)
        else:
            os.environ["COMFY_BASE_URL"] = old


def raw(stack, method, path, key=KEY_A, **kw):
    headers = {**({"Authorization": f"Bearer {key}"} if key else {}), **kw.pop("headers", {})}
    return requests.request(method, stack.api + path, headers=headers, timeout=60, **kw)


def ffprobe_duration(path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert {s["codec_type"] for s in data["streams"]} >= {"video", "audio"}
    return float(data["format"]["duration"])


def comfy_queue_empty(stack) -> bool:
    q = stack.comfies[0].get_json("/queue")
    return not q["queue_running"] and not q["queue_pending"]


# ------------------------------------------------------------------ tests
def test_the_sdk_submits_the_demo_workflow_follows_its_events_and_downloads_the_mp4(stack, tmp_path):
    sdk = client(stack, KEY_A)
    job = sdk.submit(sdk.workflows.from_json(draft(6.0, brand="Acme", product="RoboVac X2")),
                     metadata={"campaign": "spring"})
    assert job.status == "queued" and job.metadata == {"campaign": "spring"}

    events = list(job.events())  # ends at the terminal status
    statuses = [e.status for e in events if isinstance(e, comfy_sdk.StatusChange)]
    progress = [e.value for e in events if isinstance(e, comfy_sdk.Progress)]
    ready = [e.output for e in events if isinstance(e, comfy_sdk.OutputReady)]
    assert statuses[-1] == "succeeded" and "running" in statuses, statuses
    assert progress and progress == sorted(progress) and all(0 <= v < 1 for v in progress), progress
    assert any(o.content_type == "video/mp4" for o in ready)

    job.refresh()
    assert job.status == "succeeded" and job.error is None
    (video,) = [o for o in job.outputs if o.type == "video"]
    assert video.name.endswith(".mp4") and video.job_id == job.id
    path = video.to_file(tmp_path / "ad.mp4")
    assert abs(ffprobe_duration(path) - 6.0) < 0.2
    data = path.read_bytes()
    assert len(data) == video.size_bytes
    (key,) = [k for k in stack.keys(f"fleet/{job.id}/") if k.endswith(".mp4")]
    stored = stack.s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(data).digest() == hashlib.sha256(stored).digest()
    assert video.to_bytes(range=(4, 11)) == stored[4:12]  # a Range request through the API

    graph = job.get_workflow().graph
    assert node_by_type(graph, "AssetUpload")[1]["inputs"]["prefix_pattern"] == f"fleet/{job.id}/"
    assert [s.id for s in sdk.list_jobs()] == [job.id]
    body = raw(stack, "GET", f"/api/v2/jobs/{job.id}").json()
    assert body["adreel"]["cost_usd"] == 0.0 and body["adreel"]["brand"] == "Acme"  # template script: free
    assert body["progress"]["value"] == 1.0
    stack.state["done"] = job.id


def test_no_key_is_401_and_another_keys_job_is_404(stack):
    job_id = stack.state["done"]
    for key in (None, "not-a-key-" + secrets.token_hex(8)):
        for method, path in (("GET", "/api/v2/jobs"), ("GET", f"/api/v2/jobs/{job_id}"),
                             ("POST", "/api/v2/jobs"), ("GET", "/api/v2/openapi.json")):
            r = raw(stack, method, path, key=key)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", (method, path)
            assert "WWW-Authenticate" in r.headers
    assert raw(stack, "GET", "/api/v2/health", key=None).json() == {"status": "healthy"}
    assert raw(stack, "GET", "/api/v2/openapi.json").json()["paths"]["/api/v2/jobs"]["post"]

    other = client(stack, KEY_B)
    with pytest.raises(comfy_sdk.NotFound):
        other.jobs.get(job_id)
    assert list(other.list_jobs()) == []
    for method, path in (("POST", f"/api/v2/jobs/{job_id}/cancel"), ("GET", f"/api/v2/jobs/{job_id}/events"),
                         ("GET", f"/api/v2/jobs/{job_id}/workflow"), ("DELETE", f"/api/v2/jobs/{job_id}"),
                         ("GET", f"/api/v2/assets/{job_id}-0/content")):
        r = raw(stack, method, path, key=KEY_B)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (method, path)
    assert client(stack, KEY_A).jobs.get(job_id).status == "succeeded"  # untouched by B's tries


def test_bad_submissions_are_refused_clearly_and_nothing_is_queued(stack):
    before = raw(stack, "GET", "/api/v2/jobs").json()["jobs"]
    no_upload = {k: v for k, v in draft(4.0).items() if v["class_type"] != "AssetUpload"}
    cases = [
        ('{"workflow": {"1": {"class_type": "BrandBrief", "inputs": {"duration_seconds": NaN}}}}', 400,
         "invalid_request", "finite"),
        (json.dumps({"workflow": {"nodes": [], "links": [], "last_node_id": 0}}), 422, "workflow_format_ui", "API"),
        (json.dumps({"workflow": no_upload}), 422, "invalid_workflow", "AssetUpload"),
        (json.dumps({"workflow_name": "../../etc/passwd", "brief": {"brand": "x"}}), 422, "invalid_request",
         "brief_to_ad_upload"),
        (json.dumps({"workflow_name": "brief_to_ad_upload", "brief": {"brand": "x", "<script>": 1}}), 422,
         "invalid_request", "duration_seconds"),
        (json.dumps({"workflow_name": "brief_to_ad_upload", "brief": {"brand": "x"},
                     "node_inputs": {"ScriptLLM": {"api_key": "sk-secret-canary"}}}), 422, "invalid_request", "seed"),
        (json.dumps({"workflow": draft(4.0), "metadata": {"k": 7}}), 422, "metadata_invalid", "metadata.k"),
        ("not json", 400, "invalid_request", "JSON"),
    ]
    for body, status, code, named in cases:
        r = raw(stack, "POST", "/api/v2/jobs", data=body, headers={"Content-Type": "application/json"})
        err = r.json()["error"]
        assert (r.status_code, err["code"]) == (status, code) and named in err["message"], (body[:60], r.text)
        assert "<script>" not in r.text and "sk-secret-canary" not in r.text and "passwd" not in r.text
    assert raw(stack, "GET", "/api/v2/jobs").json()["jobs"] == before


def test_cancel_a_running_job_and_429_past_the_queue_cap(stack):
    sdk = client(stack, KEY_A)
    long_job = sdk.submit(sdk.workflows.from_json(draft(30.0, brand="Bolt", product="E-Bike")))
    for event in long_job.events():
        if isinstance(event, comfy_sdk.Progress) and event.value > 0:
            break
    # the worker renders it: the next jobs wait, up to the cap, made from a brief and a shipped workflow's name
    brief_job = {"workflow_name": "brief_to_ad_upload", "brief": {"brand": "Cora", "product": "Cold Brew",
                                                                  "duration_seconds": 6},
                 "node_inputs": {"ScriptLLM": {"backend": "template"}, "StoryboardSplit": {"resolution": "180p"}},
                 "webhook_url": stack.receiver.url}
    waiting = []
    for n in range(CAP):
        r = raw(stack, "POST", "/api/v2/jobs", json={**brief_job, "brief": {**brief_job["brief"], "cta": f"#{n}"}})
        assert r.status_code == 201, r.text
        waiting.append(r.json()["id"])
    r = raw(stack, "POST", "/api/v2/jobs", json=brief_job, headers={"Idempotency-Key": "retry-me"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    err = r.json()["error"]
    assert err["code"] == "queue_full" and f"{CAP} job(s) are waiting" in err["message"]
    assert err["details"] == {"waiting": CAP, "max_queued": CAP}

    graph = raw(stack, "GET", f"/api/v2/jobs/{waiting[0]}/workflow").json()["workflow"]
    assert node_by_type(graph, "BrandBrief")[1]["inputs"]["brand"] == "Cora"
    assert node_by_type(graph, "ScriptLLM")[1]["inputs"]["backend"] == "template"
    assert [j["queue_position"] for j in (raw(stack, "GET", f"/api/v2/jobs/{i}").json() for i in waiting)] \
        == list(range(CAP))

    assert long_job.cancel().status == "canceled"
    for job_id in waiting:
        assert sdk.jobs.get(job_id).cancel().status == "canceled"
    wait_for(lambda: comfy_queue_empty(stack), 60, "the cancelled job's prompt to leave ComfyUI")
    # the worker is done with each of them: the running one interrupted, the waiting ones dropped unrun
    done = [f"job {long_job.id}: cancelled while running; its prompt was interrupted",
            *(f"job {job_id}: already cancelled; dropped" for job_id in waiting)]
    wait_for(lambda: all(line in stack.workers[0].log_text() for line in done), 60,
             "the worker to finish with the cancelled jobs", every=0.2)
    assert stack.keys(f"fleet/{long_job.id}/") == []  # an interrupted job stores nothing

    # nothing was made by the refused request: its Idempotency-Key is free, and single-use once it makes a job
    again = raw(stack, "POST", "/api/v2/jobs", json=brief_job, headers={"Idempotency-Key": "retry-me"})
    assert again.status_code == 201, again.text
    assert sdk.jobs.get(again.json()["id"]).cancel().status == "canceled"
    reuse = raw(stack, "POST", "/api/v2/jobs", json=brief_job, headers={"Idempotency-Key": "retry-me"})
    assert reuse.status_code == 422 and reuse.json()["error"]["code"] == "idempotency_key_reuse"
    listed = raw(stack, "GET", "/api/v2/jobs?status=canceled&limit=2").json()
    assert len(listed["jobs"]) == 2 and listed["next_cursor"]
    rest = raw(stack, "GET", f"/api/v2/jobs?status=canceled&cursor={listed['next_cursor']}").json()
    ids = [j["id"] for j in listed["jobs"] + rest["jobs"]]
    assert sorted(ids) == sorted([long_job.id, *waiting, again.json()["id"]]) and "next_cursor" not in rest
    stack.state["hooked"] = [*waiting, again.json()["id"]]


def test_delete_removes_the_job_and_its_objects(stack):
    job_id = stack.state["done"]
    assert stack.keys(f"fleet/{job_id}/")
    history = set(stack.keys("history/"))
    r = raw(stack, "DELETE", f"/api/v2/jobs/{job_id}")
    assert r.status_code == 200 and r.json()["objects_removed"] >= 5, r.text
    assert stack.keys(f"fleet/{job_id}/") == []
    assert len(history - set(stack.keys("history/"))) == 1  # the run's history record went with it
    assert raw(stack, "GET", f"/api/v2/jobs/{job_id}").status_code == 404
    with pytest.raises(comfy_sdk.NotFound):
        client(stack, KEY_A).jobs.get(job_id)


def test_webhooks_are_signed_retried_and_delivered_once_per_event(stack):
    r = raw(stack, "POST", "/api/v2/jobs", json={
        "workflow_name": "brief_to_ad_upload",
        "brief": {"brand": "Dune", "product": "Trail Shoe", "duration_seconds": 4},
        "node_inputs": {"ScriptLLM": {"backend": "template"}, "StoryboardSplit": {"resolution": "180p", "fps": "24"},
                        "FFmpegAssemble": {"preset": "ultrafast"}},
        "webhook_url": stack.receiver.url})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    assert client(stack, KEY_A).jobs.get(job_id).wait(timeout=600).status == "succeeded"
    expected = {f"evt_{job_id}_succeeded"} | {f"evt_{i}_canceled" for i in stack.state["hooked"]}
    wait_for(lambda: expected <= set(stack.receiver.acknowledged()), 120, "every webhook to be acknowledged")

    events = {}
    for event_id, deliveries in stack.receiver.acknowledged().items():
        # signed with KEY_A's secret (verified on receipt), not KEY_B's; refused once (500), then delivered
        # again with the same id and body
        assert [d["code"] for d in deliveries] == [500, 204], event_id
        assert not any(d["other_key_verifies"] for d in deliveries)
        assert deliveries[0]["payload"] == deliveries[1]["payload"] and deliveries[0]["payload"]["id"] == event_id
        events[event_id] = deliveries[0]["payload"]
    assert set(events) == expected  # each event once after deduplication on its id, nothing else
    done = events[f"evt_{job_id}_succeeded"]
    assert done["type"] == "job.succeeded" and done["data"]["id"] == job_id
    assert [o["content_type"] for o in done["data"]["outputs"] if o["type"] == "video"] == ["video/mp4"]
    assert {events[f"evt_{i}_canceled"]["type"] for i in stack.state["hooked"]} == {"job.canceled"}

    refused = raw(stack, "POST", "/api/v2/jobs", json={"workflow": draft(4.0),
                                                       "webhook_url": "http://169.254.169.254/latest/meta-data"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "webhook_url_refused"


def wait_status(stack, job_id, status, timeout):
    seen = {}

    def reached():
        seen["job"] = raw(stack, "GET", f"/api/v2/jobs/{job_id}").json()
        assert seen["job"]["status"] not in ("failed", "canceled") or status in ("failed", "canceled"), seen["job"]
        return seen["job"]["status"] == status

    wait_for(reached, timeout, f"job {job_id} to be {status}")
    return seen["job"]


def test_a_job_waits_for_approval_and_renders_the_script_as_edited_through_the_api(stack, tmp_path):
    """Approval before spending: the job stops after the script, storyboard, key images and estimate; the
    script is edited through the API; the render that follows the approval shows the edited words (OCR)."""
    r = raw(stack, "POST", "/api/v2/jobs", json={"workflow": fast_workflow(6.0, brand="Acme", product="Morning Roast"),
                                                 "approval": True, "webhook_url": stack.receiver.url})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    early = raw(stack, "GET", f"/api/v2/jobs/{job_id}/script")
    assert early.status_code in (200, 409)  # 409 not_ready until the prefix has run (it may be fast)
    job = wait_status(stack, job_id, "awaiting_approval", 300)
    assert job["outputs"] == [] and job["adreel"]["approval"] == {"state": "pending", "script_edited": False}
    assert comfy_queue_empty(stack) and stack.keys(f"fleet/{job_id}/") == []  # nothing rendered, nothing stored
    rendered = [p for p in Path(stack.comfies[0].folder("output")).rglob("*") if job_id in p.name]
    assert rendered == []  # FFmpegAssemble names its files after the job: it did not run

    review = raw(stack, "GET", f"/api/v2/jobs/{job_id}/script").json()
    script, board = review["script"], review["storyboard"]
    assert review["edited"] is False and review["estimate"]["total_usd"] == 0.0
    assert len(script["scenes"]) == len(board["scenes"]) >= 2 and review["key_images"]
    first = script["scenes"][0]["on_screen_text"]
    # the key images, read through the API from the ComfyUI that made them
    for n in range(len(review["key_images"])):
        png = raw(stack, "GET", f"/api/v2/jobs/{job_id}/key_images/{n}")
        assert png.status_code == 200 and png.headers["Content-Type"] == "image/png", png.text[:200]
        w, h = Image.open(io.BytesIO(png.content)).size
        assert w == h >= 64  # the brief's 1:1
    assert raw(stack, "GET", f"/api/v2/jobs/{job_id}/key_images/{len(review['key_images'])}").status_code == 404
    assert raw(stack, "GET", f"/api/v2/jobs/{job_id}/key_images/0", key=KEY_B).status_code == 404

    bad = raw(stack, "PUT", f"/api/v2/jobs/{job_id}/script",
              json={"script": {**script, "scenes": [{**script["scenes"][0], "end": 999}]}})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_script", bad.text
    assert "script." in bad.json()["error"]["message"]
    edited = json.loads(json.dumps(script))
    edited["scenes"][0]["on_screen_text"] = "Zebra Sunrise"
    put = raw(stack, "PUT", f"/api/v2/jobs/{job_id}/script", json={"script": edited})
    assert put.status_code == 200, put.text
    assert put.json()["edited"] and put.json()["script"]["scenes"][0]["on_screen_text"] == "Zebra Sunrise"

    approved = raw(stack, "POST", f"/api/v2/jobs/{job_id}/approve")
    assert approved.status_code == 200 and approved.json()["status"] in ("queued", "running"), approved.text
    again = raw(stack, "POST", f"/api/v2/jobs/{job_id}/approve")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_awaiting_approval"
    done = wait_status(stack, job_id, "succeeded", 600)
    (video,) = [o for o in done["outputs"] if o["type"] == "video"]
    path = tmp_path / "approved.mp4"
    path.write_bytes(raw(stack, "GET", f"/api/v2/assets/{video['id']}/content").content)
    assert abs(ffprobe_duration(path) - 6.0) < 0.2

    # the first scene's headline reads the edited words, not the written ones
    assert_first_headline_reads(path, board, "Zebra Sunrise", first)

    wait_for(lambda: {f"evt_{job_id}_awaiting_approval", f"evt_{job_id}_succeeded"}
             <= set(stack.receiver.acknowledged()), 120, "the approval's webhooks")
    waiting = stack.receiver.acknowledged()[f"evt_{job_id}_awaiting_approval"][-1]["payload"]
    assert waiting["type"] == "job.awaiting_approval" and waiting["data"]["status"] == "awaiting_approval"


def test_a_discarded_job_renders_nothing(stack):
    r = raw(stack, "POST", "/api/v2/jobs", json={"workflow": draft(4.0, brand="Dune"), "approval": True})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    wait_status(stack, job_id, "awaiting_approval", 300)
    gone = raw(stack, "POST", f"/api/v2/jobs/{job_id}/discard")
    assert gone.status_code == 200 and gone.json()["status"] == "canceled", gone.text
    late = raw(stack, "POST", f"/api/v2/jobs/{job_id}/approve")
    assert late.status_code == 409 and late.json()["error"]["details"] == {"status": "canceled"}
    assert raw(stack, "PUT", f"/api/v2/jobs/{job_id}/script", json={"script": {}}).status_code == 409
    time.sleep(2)
    assert comfy_queue_empty(stack) and stack.keys(f"fleet/{job_id}/") == []
    assert raw(stack, "GET", "/api/v2/jobs?status=awaiting_approval").json()["jobs"] == []
    assert raw(stack, "DELETE", f"/api/v2/jobs/{job_id}").status_code == 200
    assert raw(stack, "GET", f"/api/v2/jobs/{job_id}").status_code == 404
