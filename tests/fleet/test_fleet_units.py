"""The fleet's job building and settings, without Redis or ComfyUI: what `submit` accepts, refuses, and names."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.config import FleetError, load_settings, mask_url
from fleet.jobs import build_jobs, load_workflow, read_briefs

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "example_workflows" / "api" / "brief_to_ad_upload.json"


@pytest.fixture
def workflow():
    return load_workflow(str(WORKFLOW))


def briefs(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_rows_and_variants_make_jobs_whose_ids_follow_from_their_content(tmp_path, workflow):
    csv_path = briefs(tmp_path, "b.csv", "brand,product,duration_seconds\nAcme,Vac,8\nBolt,Bike,10.5\n")
    jobs = build_jobs(workflow, read_briefs(csv_path, workflow), 3)
    assert [(j.row, j.variant, j.seed) for j in jobs] == [(1, 0, 7), (1, 1, 8), (1, 2, 9), (2, 0, 7), (2, 1, 8), (2, 2, 9)]
    assert len({j.id for j in jobs}) == 6
    first = jobs[0].prompt
    assert first["1"]["inputs"]["brand"] == "Acme" and first["1"]["inputs"]["duration_seconds"] == 8.0
    # outputs go to names derived from the job id
    (upload,) = [n for n in first.values() if n["class_type"] == "AssetUpload"]
    (assemble,) = [n for n in first.values() if n["class_type"] == "FFmpegAssemble"]
    assert upload["inputs"]["prefix_pattern"] == f"fleet/{jobs[0].id}/"
    assert assemble["inputs"]["filename_prefix"] == f"AdReel/fleet_{jobs[0].id}"
    # the same file as JSON Lines gives the same jobs: the id is the content, not the file or the time
    jl = briefs(tmp_path, "b.jsonl", '{"brand": "Acme", "product": "Vac", "duration_seconds": 8}\n\n'
                                     '{"brand": "Bolt", "product": "Bike", "duration_seconds": 10.5}\n')
    again = build_jobs(load_workflow(str(WORKFLOW)), read_briefs(jl, workflow), 3)
    assert [j.id for j in again] == [j.id for j in jobs]
    # any change of content is another job
    changed = build_jobs(workflow, read_briefs(briefs(tmp_path, "c.csv", "brand,product,duration_seconds\n"
                                                      "Acme,Vac,9\n"), workflow), 1)
    assert changed[0].id != jobs[0].id


def test_a_column_brandbrief_lacks_is_refused_naming_it_and_the_row(tmp_path, workflow):
    path = briefs(tmp_path, "b.csv", "brand,colour\nAcme,red\n")
    with pytest.raises(FleetError) as err:
        read_briefs(path, workflow)
    assert "row 1" in str(err.value) and "'colour'" in str(err.value) and "brand_colors" in str(err.value)


def test_values_that_do_not_parse_reach_comfyui_as_given_so_its_error_names_the_input(tmp_path, workflow):
    rows = read_briefs(briefs(tmp_path, "b.csv", "brand,duration_seconds\nAcme,long\nBolt,nan\n"), workflow)
    assert rows[0][1]["duration_seconds"] == "long" and rows[1][1]["duration_seconds"] == "nan"


@pytest.mark.parametrize("text, expected", [
    ('{"nodes": [], "links": []}', "UI-format"),
    ("[1, 2]", "API-format"),
    ('{"1": {"class_type": "KSampler", "inputs": {}}}', "exactly one BrandBrief"),
    ("{nope", "not valid JSON"),
    ('{"1": {"class_type": "BrandBrief", "inputs": {"duration_seconds": NaN}}}', "not valid JSON"),
])
def test_a_workflow_that_is_not_an_api_workflow_with_one_brief_is_refused(tmp_path, text, expected):
    p = tmp_path / "wf.json"
    p.write_text(text)
    with pytest.raises(FleetError, match=expected):
        load_workflow(str(p))


def test_variants_need_a_scriptllm_and_a_positive_count(tmp_path, workflow):
    rows = [(1, {"brand": "Acme"})]
    with pytest.raises(FleetError, match="--variants"):
        build_jobs(workflow, rows, 0)
    no_script = {k: v for k, v in workflow.items() if v["class_type"] != "ScriptLLM"}
    with pytest.raises(FleetError, match="no ScriptLLM"):
        build_jobs(no_script, rows, 2)


def test_identical_rows_are_refused_rather_than_silently_merged(tmp_path, workflow):
    rows = read_briefs(briefs(tmp_path, "b.csv", "brand\nAcme\nAcme\n"), workflow)
    with pytest.raises(FleetError, match="row 2.*same job"):
        build_jobs(workflow, rows, 1)


def test_settings_refuse_a_bad_redis_url_and_never_show_its_password():
    with pytest.raises(FleetError, match="not a redis:// URL"):
        load_settings("http://127.0.0.1:6379")
    assert mask_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    s = load_settings("redis://:hunter2@127.0.0.1:1/0", environ={"ADREEL_FLEET_MAX_QUEUED": "nan"})
    assert s.max_queued == 100 and "hunter2" not in s.redis_display
    assert load_settings("redis://:pw@127.0.0.1:1/0", environ={"ADREEL_FLEET_MAX_QUEUED": "7"}).max_queued == 7
    assert load_settings(None, environ={}, insecure=True).redis_url == "redis://127.0.0.1:6379/0"


def run_fleet(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fleet", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "ADREEL_REDIS_URL": "", **(env or {})})


def test_a_redis_url_without_a_password_is_refused_unless_loopback_and_insecure(tmp_path):
    """As an operator meets it: the default URL, a LAN address, and --insecure, which loopback alone accepts.
    Nothing is contacted (the ComfyUI URL is a closed port: a worker that got as far as it would say so)."""
    secret = {"ADREEL_FLEET_SECRET": "s" * 40}
    default = run_fleet("worker", "--comfy", "http://127.0.0.1:1", env=secret)
    assert default.returncode == 2 and "has no password" in default.stderr and "--requirepass" in default.stderr
    assert "--insecure allows it" in default.stderr, default.stderr
    lan = run_fleet("--insecure", "--redis", "redis://10.255.0.7:6379/0", "worker", "--comfy", "http://127.0.0.1:1",
                    env=secret)
    assert lan.returncode == 2 and "has no password" in lan.stderr
    assert "--insecure is accepted only for a Redis on loopback" in lan.stderr, lan.stderr
    for cmd in (["submit", WORKFLOW, "--briefs", briefs(tmp_path, "b.csv", "brand\nAcme\n")], ["history"]):
        r = run_fleet("--redis", "redis://localhost:1/0", *cmd, env=secret)
        assert r.returncode == 2 and "has no password" in r.stderr, r.stderr
    # with --insecure on loopback the URL passes; the closed port is then what stops it
    local = run_fleet("--insecure", "--redis", "redis://127.0.0.1:1/0", "history")
    assert local.returncode == 2 and "does not answer" in local.stderr, local.stderr


def test_submit_and_worker_need_the_fleet_secret(tmp_path):
    wf_briefs = briefs(tmp_path, "b.csv", "brand\nAcme\n")
    for env, says in (({}, "ADREEL_FLEET_SECRET is not set"), ({"ADREEL_FLEET_SECRET": "short"}, "at least 32")):
        for cmd in (["submit", WORKFLOW, "--briefs", wf_briefs], ["worker", "--comfy", "http://127.0.0.1:1"]):
            r = run_fleet("--redis", "redis://:pw@127.0.0.1:1/0", *cmd, env={"ADREEL_FLEET_SECRET": "", **env})
            assert r.returncode == 2 and says in r.stderr, (cmd, r.stderr)
            assert "short" not in r.stderr  # the secret itself is never shown


def test_an_unreachable_redis_is_a_clear_error_without_the_password(tmp_path):
    wf = tmp_path / "wf.json"
    wf.write_text(WORKFLOW.read_text())
    b = briefs(tmp_path, "b.csv", "brand\nAcme\n")
    p = run_fleet("--redis", "redis://:hunter2@127.0.0.1:1/0", "submit", wf, "--briefs", b,
                  env={"ADREEL_FLEET_SECRET": "s" * 40})
    assert p.returncode == 2, p.stderr
    assert "does not answer" in p.stderr and "hunter2" not in p.stderr + p.stdout


def test_prompt_ids_are_canonical_uuids_derived_from_the_job_and_new_for_each_delivery():
    import uuid

    from fleet.runner import prompt_id_for

    ids = [prompt_id_for("0123456789abcdef0123", "1700000000.000", d) for d in (1, 2)]
    assert all(str(uuid.UUID(i)) == i for i in ids)  # canonical lowercase hyphenated, as ComfyUI 0.25+ requires
    assert ids[0] != ids[1]
    assert ids[0] == prompt_id_for("0123456789abcdef0123", "1700000000.000", 1)  # derived, not random
    assert ids[0] != prompt_id_for("0123456789abcdef0123", "1700000001.000", 1)  # a re-submit is another prompt


def _events(node_steps, throttle_every=1):
    """Websocket events of a prompt whose nodes report progress in ``node_steps`` steps each; with
    ``throttle_every`` > 1, intermediate progress events are dropped as core's 100 ms throttle does
    (the first and the last of each node are always sent)."""
    pid = "p"
    out = []
    for node, steps in node_steps:
        out.append({"type": "executing", "data": {"node": node, "prompt_id": pid}})
        for v in range(1, steps + 1):
            if v in (1, steps) or v % throttle_every == 0:
                out.append({"type": "progress", "data": {"value": v, "max": steps, "prompt_id": pid, "node": node}})
        out.append({"type": "executed", "data": {"node": node, "prompt_id": pid}})
    out.append({"type": "executing", "data": {"node": None, "prompt_id": pid}})
    return out


@pytest.mark.parametrize("throttle_every", [1, 7, 1000])
def test_progress_never_goes_back_and_reaches_the_end_however_progress_events_are_thinned(throttle_every):
    from fleet.comfy import Progress

    seen = []
    p = Progress(total=4, on_progress=lambda f, node: seen.append(f))
    ended = [p.handle(e, "p") for e in _events([("1", 50), ("2", 3), ("3", 200), ("4", 1)], throttle_every)]
    assert ended[-1] and not any(ended[:-1])
    assert seen == sorted(seen) and seen[-1] == 0.99  # 0.99 until the outputs are stored
    # another prompt's events and NaN values change nothing
    before = p.value
    p.handle({"type": "progress", "data": {"value": 5, "max": 5, "prompt_id": "other"}}, "p")
    p.handle({"type": "progress", "data": {"value": float("nan"), "max": 5, "prompt_id": "p"}}, "p")
    assert p.value == before


def test_the_pack_entry_comfyui_imports_never_imports_the_fleet():
    """ComfyUI imports the pack's __init__.py (every node with it): the fleet, Dramatiq and Redis stay out."""
    from harness import comfyui_dir
    code = ("import importlib.util, sys\n"
            f"sys.path.insert(0, {comfyui_dir()!r})\n"
            f"spec = importlib.util.spec_from_file_location('adreel_pack', {str(ROOT / '__init__.py')!r}, "
            f"submodule_search_locations=[{str(ROOT)!r}])\n"
            "pack = importlib.util.module_from_spec(spec); sys.modules['adreel_pack'] = pack\n"
            "spec.loader.exec_module(pack)\n"
            "assert callable(pack.comfy_entrypoint)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fleet', 'dramatiq', 'redis')))")
    p = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT.parent), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().splitlines()[-1] == "[]", p.stdout


def _upload_entry(status="uploaded", files=None, manifest_key="fleet/j/ad-2.json"):
    payload = {"status": status, "url": "https://s3/ad.mp4", "bucket": "b", "run": "abc", "reason_code": "unreachable",
               "manifest_key": manifest_key, "files": files if files is not None else [
                   {"name": "ad_00001_.mp4", "kind": "video", "key": "fleet/j/ad-1.mp4", "url": "https://s3/ad.mp4"},
                   {"name": "ad.m3u8", "kind": "hls", "key": "fleet/j/ad-hls-3/ad.m3u8", "url": "u"}]}
    (upload_id,) = [k for k, n in json.loads(WORKFLOW.read_text()).items() if n["class_type"] == "AssetUpload"]
    return {"outputs": {upload_id: {"adreel_upload": [payload], "text": ["…"]}}}


def test_outputs_count_as_stored_only_when_every_assetupload_uploaded():
    from fleet.comfy import Transient
    from fleet.runner import collect_outputs

    prompt = json.loads(WORKFLOW.read_text())
    out = collect_outputs(prompt, _upload_entry())
    assert out["keys"] == ["fleet/j/ad-1.mp4", "fleet/j/ad-hls-3/ad.m3u8", "fleet/j/ad-2.json"]
    assert out["runs"] == ["abc"] and out["url"] == "https://s3/ad.mp4" and out["bucket"] == "b"
    assert out["hls_prefixes"] == ["fleet/j/ad-hls-3/"]  # the playlist's segments belong to the job
    with pytest.raises(Transient, match="could not upload .unreachable"):
        collect_outputs(prompt, _upload_entry(status="spooled"))
    with pytest.raises(Transient, match="no result"):
        collect_outputs(prompt, {"outputs": {}})


def test_node_errors_are_permanent_unless_a_retry_can_cure_them():
    from fleet.comfy import describe_execution_error, describe_rejection

    msg, transient = describe_execution_error({"node_id": "1", "node_type": "BrandBrief",
                                               "exception_type": "nodes.engine.models.AdReelInputError",
                                               "exception_message": "brief.brand: must not be empty"})
    assert msg == "node 1 (BrandBrief): brief.brand: must not be empty" and not transient
    assert describe_execution_error({"exception_type": "ConnectionRefusedError"})[1]
    assert describe_execution_error({"exception_type": "torch.OutOfMemoryError"})[1]
    body = {"error": {"message": "Prompt outputs failed validation"},
            "node_errors": {"1": {"class_type": "BrandBrief", "errors": [
                {"message": "Value not in list", "details": "aspect_ratio: '4:5' not in ['9:16', '1:1', '16:9']"}]}}}
    assert describe_rejection(body) == ("node 1 (BrandBrief): Value not in list: aspect_ratio: '4:5' not in "
                                        "['9:16', '1:1', '16:9']")
