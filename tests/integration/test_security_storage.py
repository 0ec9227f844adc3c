"""Storage: the attacks a network user can make on uploads, made as a network user makes them.

A real ComfyUI (loopback) with the storage settings in its environment, a real
SeaweedFS whose secret key holds a canary. Every file is planted with
ComfyUI's own ``POST /upload/image`` (multipart, ``type=input|output``,
``subfolder``, ``overwrite=true``) and every workflow goes through ``/prompt``.
What happened is read from the outside: the bucket's objects (boto3), what
``/history`` and ``/view`` return, the spool folder on disk, the server's log.
After each attack the server still answers; a normal render + upload works.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from fakes.seaweedfs import SeaweedFS
from nodes.engine.storage.spool import DB_NAME, list_spooled
from harness import ComfyServer, PromptError, load_api_workflow, node_by_type

pytestmark = [pytest.mark.comfy, pytest.mark.timeout(1500)]

BUCKET = "adreel-sec"
CANARY = "CANARY-s3-secret-7Hq2xLp9Vz4Rk8Tn"  # the storage secret: must appear nowhere
FILE_CANARY = "file-canary-3e9b71c2"  # inside files outside ComfyUI's folders: must never reach the bucket
HERMETIC = {name: "" for name in (
    "ADREEL_S3_BUCKET", "ADREEL_S3_PREFIX", "ADREEL_S3_URL_MODE", "ADREEL_S3_URL_EXPIRY", "ADREEL_S3_PUBLIC_BASE_URL",
    "MINIO_SECURE")}
PAGE_TYPES = ("text/html", "image/svg+xml", "application/xhtml+xml")


@dataclass
class Sec:
    base: Path
    s3: SeaweedFS
    comfy: ComfyServer
    env: dict
    spool: Path
    secrets: Path  # a folder outside ComfyUI's folders, standing for ~/.aws and ~/.config/adreel


@pytest.fixture(scope="module")
def sec(tmp_path_factory):
    base = tmp_path_factory.mktemp("sec-storage")
    s3 = SeaweedFS(base / "s3", secret_key=CANARY)
    s3.start()
    s3.create_bucket(BUCKET)
    secrets = base / "home"
    (secrets / ".aws").mkdir(parents=True)
    (secrets / ".aws" / "credentials").write_text(f"[default]\naws_secret_access_key = {FILE_CANARY}\n")
    (secrets / ".config" / "adreel").mkdir(parents=True)
    (secrets / ".config" / "adreel" / "storage.json").write_text(json.dumps({"secret_key": FILE_CANARY}))
    spool = base / "spool"
    env = {**HERMETIC, **s3.env(BUCKET), "ADREEL_SPOOL_DIR": str(spool),
           "ADREEL_STORAGE_CONFIG": str(base / "no-config-file.json"), "ADREEL_SPOOL_RETRY_SECONDS": "2",
           "ADREEL_RETENTION_HOURS": "24"}
    comfy = ComfyServer(base_dir=str(base / "comfy"), env=env)
    state = Sec(base, s3, comfy, env, spool, secrets)
    try:
        comfy.start()
        yield state
    finally:
        state.comfy.stop()
        s3.stop()


# ------------------------------------------------------------------ helpers
def plant(comfy: ComfyServer, name: str, data: bytes, *, type_: str = "input", subfolder: str = "",
          overwrite: bool = False) -> dict:
    """ComfyUI's own upload route, exactly as any network user calls it."""
    fields = {"type": type_, "subfolder": subfolder}
    if overwrite:
        fields["overwrite"] = "true"
    r = requests.post(comfy.url + "/upload/image", files={"image": (name, data, "application/octet-stream")},
                      data=fields, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def view(comfy: ComfyServer, filename: str, subfolder: str, type_: str) -> requests.Response:
    return requests.get(comfy.url + "/view", params={"filename": filename, "subfolder": subfolder, "type": type_},
                        timeout=30)


def bucket(s3: SeaweedFS) -> dict[str, dict]:
    client = s3.client()
    out = {}
    for o in s3.list_keys(BUCKET):
        obj = client.get_object(Bucket=BUCKET, Key=o["Key"])
        out[o["Key"]] = {"body": obj["Body"].read(), "type": obj["ContentType"]}
    return out


def assert_bucket_clean(s3: SeaweedFS) -> dict:
    objs = bucket(s3)
    for key, o in objs.items():
        for needle in (CANARY.encode(), FILE_CANARY.encode(), b"root:x:0:0", b"<script", b"onload="):
            assert needle not in o["body"], (key, needle)
        assert o["type"].split(";")[0] not in PAGE_TYPES, (key, o["type"])
    return objs


def small_mp4(path: Path, color: str = "red", seconds: float = 1.0) -> bytes:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c={color}:s=64x64:d={seconds}", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
                   check=True)
    return path.read_bytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload_prompt(seed: int, prefix: str | None = None) -> dict:
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad_upload.json"))
    node_by_type(prompt, "BrandBrief")[1]["inputs"].update(duration_seconds=6.0, aspect_ratio="1:1")
    node_by_type(prompt, "ScriptLLM")[1]["inputs"]["seed"] = seed
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"].update(resolution="720p", fps="24")
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["preset"] = "ultrafast"
    if prefix is not None:
        node_by_type(prompt, "AssetUpload")[1]["inputs"]["prefix_pattern"] = prefix
    return prompt


def frames_upload(prefix: str, color: int = 0x3366CC, frames: int = 12) -> dict:
    """A VIDEO made of frames (core CreateVideo) → AssetUpload: no render needed."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": frames, "color": color}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 12.0}},
        "3": {"class_type": "AssetUpload", "inputs": {"video": ["2", 0], "prefix_pattern": prefix,
                                                       "url_mode": "presigned", "url_expiry_hours": 1.0}},
    }


def load_video_upload(file: str, prefix: str = "{brand}/{date}/{run}/") -> dict:
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": file}},
        "2": {"class_type": "AssetUpload", "inputs": {"video": ["1", 0], "prefix_pattern": prefix,
                                                       "url_mode": "presigned", "url_expiry_hours": 1.0}},
    }


def upload_info(result, node_id: str = "2") -> dict:
    out = result.ui(node_id)
    assert out.get("adreel_upload"), out
    return out["adreel_upload"][0]


def render_folder(comfy: ComfyServer, prompt: dict, result) -> tuple[Path, dict]:
    node_id, _ = node_by_type(prompt, "FFmpegAssemble")
    (item,) = result.ui(node_id)["images"]
    mp4 = Path(comfy.folder("output")) / item["subfolder"] / item["filename"]
    return mp4, item


def evil_manifest(template: dict, video_sha: str, extra_paths: list[str], secrets: Path, stem: str = "evil") -> dict:
    """A RenderManifest (valid, so it loads) whose outputs name secrets, system files and files beside the render, plus the video. The
    attacker records each file's true sha256 where it can be known (well-known files, guessed content), so
    only the confinement to the render's folder stops them — also files named like the video with an
    extension AdReel uploads."""
    m = copy.deepcopy(template)
    for name in (f"{stem}.jpg", f"{stem}_1x1.mp4"):
        (secrets / name).write_text(FILE_CANARY)
    paths = ["/etc/passwd", "/etc/hostname", str(secrets / ".aws" / "credentials"),
             "../../../.config/adreel/storage.json", str(secrets / ".config" / "adreel" / "storage.json"),
             "~/.aws/credentials", str(secrets / f"{stem}.jpg"), str(secrets / f"{stem}_1x1.mp4"), *extra_paths]
    outputs = [{"kind": "video", "path": f"{stem}.mp4", "bytes": 1, "sha256": video_sha}]
    for p in paths:
        real = Path(os.path.expanduser(p))
        known = real.is_absolute() and real.is_file() and os.access(real, os.R_OK)
        outputs.append({"kind": "thumbnail", "path": p, "bytes": real.stat().st_size if known else 1,
                        "sha256": sha(real.read_bytes()) if known else "0" * 64})
    m["outputs"] = outputs
    return m


@pytest.fixture(scope="module")
def victim(sec):
    """A normal user's render + upload, before the attacks on it."""
    prompt = upload_prompt(seed=21)
    result = sec.comfy.run(prompt)
    mp4, item = render_folder(sec.comfy, prompt, result)
    info = upload_info(result, node_by_type(prompt, "AssetUpload")[0])
    assert info["status"] == "uploaded", info
    served = view(comfy := sec.comfy, mp4.with_suffix(".json").name, item["subfolder"], "output")
    assert served.status_code == 200 and comfy.alive()
    return {"prompt": prompt, "mp4": mp4, "item": item, "info": info, "manifest_text": served.text,
            "data": mp4.read_bytes(), "history": bucket(sec.s3)[f"history/{info['run']}.json"]["body"]}


def still_serves(sec: Sec) -> None:
    assert sec.comfy.alive(), sec.comfy.log_tail()


# ------------------------------------------------------------------ a forged manifest
def test_an_uploaded_manifest_cannot_push_local_files_into_the_bucket(sec, victim, tmp_path):
    """input/evil.mp4 + input/evil.json naming /etc/passwd, ~/.aws/credentials, ../../../.config/adreel/…,
    an .html and an .svg page; then LoadVideo(evil.mp4) → AssetUpload."""
    data = small_mp4(tmp_path / "evil.mp4")
    plant(sec.comfy, "evil.html", b"<html><script>alert(document.cookie)</script></html>")
    plant(sec.comfy, "evil.svg", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>")
    plant(sec.comfy, "evil.mp4", data)
    base_manifest = json.loads(victim["manifest_text"])  # any render's manifest, read through /view
    manifest = evil_manifest(base_manifest, sha(data), ["evil.html", "evil.svg"], sec.secrets)
    plant(sec.comfy, "evil.json", json.dumps(manifest).encode())
    before = set(bucket(sec.s3))

    result = sec.comfy.run(load_video_upload("evil.mp4"))
    info = upload_info(result)
    assert info["status"] == "uploaded", info
    objs = assert_bucket_clean(sec.s3)
    new = set(objs) - before
    # the attacker's own video, its (rewritten) manifest and history record, and nothing else
    assert {k.rsplit(".", 1)[-1] for k in new} <= {"mp4", "json"}, new
    assert [k for k in new if k.endswith(".mp4")] and all(objs[k]["body"] == data for k in new if k.endswith(".mp4"))
    assert any("not this render's" in n for n in info["notes"]), info
    hist = json.dumps(sec.comfy.get_json("/history"))
    assert "root:x:0:0" not in hist and FILE_CANARY not in hist and CANARY not in hist
    # what anyone can read back through /view: no presigned URL, no server path
    served = view(sec.comfy, "evil.json", "", "input").text
    assert "X-Amz-" not in served and sec.comfy.base not in served
    still_serves(sec)


def test_hijack_and_overwrite_of_a_victims_manifest(sec, victim):
    """output/AdReel/<victim>.a.json beside the ad, and overwrite=true on the legit <victim>.json, naming
    local secrets and a page planted in the same folder; then the victim re-queues."""
    mp4, item = victim["mp4"], victim["item"]
    stem, sub = mp4.stem, item["subfolder"]
    plant(sec.comfy, f"{stem}.html", b"<script>alert(1)</script>", type_="output", subfolder=sub)
    legit = json.loads(view(sec.comfy, f"{stem}.json", sub, "output").text)  # the attacker reads it first
    evil = evil_manifest(legit, sha(victim["data"]), [f"{stem}.html", str(Path(sec.comfy.base) / "comfyui.log")],
                         sec.secrets, stem=stem)
    plant(sec.comfy, f"{stem}.a.json", json.dumps(evil).encode(), type_="output", subfolder=sub)
    plant(sec.comfy, f"{stem}.json", json.dumps(evil).encode(), type_="output", subfolder=sub, overwrite=True)
    assert "passwd" in (mp4.with_suffix(".json")).read_text()  # the overwrite took
    before = set(bucket(sec.s3))

    # the victim's ad uploaded again by its path (what a re-queue on the cached render does)
    again = frames_upload("{brand}/{date}/{run}/")
    again["9"] = {"class_type": "PrimitiveString", "inputs": {"value": f"{sub}/{mp4.name}"}}
    again["3"]["inputs"]["path"] = ["9", 0]
    result = sec.comfy.run(again)
    info = upload_info(result, "3")
    assert info["status"] == "uploaded" and info["video"] == f"output/{sub}/{mp4.name}", info
    objs = assert_bucket_clean(sec.s3)
    for key in set(objs) - before:
        assert key.endswith(".json") and not key.startswith("history/"), key  # at most the rewritten manifest
    assert not any(k.endswith((".html", ".log")) for k in objs)
    assert any("not this render's" in n for n in info["notes"]), info

    # and the victim's own re-queue still renders and uploads normally
    result = sec.comfy.run(victim["prompt"])
    info = upload_info(result, node_by_type(victim["prompt"], "AssetUpload")[0])
    assert info["status"] == "uploaded", info
    assert_bucket_clean(sec.s3)
    still_serves(sec)


# ------------------------------------------------------------------ history records
def test_reserved_prefixes_and_a_forged_rerun_cannot_rewrite_history(sec, victim, tmp_path):
    # a workflow cannot write under history/ or key-images/: refused at /prompt, nothing runs
    for pattern in ("history/", "key-images/{run}/"):
        with pytest.raises(PromptError) as err:
            sec.comfy.queue(frames_upload(pattern))
        assert "prefix_pattern" in str(err.value) and "reserves" in str(err.value), err.value
    # the victim's exact MP4 bytes (downloaded through /view) re-uploaded with a forged manifest
    data = view(sec.comfy, victim["item"]["filename"], victim["item"]["subfolder"], "output").content
    assert data == victim["data"]
    plant(sec.comfy, "forged.mp4", data)
    forged = json.loads(victim["manifest_text"])
    forged["brief"]["brand"] = forged["storyboard"]["brief"]["brand"] = "Evil Corp"
    forged["outputs"] = [{"kind": "video", "path": "forged.mp4", "bytes": len(data), "sha256": sha(data)}]
    plant(sec.comfy, "forged.json", json.dumps(forged).encode())
    result = sec.comfy.run(load_video_upload("forged.mp4", prefix="evil/{run}/"))
    info = upload_info(result)
    assert info["run"] == victim["info"]["run"]
    assert any("already exists" in n for n in info["notes"]), info
    assert bucket(sec.s3)[f"history/{info['run']}.json"]["body"] == victim["history"]  # unchanged, byte for byte
    assert b"Evil Corp" not in victim["history"]
    still_serves(sec)


# ------------------------------------------------------------------ what a network user sees
def test_what_a_network_user_sees_of_an_upload(sec, victim):
    base = sec.comfy.base
    # the manifest as /view served it right after the upload: object locations, never a presigned URL
    # or an absolute server path
    text = victim["manifest_text"]
    assert "X-Amz-" not in text and base not in text, text[:500]
    m = json.loads(text)
    video = next(o for o in m["outputs"] if o["sha256"] == sha(victim["data"]))
    assert video["url"].startswith(f"s3://{BUCKET}/") and not Path(video["path"]).is_absolute()
    assert all(not Path(o["path"]).is_absolute() for o in m["outputs"])
    # the node's UI (what /history gives every client): the presigned URL the operator asked for, no paths
    info = victim["info"]
    assert "X-Amz-Signature=" in info["url"] and base not in json.dumps(info)
    assert info["video"].startswith("output/") and all(not Path(f["local"]).is_absolute() for f in info["files"])
    hist = sec.comfy.get_json("/history")
    for entry in hist.values():
        for node_out in entry.get("outputs", {}).values():
            if "adreel_upload" in node_out:
                assert base not in json.dumps(node_out), node_out
    # the stored manifest: no absolute path either
    stored = bucket(sec.s3)[info["manifest_key"]]["body"].decode()
    assert base not in stored and "X-Amz-" not in stored


# ------------------------------------------------------------------ retention and the spool
def _backdate_spool(spool: Path, days: float = 10) -> None:
    past = time.time() - days * 86400
    for entry in list_spooled(spool):
        entry.created = "2020-01-01T00:00:00+00:00"
        entry.save()
    for p in spool.rglob("*"):
        os.utime(p, (past, past), follow_symlinks=False)


def spooled_copies(spool: Path) -> list[Path]:
    return [p for p in spool.rglob("*") if p.is_file() and not p.name.startswith(".")
            and not p.name.startswith(DB_NAME)]


def retention_passes(sec: Sec, passes: int, timeout: float = 120) -> None:
    """Wait until the background's retention has run ``passes`` more times over the spool (its log says
    each time what it kept waiting for the store)."""
    def seen() -> int:
        return sec.comfy.log_text().count("wait for upload and are kept")
    start, deadline = seen(), time.monotonic() + timeout
    while seen() < start + passes:
        assert time.monotonic() < deadline, f"no {passes} retention passes in {timeout:g} s:\n{sec.comfy.log_tail()}"
        time.sleep(0.2)


def test_retention_never_deletes_what_waits_for_the_store(sec):
    """ADREEL_RETENTION_HOURS=24 and the store down for ten days (the spool backdated): nothing spooled goes;
    when the store is back the background retry uploads it, once."""
    sec.s3.stop()
    try:
        prompt = upload_prompt(seed=31)
        result = sec.comfy.run(prompt)
        mp4, _ = render_folder(sec.comfy, prompt, result)
        info = upload_info(result, node_by_type(prompt, "AssetUpload")[0])
        assert info["status"] == "spooled", info
        data = mp4.read_bytes()
        copies = {p: p.read_bytes() for p in spooled_copies(sec.spool)}
        assert any(b == data for b in copies.values())
        _backdate_spool(sec.spool)
        # a Brief's cached logo in temp/adreel_inputs, ten days old: ComfyUI's cache still points at it
        plant(sec.comfy, "logo_0123456789ab.png", b"\x89PNG cached logo", type_="temp", subfolder="adreel_inputs")
        logo = Path(sec.comfy.folder("temp")) / "adreel_inputs" / "logo_0123456789ab.png"
        past = time.time() - 10 * 86400
        os.utime(logo, (past, past))
        retention_passes(sec, 3)  # three retry + retention cycles over the backdated spool
        for p, b in copies.items():
            assert p.is_file() and p.read_bytes() == b, f"{p} was removed before it was uploaded"
        assert logo.read_bytes() == b"\x89PNG cached logo"  # never cleaned by AdReel
    finally:
        sec.s3.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and spooled_copies(sec.spool):
        time.sleep(1)
    assert not spooled_copies(sec.spool), sec.comfy.log_tail()
    mp4s = [k for k, o in bucket(sec.s3).items() if k.endswith(".mp4") and o["body"] == data]
    assert len(mp4s) == 1, mp4s
    still_serves(sec)


def test_a_spool_in_comfyuis_output_is_refused_and_nothing_there_is_touched(sec, tmp_path):
    """ADREEL_SPOOL_DIR pointed at ComfyUI's output folder (holding a user's files) and retention 0."""
    base = tmp_path / "comfy-misconfigured"
    output = base / "output"
    output.mkdir(parents=True)
    precious = output / "holiday.mp4"
    precious.write_bytes(b"a user's own file")
    past = time.time() - 400 * 86400
    os.utime(precious, (past, past))
    env = {**sec.env, "ADREEL_SPOOL_DIR": str(output), "ADREEL_RETENTION_HOURS": "0"}
    server = ComfyServer(base_dir=str(base), env=env)
    try:
        server.start()
        with pytest.raises(PromptError) as err:
            server.run(frames_upload("clips/{run}/"))
        message = str(err.value)
        assert "ADREEL_SPOOL_DIR" in message and "ComfyUI" in message, message
        # retention 0 is refused when the server starts (retention stays off): nothing there is ever cleaned
        assert "ADREEL_RETENTION_HOURS must be" in server.log_text()
        assert precious.read_bytes() == b"a user's own file"
        assert not (output / ".adreel-spool").exists()
        assert CANARY not in message and CANARY not in server.log_text()
        assert server.alive()
    finally:
        server.stop()


# ------------------------------------------------------------------ a crash mid-upload
def test_kill_9_during_an_upload_is_finished_after_the_restart(sec):
    """The store hangs (SIGSTOP), ComfyUI is killed with SIGKILL while AssetUpload waits on it, the store
    comes back, ComfyUI restarts: the write-ahead records make the background retry finish the upload —
    with no prompt queued — exactly once."""
    prompt = frames_upload("killed/{run}/", color=0xCC3366, frames=24)
    assert not list_spooled(sec.spool)
    os.killpg(sec.s3.proc.pid, signal.SIGSTOP)
    try:
        sec.comfy.queue(prompt)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list_spooled(sec.spool):
            time.sleep(0.2)
        records = list_spooled(sec.spool)
        assert records, sec.comfy.log_tail()
        assert all(e.state == "intent" for e in records)
        os.killpg(sec.comfy.proc.pid, signal.SIGKILL)
        sec.comfy.proc.wait(30)
    finally:
        os.killpg(sec.s3.proc.pid, signal.SIGCONT)
    encoded = sorted((Path(sec.comfy.folder("output")) / "AdReel").glob("upload_*.mp4"), key=os.path.getmtime)[-1]
    data = encoded.read_bytes()
    sec.comfy = ComfyServer(base_dir=sec.comfy.base, env=sec.env)  # a fresh process on the same folders
    sec.comfy.start()
    deadline = time.monotonic() + 180
    found: list = []
    history: list = []
    while time.monotonic() < deadline:  # the upload, its history record, an empty spool: in whatever order
        try:
            objects = bucket(sec.s3)
            found = [k for k, o in objects.items() if k.startswith("killed/") and o["body"] == data]
            history = [k for k in objects if k.startswith("history/")]
        except Exception:  # noqa: BLE001 - the store settling after SIGCONT
            found, history = [], []
        if found and not list_spooled(sec.spool) and any(found[0].split("/")[1] in k for k in history):
            break
        time.sleep(1)
    assert len(found) == 1, (found, sec.comfy.log_tail())
    assert not list_spooled(sec.spool)
    assert any(found[0].split("/")[1] in k for k in history), history
    still_serves(sec)


# ------------------------------------------------------------------ the canary, last
def test_the_storage_secret_appears_nowhere(sec, victim):
    """After every attack above: the canary secret is in no object, no history entry, no file ComfyUI wrote
    or was given, no spool record, no log line — and a normal render + upload still works."""
    prompt = upload_prompt(seed=41)
    result = sec.comfy.run(prompt)
    info = upload_info(result, node_by_type(prompt, "AssetUpload")[0])
    assert info["status"] == "uploaded", info
    assert requests.get(info["url"], timeout=30).status_code == 200
    for key, o in bucket(sec.s3).items():
        assert CANARY.encode() not in o["body"], key
        assert FILE_CANARY.encode() not in o["body"], key
    hist = json.dumps(sec.comfy.get_json("/history"))
    assert "adreel_upload" in hist and CANARY not in hist
    for folder in ("output", "input", "temp"):
        for p in Path(sec.comfy.folder(folder)).rglob("*"):
            if p.is_file():
                assert CANARY.encode() not in p.read_bytes(), p
    for p in sec.spool.rglob("*"):
        if p.is_file():
            assert CANARY.encode() not in p.read_bytes(), p
    log = Path(sec.comfy.log_path).read_text(errors="replace")  # (both processes log to this file)
    assert "AssetUpload" in log and CANARY not in log
