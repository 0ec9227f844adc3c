"""The fleet end to end: a real redis-server, two real ComfyUI servers with AdReel, real SeaweedFS, two
``python -m fleet worker`` processes, and the command line as a user runs it — all on 127.0.0.1.

Everything is checked from the outside: the CLI's exit status and ``--json``, the bucket's objects (boto3),
the bytes behind the URLs, each ComfyUI's ``/queue`` and ``/history``. The tests share one fleet and run
in order; the destructive ones (a worker SIGKILLed, Redis SIGKILLed, a ComfyUI SIGKILLed) come last.

On the newer core (``make test``'s second pass, marker ``cores``) run the tests where the fleet talks to ComfyUI:
a batch over both servers, a brief the core refuses, cancel interrupting running prompts, a ComfyUI killed
mid-render. Redis, the bucket and the worker's own bookkeeping are the same whichever core renders.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import re
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
import requests

from fakes.seaweedfs import SECRET_KEY
from nodes.engine.storage.spool import list_spooled

from fleet_stack import BUCKET, fast_workflow, start_fleet, wait_for, write_json

pytestmark = [pytest.mark.comfy, pytest.mark.timeout(1500)]

HEARTBEAT = 5.0
# a job whose worker died is back in the queue after the heartbeat timeout plus a few seconds of maintenance,
# then started by the next free worker; renders here take 10–40 s on two shared cores. Generous, never tight.
RECOVERY_BOUND_S = 240
SHORT_S = 4.0  # the ad of the jobs that only need to finish


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = start_fleet(tmp_path_factory.mktemp("fleet"), comfies=2, heartbeat=HEARTBEAT, retry=2)
    # the jobs that only need to finish render a 4 s ad; the ones killed or cancelled mid-render a 10 s one
    f.wf = write_json(f.base / "workflow.json", fast_workflow(SHORT_S))
    f.long_wf = write_json(f.base / "workflow_long.json", fast_workflow(10.0, resolution="720p"))  # long enough to be caught mid-render
    f.done = {}
    try:
        yield f
    finally:
        for w in f.workers:
            print(f"--- {w.name} log tail ---\n{w.log_tail(3000)}")
        f.close()


def csv_file(fleet, name: str, rows: list[dict]) -> Path:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = [",".join(cols)] + [",".join(str(r.get(c, "")) for c in cols) for r in rows]
    path = fleet.base / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def submit(fleet, rows, name, workflow=None, variants=1, env=None) -> dict:
    r = fleet.cli("submit", workflow or fleet.wf, "--briefs", csv_file(fleet, name, rows), "--variants", variants,
                  "--json", env=env)
    assert r.rc == 0, r.stderr
    return r.json()


def status(fleet, batch, env=None) -> dict:
    r = fleet.cli("status", batch, "--json", env=env)
    assert r.rc == 0, r.stderr
    return r.json()


def by_id(st: dict) -> dict:
    return {j["id"]: j for j in st["jobs"]}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_stored_exactly_once(fleet, job: dict) -> None:
    """The job's outputs are in the bucket once each: one video, one manifest, one thumbnail, one per subtitle
    format under ``fleet/<id>/``, one history record; the video behind its URL is the stored one."""
    keys = fleet.keys(f"fleet/{job['id']}/")
    exts = Counter(Path(k).suffix for k in keys)
    assert exts == Counter({".mp4": 1, ".json": 1, ".jpg": 1, ".srt": 1, ".vtt": 1}), keys
    assert sorted(keys) == sorted(job["outputs"]["keys"])
    (run,) = job["outputs"]["runs"]
    assert f"history/{run}.json" in fleet.keys("history/")
    (mp4,) = [k for k in keys if k.endswith(".mp4")]
    got = requests.get(job["url"], timeout=60)
    assert got.status_code == 200 and got.headers["Content-Type"] == "video/mp4"
    stored = fleet.s3.client().get_object(Bucket=BUCKET, Key=mp4)["Body"].read()
    assert got.content == stored and sha256(stored).startswith(run)


def mp4_duration(fleet, url: str) -> float:
    path = fleet.base / "probe.mp4"
    path.write_bytes(requests.get(url, timeout=60).content)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out)["format"]["duration"])


def history_runs(fleet) -> Counter:
    return Counter(k for k in fleet.keys("history/"))


# ------------------------------------------------------------------ tests
@pytest.mark.cores
def test_a_batch_completes_on_both_workers_with_every_output_in_the_bucket_exactly_once(fleet):
    rows = [{"brand": b, "product": p} for b, p in
            [("Acme", "RoboVac X2"), ("Bolt", "E-Bike"), ("Cora", "Cold Brew"), ("Dune", "Trail Shoe")]]
    sub = submit(fleet, rows, "four.csv")
    assert sub["queued"] == 4 and len(sub["jobs"]) == 4 and len({j["id"] for j in sub["jobs"]}) == 4
    r = fleet.cli("wait", sub["batch"], "--timeout", 600, timeout=700)
    assert r.rc == 0, r.stderr
    st = status(fleet, sub["batch"])
    assert st["counts"]["completed"] == 4, st
    for j in st["jobs"]:
        assert j["state"] == "completed" and j["attempts"] == 1 and j["progress"] == 1.0 and not j["error"], j
        assert j["url"] in r.stdout  # `wait` prints every URL
        assert_stored_exactly_once(fleet, j)
    assert {j["worker"] for j in st["jobs"]} == {"w1", "w2"}  # the batch was shared
    assert [j["brand"] for j in st["jobs"]] == ["Acme", "Bolt", "Cora", "Dune"]  # rows in the file's order
    assert SHORT_S - 0.5 < mp4_duration(fleet, st["jobs"][0]["url"]) < SHORT_S + 6
    before = sorted(fleet.keys())
    # the same batch again: the same job ids, all already completed; nothing is queued or stored again
    again = submit(fleet, rows, "four-again.csv")
    assert again["batch"] == sub["batch"] and again["queued"] == 0
    assert fleet.cli("wait", sub["batch"], "--timeout", 5).rc == 0
    assert sorted(fleet.keys()) == before
    fleet.done["first"] = st
    # no storage secret in what the fleet shows, logs or keeps in Redis
    client = redis.Redis.from_url(fleet.redis.url, decode_responses=True)
    kept = [json.dumps(client.hgetall(k)) if client.type(k) == "hash" else str(k) for k in client.scan_iter("*")]
    for text in [r.stdout, r.stderr, json.dumps(st), *(w.log_text() for w in fleet.workers), *kept]:
        assert SECRET_KEY not in text and fleet.fleet_env["ADREEL_FLEET_SECRET"] not in text


@pytest.mark.cores
def test_a_bad_brief_fails_at_once_with_the_field_named_and_the_rest_complete(fleet):
    rows = [{"brand": "Echo", "aspect_ratio": "1:1"}, {"brand": "", "aspect_ratio": "1:1"},
            {"brand": "Fern", "aspect_ratio": "2:3"}, {"brand": "Gale", "aspect_ratio": "1:1"}]
    sub = submit(fleet, rows, "bad.csv")
    r = fleet.cli("wait", sub["batch"], "--timeout", 600, timeout=700)
    assert r.rc == 1, (r.stdout, r.stderr)
    st = status(fleet, sub["batch"])
    jobs = st["jobs"]
    assert [j["state"] for j in jobs] == ["completed", "failed", "failed", "completed"], jobs
    empty_brand, bad_aspect = jobs[1], jobs[2]
    assert "brand" in empty_brand["error"] and "must not be empty" in empty_brand["error"], empty_brand
    assert "aspect_ratio" in bad_aspect["error"] and "2:3" not in bad_aspect["error"], bad_aspect
    for j in (empty_brand, bad_aspect):
        assert j["attempts"] == 1  # bad input is not retried
        assert j["id"] in r.stderr and j["error"].split(":")[0] in r.stderr  # `wait` lists the failed ones
        assert fleet.keys(f"fleet/{j['id']}/") == []
    for j in (jobs[0], jobs[3]):
        assert_stored_exactly_once(fleet, j)


def test_the_queue_cap_refuses_a_batch_saying_how_many_wait_and_cancel_drops_queued_jobs(fleet):
    # a namespace no worker serves: what is queued there stays queued
    env = {"ADREEL_FLEET_NAMESPACE": "cap-test", "ADREEL_FLEET_MAX_QUEUED": "3"}
    first = submit(fleet, [{"brand": "Hale"}, {"brand": "Iris"}], "cap1.csv", env=env)
    assert first["queued"] == 2
    r = fleet.cli("submit", fleet.wf, "--briefs", csv_file(fleet, "cap2.csv", [{"brand": "Jade"}, {"brand": "Kite"}]),
                  env=env)
    assert r.rc == 2 and r.stdout == ""
    assert "2 job(s) are waiting" in r.stderr and "would add 2" in r.stderr and "3 allowed" in r.stderr, r.stderr
    assert "ADREEL_FLEET_MAX_QUEUED" in r.stderr and "nothing was submitted" in r.stderr
    assert [j["state"] for j in status(fleet, first["batch"], env=env)["jobs"]] == ["queued", "queued"]
    # one batch larger than the cap is refused before anything is written
    r = fleet.cli("submit", fleet.wf, "--briefs", csv_file(fleet, "cap3.csv", [{"brand": f"B{i}"} for i in range(4)]),
                  env=env)
    assert r.rc == 2 and "4 jobs, more than the 3" in r.stderr
    # cancelled jobs leave the queue: the refused batch now fits
    c = fleet.cli("cancel", first["batch"], env=env)
    assert c.rc == 0 and "cancelled 2 queued" in c.stdout, c.stdout
    assert [j["state"] for j in status(fleet, first["batch"], env=env)["jobs"]] == ["cancelled", "cancelled"]
    second = submit(fleet, [{"brand": "Jade"}, {"brand": "Kite"}], "cap2.csv", env=env)
    assert second["queued"] == 2 and second["waiting"] == 2
    assert fleet.cli("cancel", second["batch"], env=env).rc == 0


@pytest.mark.cores
def test_cancel_interrupts_running_prompts_on_their_comfyui_and_drops_queued_ones(fleet):
    rows = [{"brand": f"Lux{i}"} for i in range(4)]
    sub = submit(fleet, rows, "cancel.csv", workflow=fleet.long_wf)

    def two_running():
        jobs = status(fleet, sub["batch"])["jobs"]
        running = [j for j in jobs if j["state"] == "running" and j["progress"] > 0.05]
        return running if len(running) == 2 else None

    running = wait_for(two_running, 300, "two jobs rendering")
    prompts = {c.url: c.get_json("/queue")["queue_running"] for c in fleet.comfies}
    assert all(len(v) == 1 for v in prompts.values()), prompts
    # the prompt ids the fleet sends are canonical UUIDs (ComfyUI 0.25+ refuses any other spelling)
    assert all(str(uuid.UUID(item[1])) == item[1] for items in prompts.values() for item in items)
    r = fleet.cli("cancel", sub["batch"])
    assert r.rc == 0 and "cancelled 2 queued" in r.stdout and "2 running" in r.stdout, r.stdout
    # both ComfyUIs stop the prompt (interrupted, not finished) and are free again
    for c in fleet.comfies:
        wait_for(lambda: not c.get_json("/queue")["queue_running"], 60, f"{c.url} to stop the prompt")
        (item,) = prompts[c.url]
        pid = item[1]
        hist = wait_for(lambda: c.get_json(f"/history/{pid}").get(pid), 30, "the prompt's history")
        kinds = [m[0] for m in hist["status"]["messages"]]
        assert "execution_interrupted" in kinds and "execution_success" not in kinds, kinds
    st = status(fleet, sub["batch"])
    assert [j["state"] for j in st["jobs"]] == ["cancelled"] * 4
    assert r.rc == 0 and fleet.cli("wait", sub["batch"], "--timeout", 5).rc == 1
    # the queued jobs' messages still reach the workers, which drop them (their log says so for each one)
    queued = {j["id"] for j in st["jobs"]} - {j["id"] for j in running}
    assert len(queued) == 2
    wait_for(lambda: all(f"job {jid}: already cancelled; dropped" in "".join(w.log_text() for w in fleet.workers)
                         for jid in queued), 60, "the workers to drop the cancelled jobs' messages", every=0.2)
    for j in status(fleet, sub["batch"])["jobs"]:
        assert j["state"] == "cancelled" and fleet.keys(f"fleet/{j['id']}/") == []
    for c in fleet.comfies:
        assert not c.get_json("/queue")["queue_running"] and not c.get_json("/queue")["queue_pending"]
    assert {j["id"] for j in running} <= {j["id"] for j in st["jobs"]}


def test_delete_removes_the_job_record_and_its_stored_objects_only(fleet):
    first = fleet.done["first"]
    victim, others = first["jobs"][0], first["jobs"][1:]
    (run,) = victim["outputs"]["runs"]
    assert fleet.keys(f"fleet/{victim['id']}/")
    r = fleet.cli("delete", victim["id"])
    assert r.rc == 0 and "deleted job" in r.stdout, r.stderr
    assert fleet.keys(f"fleet/{victim['id']}/") == []
    assert f"history/{run}.json" not in fleet.keys("history/")
    assert requests.get(victim["url"], timeout=30).status_code == 404
    st = status(fleet, first["batch"])
    assert victim["id"] not in by_id(st) and len(st["jobs"]) == 3
    hist = fleet.cli("history", "--json").json()["jobs"]
    assert victim["id"] not in {j["id"] for j in hist}
    for j in others:
        assert_stored_exactly_once(fleet, j)
    missing = fleet.cli("delete", victim["id"])
    assert missing.rc == 2 and "no job" in missing.stderr
    # history filters
    acme = fleet.cli("history", "--brand", "bolt", "--json").json()["jobs"]
    assert [j["brand"] for j in acme] == ["Bolt"]
    failed = fleet.cli("history", "--state", "failed", "--json").json()["jobs"]
    assert len(failed) == 2 and all(j["state"] == "failed" for j in failed)


class Canary:
    """An HTTP server on loopback that records every request: the URL a forged record names."""

    def __init__(self):
        self.requests: list[str] = []
        canary = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self):
                canary.requests.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def fleet_records(fleet):
    """The fleet's records and its actor, as a submitter holding the fleet's secret has them."""
    from fleet.broker import make_broker
    from fleet.config import load_settings
    from fleet.records import Records

    settings = load_settings(fleet.redis.url, environ={"ADREEL_FLEET_SECRET": fleet.fleet_env["ADREEL_FLEET_SECRET"]})
    return Records(settings), make_broker(settings)[1]


def comfy_runs(fleet) -> dict:
    """Prompt id → (ComfyUI URL, the prompt's AssetUpload prefix, status) over every ComfyUI's /history."""
    out = {}
    for c in fleet.comfies:
        for pid, entry in c.get_json("/history").items():
            prompt = entry["prompt"][2]
            prefix = next((n["inputs"].get("prefix_pattern") for n in prompt.values()
                           if n.get("class_type") == "AssetUpload"), None)
            out[pid] = (c.url, prefix, entry["status"].get("status_str"))
    return out


FORGED_BRAND = "FORGED-CANARY-7f3a"


def test_forged_or_altered_records_in_redis_are_refused_nothing_runs_nothing_outside_the_job_is_deleted(fleet):
    """A network user with write access to Redis (but not the fleet's secret) writes job records and messages
    straight into it. Checked from outside: no ComfyUI gets a prompt, the URL the record names gets no request,
    no object outside the job's prefix is deleted, the logs do not repeat the record, the workers keep serving."""
    first = fleet.done["first"]
    bystander = first["jobs"][1]
    raw = redis.Redis.from_url(fleet.redis.url, decode_responses=True)
    records, actor = fleet_records(fleet)
    canary = Canary()
    try:
        s3 = fleet.s3.client()
        s3.put_object(Bucket=BUCKET, Key="precious/keep.txt", Body=b"not the fleet's")
        outside = ["precious/keep.txt", *bystander["outputs"]["keys"]]
        runs_before = comfy_runs(fleet)
        genuine = raw.hgetall(f"adreel-fleet:job:{bystander['id']}")
        evil_prompt = json.loads(genuine["spec"])["prompt"]
        next(n for n in evil_prompt.values() if n["class_type"] == "BrandBrief")["inputs"]["brand"] = FORGED_BRAND
        evil_spec = json.dumps({**json.loads(genuine["spec"]), "prompt": evil_prompt})
        forged = {"id": "", "state": "queued", "attempts": "0", "comfy": canary.url, "worker": "ghost",
                  "prompt_id": str(uuid.uuid4()), "created": "1", "batch": "forged",
                  "outputs": json.dumps({"keys": outside, "runs": [bystander["outputs"]["runs"][0]]})}
        cases = {
            "f0rged00000000000001": {"spec": evil_spec},                                   # unsigned
            "f0rged00000000000002": {"spec": evil_spec, "sig": genuine["sig"]},            # altered, old signature
            "f0rged00000000000003": {"spec": genuine["spec"], "sig": genuine["sig"]},      # a signed spec, moved
            "f0rged00000000000004": {"spec": evil_spec, "sig": "0" * 64, "state": "running"},  # a "take-over"
        }
        for jid, fields in cases.items():
            raw.hset(f"adreel-fleet:job:{jid}", mapping={**forged, "id": jid, **fields})
        # a tombstone naming objects outside its prefix, and a message for it; a message with a hostile id
        raw.set("adreel-fleet:deleted:f0rged00000000000005", json.dumps({"keys": outside, "at": "1"}))
        for jid in [*cases, "f0rged00000000000005", "../../precious"]:
            actor.send(jid)
        # delete, on a forged record's word
        d = fleet.cli("delete", "f0rged00000000000001")
        assert d.rc == 0, d.stderr

        def refused():
            logs = "".join(w.log_text() for w in fleet.workers)
            return (all(f"job {jid}: refused" in logs for jid in list(cases)[1:])
                    and "f0rged00000000000005: not in Redis" in logs and "no submit makes" in logs)

        wait_for(refused, 120, "the workers to refuse every forged message")
        for jid in list(cases)[1:]:
            rec = raw.hgetall(f"adreel-fleet:job:{jid}")
            assert rec["state"] == "failed" and "refused" in rec["error"], rec
        assert comfy_runs(fleet) == runs_before  # no ComfyUI ran (or was sent) anything
        for c in fleet.comfies:
            q = c.get_json("/queue")
            assert not q["queue_running"] and not q["queue_pending"]
        assert canary.requests == []
        for key in outside:
            assert fleet.keys(key) == [key], key
        assert_stored_exactly_once(fleet, bystander)
        logs = "".join(w.log_text() for w in fleet.workers)
        assert FORGED_BRAND not in logs and "precious/keep.txt" not in logs

        # the workers keep serving: a genuine job, whose record claims a dead worker ran it on the canary,
        # is taken over and completes; the canary still hears nothing (a URL only Redis names is never called)
        from fleet.jobs import build_jobs, load_workflow

        wf = load_workflow(str(fleet.wf))
        (job,) = build_jobs(wf, [(1, {"brand": "Sentry"})], 1, workflow_name="security")
        records.admit("security", [job], cap=100)
        raw.hset(f"adreel-fleet:job:{job.id}", mapping={"state": "running", "worker": "ghost", "comfy": canary.url,
                                                       "prompt_id": str(uuid.uuid4())})
        actor.send(job.id)
        r = fleet.cli("wait", "security", "--timeout", 600, timeout=700)
        assert r.rc == 0, r.stderr
        (done,) = status(fleet, "security")["jobs"]
        assert done["state"] == "completed" and done["attempts"] == 1, done
        assert_stored_exactly_once(fleet, done)
        assert canary.requests == []
    finally:
        canary.close()


def comfy_of(fleet, worker):
    return next(c for c in fleet.comfies if c.url == worker.comfy_url)


def _running_on(fleet, batch, worker, min_progress=0.15):
    def find():
        for j in status(fleet, batch)["jobs"]:
            if j["state"] == "running" and worker in (None, j["worker"]) and j["progress"] >= min_progress:
                return j
        return None
    return find


def test_a_worker_killed_mid_render_loses_no_job_and_stores_each_output_once(fleet):
    sub = submit(fleet, [{"brand": "Mesa"}], "kill-worker.csv", workflow=fleet.long_wf)
    victim = wait_for(_running_on(fleet, sub["batch"], None), 300, "the job rendering")
    dead = next(w for w in fleet.workers if w.name == victim["worker"])
    other = next(w for w in fleet.workers if w is not dead)
    dead.kill()  # SIGKILL: no goodbye, its message stays unacknowledged in Redis
    killed_at = time.monotonic()
    taken = wait_for(lambda: next((j for j in status(fleet, sub["batch"])["jobs"]
                                   if j["worker"] == other.name and j["state"] == "running"), None),
                     RECOVERY_BOUND_S, "the idle worker to take the killed worker's job", every=0.2)
    recovered_in = time.monotonic() - killed_at
    assert taken["attempts"] == 2
    # bounded by the heartbeat, not by luck: with Dramatiq's default maintenance (one broker call in a
    # thousand) this takes many minutes; generous for a loaded machine
    assert recovered_in < HEARTBEAT + 40, recovered_in
    r = fleet.cli("wait", sub["batch"], "--timeout", 600, timeout=700)
    assert r.rc == 0, r.stderr
    (done,) = status(fleet, sub["batch"])["jobs"]
    assert done["state"] == "completed" and done["attempts"] == 2 and done["worker"] == other.name, done
    assert_stored_exactly_once(fleet, done)
    # the orphaned prompt on the dead worker's ComfyUI was stopped by the take-over, not left running for nobody
    orphan_comfy = comfy_of(fleet, dead)
    wait_for(lambda: not orphan_comfy.get_json("/queue")["queue_running"], 60, "the orphaned prompt to stop")
    print(f"killed worker's job taken over after {recovered_in:.1f}s (heartbeat {HEARTBEAT:g}s)")
    fleet.workers.remove(dead)
    dead.stop()
    fleet.add_worker(dead.name, orphan_comfy)


def test_redis_killed_and_restarted_between_submit_and_work_loses_nothing(fleet):
    for w in fleet.workers:
        w.stop()  # SIGTERM: idle workers leave at once
    assert all(not w.alive() for w in fleet.workers)
    pairs = [(w.name, comfy_of(fleet, w)) for w in fleet.workers]
    fleet.workers.clear()
    sub = submit(fleet, [{"brand": "Nova"}, {"brand": "Onyx"}], "redis.csv")
    fleet.redis.kill()  # SIGKILL: only what the AOF (appendfsync always) holds survives
    assert fleet.cli("status", sub["batch"]).rc == 2
    fleet.redis.start()
    assert [j["state"] for j in status(fleet, sub["batch"])["jobs"]] == ["queued", "queued"]
    for name, comfy in pairs:
        fleet.add_worker(name, comfy)
    r = fleet.cli("wait", sub["batch"], "--timeout", 600, timeout=700)
    assert r.rc == 0, r.stderr
    for j in status(fleet, sub["batch"])["jobs"]:
        assert j["attempts"] == 1
        assert_stored_exactly_once(fleet, j)


def test_redis_restarted_while_jobs_render_loses_and_duplicates_nothing(fleet):
    rows = [{"brand": f"Rill{i}"} for i in range(2)]
    sub = submit(fleet, rows, "redis-mid-job.csv", workflow=fleet.long_wf)

    def both_rendering():
        jobs = status(fleet, sub["batch"])["jobs"]
        return jobs if all(j["state"] == "running" and j["progress"] >= 0.15 for j in jobs) else None

    wait_for(both_rendering, 300, "both jobs rendering")
    fleet.redis.kill()  # SIGKILL mid-job: what the AOF (appendfsync always) holds is all that survives
    time.sleep(2)
    fleet.redis.start()
    r = fleet.cli("wait", sub["batch"], "--timeout", 600, timeout=700)
    assert r.rc == 0, r.stderr
    st = status(fleet, sub["batch"])
    logs = "".join(w.log_text() for w in fleet.workers)
    runs = comfy_runs(fleet)
    for j in st["jobs"]:
        assert j["state"] == "completed" and j["attempts"] == 1, j
        assert_stored_exactly_once(fleet, j)
        assert logs.count(f"job {j['id']}: completed") == 1  # completed exactly once
        # rendered to the end once on the ComfyUI servers: no second run of the same job
        ok = [pid for pid, (_, prefix, state) in runs.items() if prefix == f"fleet/{j['id']}/" and state == "success"]
        assert len(ok) == 1, ok
    assert all(w.alive() for w in fleet.workers)


@pytest.mark.cores
def test_its_comfyui_killed_mid_render_loses_no_job_and_stores_each_output_once(fleet):
    rows = [{"brand": f"Pike{i}"} for i in range(2)]
    sub = submit(fleet, rows, "kill-comfy.csv", workflow=fleet.long_wf)
    victim = wait_for(_running_on(fleet, sub["batch"], "w2"), 300, "a job rendering on w2")
    w2 = next(w for w in fleet.workers if w.name == "w2")
    comfy_of(fleet, w2).kill()  # SIGKILL of w2's ComfyUI: the prompt and its queue are gone
    r = fleet.cli("wait", sub["batch"], "--timeout", 600, timeout=700)
    assert r.rc == 0, r.stderr
    st = status(fleet, sub["batch"])
    for j in st["jobs"]:
        assert j["state"] == "completed", j
        assert_stored_exactly_once(fleet, j)
    done = by_id(st)[victim["id"]]
    assert done["attempts"] == 2 and done["worker"] == "w1", done
    assert w2.alive()  # it waits for its ComfyUI, holding no job
    log = w2.log_tail(20000)
    assert "stopped answering" in log or "waiting for its ComfyUI" in log, log
    assert re.search(rf"job {victim['id']}: attempt 1 failed \(lost ComfyUI", log), log


def test_a_job_whose_first_upload_was_spooled_completes_with_each_object_stored_once(fleet):
    """The store is down for the first attempt (AssetUpload spools), back for the next: once the spool has
    drained too, the job's prefix holds each output once, one manifest among them."""
    fleet.s3.stop()
    sub = submit(fleet, [{"brand": "Spoolie"}], "spooled.csv")
    wait_for(lambda: "attempt 1 failed" in status(fleet, sub["batch"])["jobs"][0]["error"], 300,
             "the first attempt to spool")
    fleet.s3.start()  # same ports, same data
    r = fleet.cli("wait", sub["batch"], "--timeout", 600, timeout=700)
    assert r.rc == 0, r.stderr
    (job,) = status(fleet, sub["batch"])["jobs"]
    assert job["state"] == "completed" and job["attempts"] >= 2, job
    spool = fleet.base / "spool"
    wait_for(lambda: not list_spooled(spool), 120, "the spool to drain")
    time.sleep(4)  # a background spool retry (every 3 s here) that would still upload something has run
    assert_stored_exactly_once(fleet, job)
    # the retry ran where the render was cached, so it stored the very same objects: nothing to prune
    log = "".join(w.log_text() for w in fleet.workers)
    assert f"job {job['id']}: removed" not in log and f"job {job['id']}: attempt 2 on" in log


def test_storage_down_is_retried_with_backoff_at_most_three_attempts_then_fails_saying_why(fleet):
    fleet.s3.stop()  # the store goes away: AssetUpload can only spool
    live = next(w for w in fleet.workers if w.name == "w1")
    sub = submit(fleet, [{"brand": "Quill"}], "storage-down.csv")
    r = fleet.cli("wait", sub["batch"], "--timeout", 600, timeout=700)
    assert r.rc == 1, (r.stdout, r.stderr)
    (job,) = status(fleet, sub["batch"])["jobs"]
    assert job["state"] == "failed" and job["attempts"] == 3, job
    assert "storage" in job["error"] and "could not upload" in job["error"] and "gave up after 3 attempts" in job["error"]
    log = live.log_tail(20000)
    assert re.search(rf"job {job['id']}: attempt 1 failed \(storage.*retrying in 2s", log), log
    assert re.search(rf"job {job['id']}: attempt 2 failed \(storage.*retrying in 4s", log), log
