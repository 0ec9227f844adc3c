"""Benchmark: the job API's own cost, measured in one run (`make bench-api`).

A real redis-server and `python -m fleet api` (as its own process) on
loopback, no worker: what is measured is the API, not the renders.

1. 100 submissions through `POST /api/v2/jobs` (a brief and a shipped
   workflow's name), one after another, up to the queue cap of 100: the time
   of each answer (median, 95th percentile), then the 101st (429).
2. `GET /api/v2/jobs/{id}` of a queued job (its queue position is computed
   over the 100 waiting jobs) and `GET /api/v2/jobs?limit=100`.
3. Event latency: an event stream opened on a queued job; the job is
   cancelled through the API, and the time from the cancel's answer to the
   stream's `canceled` status is measured (the stream reads the job's record
   every 0.5 s, so this is bounded by about half a second; the cancel comes at
   a random phase of those reads).
4. A batch of 100 CSV rows through `POST /api/v2/batches` in one request
   (three times, the queue emptied between them).
"""
from __future__ import annotations

import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests" / "fleet"), str(REPO / "tests")]

from fleet_stack import ApiServer, Fleet, RedisServer, fleet_secret  # noqa: E402

KEY = "bench-key-0123456789abcdef"
H = {"Authorization": f"Bearer {KEY}"}
BRIEF = {"workflow_name": "brief_to_ad_upload", "brief": {"brand": "Acme", "product": "RoboVac X2"}}


def ms(xs):
    xs = sorted(xs)
    return f"median {statistics.median(xs) * 1000:.1f} ms, p95 {xs[int(len(xs) * 0.95) - 1] * 1000:.1f} ms"


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="adreel-bench-api-"))
    red = RedisServer(base / "redis").start()
    fleet = Fleet(base=base, redis=red, s3=None, fleet_env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1",
                                                           "ADREEL_FLEET_MAX_QUEUED": "100",
                                                           "ADREEL_FLEET_SECRET": fleet_secret()})
    api = ApiServer(fleet, [KEY]).wait_healthy()
    try:
        s = requests.Session()
        times, ids = [], []
        for n in range(100):
            t = time.perf_counter()
            r = s.post(api.url + "/api/v2/jobs", headers=H,
                       json={**BRIEF, "brief": {**BRIEF["brief"], "cta": f"n{n}"}})
            times.append(time.perf_counter() - t)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        t = time.perf_counter()
        full = s.post(api.url + "/api/v2/jobs", headers=H, json=BRIEF)
        t_full = time.perf_counter() - t
        assert full.status_code == 429, full.text
        print(f"submit, 100 jobs up to the cap: {ms(times)}; the 101st: 429 in {t_full * 1000:.1f} ms "
              f"({full.json()['error']['message'][:60]}…)")

        gets = []
        for _ in range(50):
            t = time.perf_counter()
            assert s.get(f"{api.url}/api/v2/jobs/{ids[-1]}", headers=H).json()["queue_position"] == 99
            gets.append(time.perf_counter() - t)
        lists = []
        for _ in range(10):
            t = time.perf_counter()
            assert len(s.get(api.url + "/api/v2/jobs?limit=100", headers=H).json()["jobs"]) == 100
            lists.append(time.perf_counter() - t)
        print(f"GET a queued job (queue position over 100): {ms(gets)}; GET the list of 100: {ms(lists)}")

        lags = []
        for job_id in ids[:10]:
            seen = threading.Event()

            def follow(job_id=job_id):
                with requests.get(f"{api.url}/api/v2/jobs/{job_id}/events", headers=H, stream=True,
                                  timeout=30) as r:
                    for line in r.iter_lines(decode_unicode=True):
                        if line.startswith("data:") and '"canceled"' in line:
                            seen.set()
                            return

            th = threading.Thread(target=follow)
            th.start()
            time.sleep(1.0 + random.random() * 0.5)  # the stream is open; a random phase against its reads
            s.post(f"{api.url}/api/v2/jobs/{job_id}/cancel", headers=H)
            t = time.perf_counter()
            assert seen.wait(10)
            lags.append(time.perf_counter() - t)
            th.join(10)
        print(f"event latency, cancel answered → 'canceled' on the stream: {ms(lags)}")

        for job_id in ids[10:]:
            s.post(f"{api.url}/api/v2/jobs/{job_id}/cancel", headers=H)
        csv_text = "brand,product,cta\n" + "".join(f"Acme,RoboVac X2,row {n}\n" for n in range(100))
        batches = []
        for n in range(3):
            t = time.perf_counter()
            r = s.post(api.url + "/api/v2/batches", headers=H, json={"workflow_name": "brief_to_ad_upload",
                                                                      "csv": csv_text})
            batches.append(time.perf_counter() - t)
            assert r.status_code == 201 and len(r.json()["jobs"]) == 100, r.text[:300]
            for job in r.json()["jobs"]:
                s.post(f"{api.url}/api/v2/jobs/{job['id']}/cancel", headers=H)
        print("POST /api/v2/batches, 100 CSV rows in one request (3 runs): "
              + ", ".join(f"{b * 1000:.0f} ms" for b in batches))
        return 0
    finally:
        api.stop()
        red.stop()


if __name__ == "__main__":
    sys.exit(main())
