"""AdReel Studio, the job API's dashboard, in a real browser: Debian's headless Chromium driven by playwright-core
(tests/fleet/dashboard.mjs) against ``python -m fleet api`` on the real stack (redis-server, SeaweedFS, a ComfyUI
with its worker).

The driver does what a user does — signs in (a wrong key first), fills the brief form with approval asked,
watches the job's row change live (event stream, no reload), opens the approval view, edits the first scene's
on-screen text, approves, plays the finished ad, switches to Korean, uploads a CSV file of two briefs as a
batch — and reports what the page showed. The test
checks that report against the API, and the page's screenshots go to artifacts/.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess

import pytest
import requests

from fleet_stack import ROOT, ApiServer, start_fleet

pytestmark = [pytest.mark.comfy, pytest.mark.timeout(1200)]

HERE = os.path.dirname(os.path.abspath(__file__))
BROWSER = os.path.join(ROOT, "tests", "browser")
ARTIFACTS = os.path.join(ROOT, "artifacts")
KEY = "studio-" + secrets.token_urlsafe(24)
EDIT = "Edited in the studio"
BATCH = [("한빛", "녹차 라떼"), ("Zest Two", "Ginger Fizz")]


def driver() -> str:
    node = shutil.which("node")
    if not node:
        pytest.fail("node (Node.js ≥ 20) is needed for the browser tests: run `make setup`")
    if not os.path.isfile(os.environ.get("ADREEL_CHROMIUM", "/usr/bin/chromium")):
        pytest.fail("chromium is needed for the browser tests: run `make setup`")
    if not os.path.isdir(os.path.join(BROWSER, "node_modules", "playwright-core")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER, check=True)
    return node


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    node = driver()
    base = tmp_path_factory.mktemp("studio")
    fleet = start_fleet(base, comfies=1, heartbeat=5, retry=2)
    api = ApiServer(fleet, [KEY])
    try:
        api.wait_healthy()
        inp, outp = base / "in.json", base / "out.json"
        csv_path = base / "briefs.csv"
        csv_path.write_text("brand,product,duration_seconds,aspect_ratio\n"
                            + "".join(f"{b},{p},4,1:1\n" for b, p in BATCH), encoding="utf-8")
        inp.write_text(json.dumps({"url": api.url, "key": KEY, "artifacts": ARTIFACTS, "brand": "Zest",
                                   "product": "Lemon Soda", "edit": EDIT, "timeoutMs": 600_000,
                                   "csvPath": str(csv_path), "csvRows": len(BATCH)}))
        proc = subprocess.run([node, os.path.join(HERE, "dashboard.mjs"), str(inp), str(outp)], cwd=HERE,
                              capture_output=True, text=True, timeout=1100)
        out = json.loads(outp.read_text()) if outp.exists() else {}
        out["_exit"] = (proc.returncode, proc.stderr[-3000:])
        out["_api"] = api.url
        out["_job"] = requests.get(f"{api.url}/api/v2/jobs/{out.get('jobId')}", timeout=30,
                                   headers={"Authorization": f"Bearer {KEY}"}).json() if out.get("jobId") else None
        out["_batch"] = requests.get(f"{api.url}/api/v2/batches/{out.get('batchId')}", timeout=30,
                                     headers={"Authorization": f"Bearer {KEY}"}).json() if out.get("batchId") else None
        out["_review"] = requests.get(f"{api.url}/api/v2/jobs/{out.get('jobId')}/workflow", timeout=30,
                                      headers={"Authorization": f"Bearer {KEY}"}).json() if out.get("jobId") else None
        yield out
    finally:
        api.stop()
        print("--- api log tail ---\n" + api.log_tail())
        fleet.close()


def test_the_page_loads_without_a_key_and_refuses_a_wrong_one(report):
    assert report["_exit"][0] == 0 and not report.get("error"), (report.get("error"), report["_exit"], report["steps"])
    assert report["pageUrl"].endswith("/dashboard/")
    assert "default-src 'self'" in report["csp"]
    assert "API key" in report["signedOutNotice"] and "not accepted" in report["badKeyNotice"]
    assert report["pageErrors"] == [] and report["blocked"] == []
    # the browser logs the wrong key's 401 itself; nothing else goes wrong on the page
    assert not [c for c in report["console"] if c["type"] == "error" and "401" not in c["text"]], report["console"]
    assert sum("401" in c["text"] for c in report["console"]) == 1


def test_a_brief_waits_for_approval_live_and_renders_the_script_edited_on_the_page(report):
    assert not report.get("error"), (report.get("error"), report["steps"])
    # the row followed the job live (its event stream): queued or running first, then awaiting approval, then
    # rendering, then done — without a reload
    statuses = report["statuses"]
    assert statuses[0] in ("queued", "running") and "awaiting_approval" in statuses and statuses[-1] == "succeeded"
    after = statuses[statuses.index("awaiting_approval") + 1:]
    assert "running" in after or "queued" in after, statuses
    assert max(report["progress"]) == 100 and any(0 < p < 100 for p in report["progress"]), report["progress"]

    assert len(report["scenes"]) >= 2 and all(s["onScreen"] for s in report["scenes"])
    assert report["scenes"][0]["onScreen"] != EDIT
    # each scene's key image is shown beside its text (1:1, as the brief asks)
    assert len(report["keyImages"]) == len(report["scenes"]) and all(w == h > 0 for w, h in report["keyImages"])
    job = report["_job"]
    assert job["status"] == "succeeded" and job["adreel"]["approval"] == {"state": "approved", "script_edited": True}
    graph = report["_review"]["workflow"]
    (script_node,) = [n for n in graph.values() if n["class_type"] == "ScriptLLM"]
    assert json.loads(script_node["inputs"]["edited_script"])["scenes"][0]["on_screen_text"] == EDIT

    (video,) = [o for o in job["outputs"] if o["type"] == "video"]
    assert abs(report["video"]["duration"] - 6.0) < 0.3 and report["video"]["src"] == "blob:"
    assert report["video"]["width"] > 0 and report["video"]["width"] == report["video"]["height"]  # 1:1, as asked
    assert any(video["name"] in d for d in report["downloads"])


def test_the_dashboard_speaks_korean(report):
    ko = report["korean"]
    assert ko["lang"] == "ko" and ko["brief"] == "광고 브리프" and ko["jobs"] == "작업"
    assert ko["status"] == "완료" and ko["play"] == "재생"
    assert ko["downloads"] and all(d.startswith("다운로드 ") for d in ko["downloads"])
    for name in ("dashboard.png", "dashboard-ko.png", "dashboard-approval.png"):
        assert os.path.getsize(os.path.join(ARTIFACTS, name)) > 10_000


def test_a_csv_file_uploaded_on_the_page_becomes_a_batch_with_a_job_per_row(report):
    assert not report.get("error"), (report.get("error"), report["steps"])
    form = report["batchForm"]  # the form speaks Korean too
    assert form["title"] == "CSV 파일로 광고 여러 개 만들기" and form["button"] == "업로드하고 광고 만들기"
    assert form["file"] == "CSV 파일"
    batch = report["_batch"]
    assert batch["id"] == report["batchId"] and batch["rows"] == len(BATCH) and "작업 2개 제출됨" in report["batchNotice"]
    # one job per row, with the row's brand and product, made with the page's options (approval asked)
    assert sorted(j["adreel"]["brand"] for j in batch["jobs"]) == sorted(b for b, _ in BATCH)
    assert all(j["adreel"]["approval"] == {"state": "pending", "script_edited": False} for j in batch["jobs"])
    shown = {r["id"]: r["brand"] for r in report["batchRows"]}
    assert all(shown.get(j["id"]) == j["adreel"]["brand"] for j in batch["jobs"]), (shown, batch["jobs"])
