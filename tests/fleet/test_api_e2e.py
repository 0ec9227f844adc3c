"""The whole front door end to end, all through the job API, on the real stack: a redis-server (AOF, a password),
SeaweedFS, two ComfyUI servers with AdReel and a ``python -m fleet worker`` each, and ``python -m fleet api``
as its own process — all on 127.0.0.1.

Ten briefs: nine as one CSV batch (``POST /api/v2/batches``), one on its own with ``"approval": true``. The
approval job waits, its first scene's words are edited through the API, it is approved, and the ad shows the
edited words (OCR). While the batch renders, one worker is SIGKILLed mid-job and Redis is SIGKILLed and started
again mid-job. A webhook receiver (a local aiohttp server, verifying every delivery on receipt with the
``standardwebhooks`` library) gets the key's webhook for every event and the approval job's own webhook for its
two; it refuses each event's first delivery, so every one is retried.

Checked from outside: every job ``succeeded`` through the API, and completed exactly once (the workers' logs,
each ComfyUI's ``/history``); the bucket holds each output once and nothing else; each event arrives signed, and
exactly once per endpoint after deduplication on its id. The ads are the shortest the product makes here (4 s at
the 180p draft size, ultrafast), the OCR'd one 6 s at 360p. Its wall time is printed.
"""
from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from fleet_stack import BUCKET, ApiServer, assert_first_headline_reads, fast_workflow, start_fleet, wait_for, whsec

standardwebhooks = pytest.importorskip("standardwebhooks")

pytestmark = [pytest.mark.comfy, pytest.mark.timeout(1500)]

KEY = "e2e-" + secrets.token_urlsafe(24)
BRANDS = [f"Brand{n}" for n in range(1, 10)]
EDIT = "Zebra Sunrise"
DONE_S = 900


class Receiver:
    """A webhook receiver as a user would write one, on aiohttp: ``POST /<endpoint>`` verifies the delivery with
    ``standardwebhooks`` and the key's secret (400 if it does not verify), records it, and answers 500 to the
    first delivery of each event id at each endpoint, 204 after."""

    def __init__(self, secret: str):
        from aiohttp import web

        self.secret, self.deliveries, self.lock = secret, [], threading.Lock()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def handle(request):
            body = await request.read()
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                payload = standardwebhooks.Webhook(self.secret).verify(body, headers)
            except standardwebhooks.webhooks.WebhookVerificationError:
                payload = None
            endpoint, event_id = request.match_info["endpoint"], headers.get("webhook-id")
            with self.lock:
                seen = any(d["endpoint"] == endpoint and d["id"] == event_id for d in self.deliveries)
                code = 400 if payload is None else 204 if seen else 500
                self.deliveries.append({"endpoint": endpoint, "id": event_id, "payload": payload, "code": code})
            return web.Response(status=code)

        def serve():
            asyncio.set_event_loop(self.loop)
            app = web.Application()
            app.router.add_post("/{endpoint}", handle)
            self.runner = web.AppRunner(app)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.port = self.runner.addresses[0][1]
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        assert ready.wait(10)

    def url(self, endpoint: str) -> str:
        return f"http://127.0.0.1:{self.port}/{endpoint}"

    def acknowledged(self, endpoint: str) -> dict:
        """event id → its deliveries at ``endpoint``, for the events that got a 2xx there."""
        with self.lock:
            got = [d for d in self.deliveries if d["endpoint"] == endpoint]
        return {e: [d for d in got if d["id"] == e] for e in {d["id"] for d in got if d["code"] < 300}}

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


class Api:
    def __init__(self, url: str):
        self.url = url

    def __call__(self, method: str, path: str, **kw):
        return requests.request(method, self.url + path, headers={"Authorization": f"Bearer {KEY}"}, timeout=60,
                                **kw)

    def get(self, path: str):
        """The answer's JSON, or None while the API answers 503 (Redis restarting)."""
        try:
            r = self("GET", path)
        except requests.RequestException:
            return None
        if r.status_code == 503:
            return None
        assert r.status_code == 200, r.text
        return r.json()


def comfy_successes(fleet) -> Counter:
    """AssetUpload prefix → prompts that ran to success on any ComfyUI (its /history)."""
    out = Counter()
    for c in fleet.comfies:
        for entry in c.get_json("/history").values():
            prefix = next((n["inputs"].get("prefix_pattern") for n in entry["prompt"][2].values()
                           if n.get("class_type") == "AssetUpload"), None)
            if prefix and entry["status"].get("status_str") == "success":
                out[prefix] += 1
    return out


def ffprobe_duration(path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out)["format"]["duration"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    started = time.monotonic()
    base = tmp_path_factory.mktemp("e2e")
    fleet = start_fleet(base, comfies=2, heartbeat=5, retry=2)
    fleet.receiver = Receiver(whsec(KEY))
    keys = base / "api-keys"
    keys.write_text(f"# the test's one key, with its own webhook\n{KEY} webhook={fleet.receiver.url('key')}\n")
    api = ApiServer(fleet, [], env={"ADREEL_API_KEYS_FILE": str(keys), "ADREEL_API_WEBHOOK_RETRY_SECONDS": "1",
                                    "ADREEL_API_WEBHOOK_ALLOW_PRIVATE": "1"})  # the receiver listens on loopback
    fleet.api = Api(api.url)
    fleet.started = started
    try:
        api.wait_healthy()
        yield fleet
    finally:
        api.stop_and_report(fleet, worker_chars=2000)
        fleet.receiver.close()
        fleet.close()
        print(f"test_api_e2e: {time.monotonic() - started:.1f}s wall, stack start and stop included")


def test_ten_briefs_through_the_api_survive_a_killed_worker_and_a_restarted_redis(stack, tmp_path):
    api, receiver = stack.api, stack.receiver
    t0 = time.monotonic()
    # 1. the approval job first (its script, storyboard and key images are made first), with its own webhook
    approval_job = fast_workflow(6.0, brand="Acme", product="Morning Roast")
    r = api("POST", "/api/v2/jobs", json={"workflow": approval_job, "approval": True,
                                          "webhook_url": receiver.url("job")})
    assert r.status_code == 201, r.text
    approval_id = r.json()["id"]
    # 2. nine briefs as one CSV batch, the shortest ads: 4 s, 180p, template script, ultrafast
    csv_text = "brand,product,duration_seconds,aspect_ratio\n" + "".join(
        f"{b},Product {n},4,1:1\n" for n, b in enumerate(BRANDS, start=1))
    r = api("POST", "/api/v2/batches", json={
        "workflow_name": "brief_to_ad_upload", "csv": csv_text,
        "node_inputs": {"ScriptLLM": {"backend": "template"}, "StoryboardSplit": {"resolution": "180p", "fps": "24"},
                        "FFmpegAssemble": {"preset": "ultrafast"}}})
    assert r.status_code == 201, r.text
    batch = r.json()
    batch_ids = [j["id"] for j in sorted(batch["jobs"], key=lambda j: j["adreel"]["row"])]
    assert [j["adreel"]["brand"] for j in sorted(batch["jobs"], key=lambda j: j["adreel"]["row"])] == BRANDS
    all_ids = [approval_id, *batch_ids]

    def rendering(exclude=()):
        def find():
            page = api.get(f"/api/v2/jobs?batch={batch['id']}&status=running")
            for j in (page or {}).get("jobs", []):
                if j["id"] not in exclude and j["progress"]["value"] >= 0.15 and j["adreel"]["worker"]:
                    return j
            return None
        return find

    # 3. Redis SIGKILLed mid-job and started again: the AOF (appendfsync always) is all that survives
    first = wait_for(rendering(), 300, "a batch job rendering", every=0.2)
    stack.redis.kill()
    time.sleep(2)
    assert requests.get(api.url + "/api/v2/health", timeout=10).status_code == 503
    stack.redis.start()

    # 4. a worker SIGKILLed mid-job, and started again at once (as its supervisor would): its job goes back to
    # the queue once its heartbeat is old, and another delivery takes it over
    victim = wait_for(rendering(exclude={first["id"]}), 300, "another batch job rendering", every=0.2)
    dead = next(w for w in stack.workers if w.name == victim["adreel"]["worker"])
    dead.kill()
    stack.workers.remove(dead)
    dead.stop()
    stack.add_worker(dead.name, next(c for c in stack.comfies if c.url == dead.comfy_url))

    # 5. the approval: it waits; its script is read, edited and approved (its render queues behind the batch)
    def awaiting():
        job = api.get(f"/api/v2/jobs/{approval_id}")
        assert job is None or job["status"] not in ("failed", "canceled"), job
        return job and job["status"] == "awaiting_approval"

    wait_for(awaiting, 300, "the approval job to await its approval")
    review = api("GET", f"/api/v2/jobs/{approval_id}/script").json()
    script, board = review["script"], review["storyboard"]
    written = script["scenes"][0]["on_screen_text"]
    edited = json.loads(json.dumps(script))
    edited["scenes"][0]["on_screen_text"] = EDIT
    put = api("PUT", f"/api/v2/jobs/{approval_id}/script", json={"script": edited})
    assert put.status_code == 200 and put.json()["edited"], put.text
    approved = api("POST", f"/api/v2/jobs/{approval_id}/approve")
    assert approved.status_code == 200 and approved.json()["status"] in ("queued", "running"), approved.text

    # 6. every job ends succeeded
    def all_done():
        jobs = [api.get(f"/api/v2/jobs/{i}") for i in all_ids]
        if any(j is None for j in jobs):
            return None
        bad = [j for j in jobs if j["status"] in ("failed", "canceled")]
        assert not bad, bad
        return jobs if all(j["status"] == "succeeded" for j in jobs) else None

    jobs = wait_for(all_done, DONE_S, "every job to succeed", every=1)
    rendered_s = time.monotonic() - t0
    assert api.get(f"/api/v2/batches/{batch['id']}")["counts"] == {"succeeded": 9}

    # completed exactly once: one "completed" per fleet job in the workers' logs (the ten renders and the
    # approval's script-and-key-images part), and one successful prompt per job on the ComfyUI servers
    logs = "".join(w.log_text() for w in stack.workers)
    for job_id in all_ids:
        assert logs.count(f"job {job_id}: completed") == 1, job_id
    assert logs.count(": completed: ") == len(all_ids) + 1
    # (the killed worker's prompt may have run to its end on its ComfyUI before the take-over stopped it: the
    # take-over then removed what it had stored, below)
    runs = comfy_successes(stack)
    assert 1 <= runs.pop(f"fleet/{victim['id']}/") <= 2
    assert runs == Counter({f"fleet/{i}/": 1 for i in all_ids if i != victim["id"]})
    assert api.get(f"/api/v2/jobs/{victim['id']}")["adreel"]["attempts"] == 2
    assert all(j["adreel"]["attempts"] == 1 for j in jobs if j["id"] != victim["id"])

    # each object stored once, and nothing else in the bucket: per job one video, manifest, thumbnail and
    # subtitle file of each format, and one history record per run
    keys = [o["Key"] for o in stack.s3.list_keys(BUCKET, "")]
    assert len(keys) == len(set(keys))
    for job in jobs:
        mine = [k for k in keys if k.startswith(f"fleet/{job['id']}/")]
        assert Counter(Path(k).suffix for k in mine) == Counter({".mp4": 1, ".json": 1, ".jpg": 1, ".srt": 1,
                                                                 ".vtt": 1}), mine
    history = [k for k in keys if k.startswith("history/")]
    assert len(history) == len(all_ids) and len(keys) == 6 * len(all_ids), keys

    # a batch ad through the API: 4 s, as its row asked
    (video,) = [o for o in jobs[1]["outputs"] if o["type"] == "video"]
    batch_mp4 = tmp_path / "batch.mp4"
    batch_mp4.write_bytes(api("GET", f"/api/v2/assets/{video['id']}/content").content)
    assert abs(ffprobe_duration(batch_mp4) - 4.0) < 0.2

    # the approved ad shows the edited words on its first scene, not the written ones
    (video,) = [o for o in jobs[0]["outputs"] if o["type"] == "video"]
    path = tmp_path / "approved.mp4"
    path.write_bytes(api("GET", f"/api/v2/assets/{video['id']}/content").content)
    assert abs(ffprobe_duration(path) - 6.0) < 0.2
    assert_first_headline_reads(path, board, EDIT, written)

    # webhooks: each event signed with the key's secret (verified on receipt), and exactly once per endpoint
    # after deduplication on its id; every first delivery was refused, so each arrived again with the same body
    by_key = {f"evt_{i}_succeeded" for i in all_ids} | {f"evt_{approval_id}_awaiting_approval"}
    by_job = {f"evt_{approval_id}_succeeded", f"evt_{approval_id}_awaiting_approval"}
    wait_for(lambda: by_key <= set(receiver.acknowledged("key")) and by_job <= set(receiver.acknowledged("job")),
             120, "every webhook to be acknowledged")
    time.sleep(3)  # a duplicate filing would have been sent by now
    for endpoint, expected in (("key", by_key), ("job", by_job)):
        got = receiver.acknowledged(endpoint)
        assert set(got) == expected, (endpoint, set(got) ^ expected)
        for event_id, deliveries in got.items():
            assert all(d["payload"] is not None for d in deliveries), event_id  # every delivery verified
            assert deliveries[0]["code"] == 500 and len({json.dumps(d["payload"]) for d in deliveries}) == 1
            payload = deliveries[0]["payload"]
            assert payload["id"] == event_id and payload["type"] == "job." + event_id.split("_", 2)[2]
            assert payload["data"]["id"] in all_ids and payload["data"]["status"] == event_id.split("_", 2)[2]
    with receiver.lock:
        assert all(d["code"] != 400 for d in receiver.deliveries)
    print(f"ten briefs through the API: all succeeded {rendered_s:.1f}s after the first submit")
