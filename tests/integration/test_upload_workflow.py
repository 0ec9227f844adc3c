"""The shipped upload workflow (brief → ad → AssetUpload) in a real ComfyUI against a real SeaweedFS.

A second ComfyUI server is started for this module, with the storage settings
in its environment (the session ``comfy`` server has none). What the bucket
holds is read back through boto3 and plain HTTP; the local files are the ones
ComfyUI wrote to its output folder.
"""
from __future__ import annotations

import copy
import glob
import hashlib
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from botocore.exceptions import BotoCoreError, ClientError

from fakes.seaweedfs import SECRET_KEY, SeaweedFS
from harness import ComfyServer, PromptError, PromptResult, load_api_workflow, node_by_type

pytestmark = [pytest.mark.comfy, pytest.mark.timeout(900)]

BUCKET = "adreel-ads"
RETRY_SECONDS = 2
CONTENT_TYPES = {".mp4": "video/mp4", ".webm": "video/webm", ".mov": "video/quicktime", ".jpg": "image/jpeg",
                 ".png": "image/png", ".srt": "application/x-subrip", ".vtt": "text/vtt",
                 ".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t"}
# settings a developer's shell may hold: blanked (= unset for AdReel) so that only the MINIO_* variables apply
HERMETIC = {name: "" for name in (
    "ADREEL_S3_BUCKET", "ADREEL_S3_PREFIX", "ADREEL_S3_URL_MODE", "ADREEL_S3_URL_EXPIRY", "ADREEL_S3_PUBLIC_BASE_URL",
    "MINIO_SECURE")}


@dataclass
class Stack:
    s3: SeaweedFS
    comfy: ComfyServer
    spool: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("upload")
    s3 = SeaweedFS(base / "s3")
    s3.start()
    s3.create_bucket(BUCKET)
    spool = base / "spool"
    env = {**HERMETIC, **s3.env(BUCKET), "ADREEL_SPOOL_DIR": str(spool),
           "ADREEL_STORAGE_CONFIG": str(base / "no-config-file.json"),
           "ADREEL_SPOOL_RETRY_SECONDS": str(RETRY_SECONDS)}
    server = ComfyServer(env=env)
    try:
        server.start()
        yield Stack(s3, server, spool)
    finally:
        server.cleanup()
        s3.stop()


def upload_prompt(seed: int) -> dict:
    """The shipped workflow, short and fast: 6 s at 720p 1:1, 24 fps, ultrafast, plus HLS; ``seed`` picks the
    script."""
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad_upload.json"))
    node_by_type(prompt, "BrandBrief")[1]["inputs"].update(duration_seconds=6.0, aspect_ratio="1:1")
    node_by_type(prompt, "ScriptLLM")[1]["inputs"]["seed"] = seed
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"].update(resolution="720p", fps="24")
    assemble = node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]
    assemble["preset"] = "ultrafast"
    assemble["hls"] = True  # companions: the HLS playlist + segments (cut from the MP4), beside the thumbnail
    return prompt


def upload_ui(prompt: dict, result: PromptResult) -> tuple[str, dict]:
    """(the text shown on the AssetUpload node, the node's structured result) from /history."""
    node_id, _ = node_by_type(prompt, "AssetUpload")
    out = result.ui(node_id)
    assert out.get("text") and out.get("adreel_upload"), out
    return out["text"][0], out["adreel_upload"][0]


def on_server(comfy: ComfyServer, shown: str) -> Path:
    """The file behind a path the node shows (``output/AdReel/ad_00001_.mp4``: relative to ComfyUI's folders)."""
    folder, _, rel = shown.partition("/")
    assert folder in ("output", "input", "temp") and rel and not Path(shown).is_absolute(), shown
    return Path(comfy.folder(folder)) / rel


def rendered_mp4(comfy: ComfyServer, prompt: dict, result: PromptResult) -> Path:
    node_id, _ = node_by_type(prompt, "FFmpegAssemble")
    (item,) = result.ui(node_id)["images"]
    path = Path(comfy.folder("output")) / item["subfolder"] / item["filename"]
    assert path.is_file()
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def objects(s3: SeaweedFS, suffix: str = "") -> list[dict]:
    return [o for o in s3.list_keys(BUCKET) if o["Key"].endswith(suffix)]


def get(s3: SeaweedFS, key: str) -> dict:
    return s3.client().get_object(Bucket=BUCKET, Key=key)


def mp4_objects_matching(s3: SeaweedFS, data: bytes) -> list[str]:
    """Keys of the MP4 objects whose bytes are exactly ``data``."""
    want = sha256(data)
    return [o["Key"] for o in objects(s3, ".mp4") if sha256(get(s3, o["Key"])["Body"].read()) == want]


def the_output(manifest: dict, data: bytes) -> dict:
    """The manifest's entry for the file whose bytes are ``data``."""
    (out,) = [o for o in manifest["outputs"] if o["sha256"] == sha256(data)]
    return out


def spooled_copies(spool: Path) -> list[Path]:
    return [p for p in spool.rglob("*") if p.is_file() and p.name not in (".lock", ".adreel-spool")
            and not p.name.startswith("spool.sqlite3")]  # (the spool's table of records)


@pytest.fixture(scope="module")
def first_run(stack):
    """One render + upload of the shipped workflow (every test that needs it gets it, run alone or not)."""
    prompt = upload_prompt(seed=7)
    result = stack.comfy.run(prompt)
    local = rendered_mp4(stack.comfy, prompt, result)
    text, info = upload_ui(prompt, result)
    return {"prompt": prompt, "result": result, "local": local, "text": text, "info": info}


# the sidecars every render of upload_prompt writes beside the MP4 (fixed, not derived from the upload rule)
SIDECARS = (".jpg", ".srt", ".vtt")


# ------------------------------------------------------------------ tests
def test_upload_workflow_puts_the_ad_and_its_manifest_in_the_store(stack, first_run):
    local, text, info = first_run["local"], first_run["text"], first_run["info"]
    assert text.startswith("Uploaded") and info["status"] == "uploaded", text
    data = local.read_bytes()

    # the MP4 is in the bucket, byte for byte, with its content type, under brand/date/run
    keys = mp4_objects_matching(stack.s3, data)
    assert len(keys) == 1, [o["Key"] for o in objects(stack.s3)]
    key = keys[0]
    assert key.startswith("acme/") and key.endswith(".mp4"), key
    obj = get(stack.s3, key)
    assert obj["ContentType"] == "video/mp4"
    assert obj["ContentLength"] == len(data)

    # the presigned URL the node hands out downloads the same bytes, without credentials
    url = info["url"]
    assert url.startswith(stack.s3.endpoint) and "X-Amz-Signature=" in url and SECRET_KEY not in url
    assert text.splitlines()[1] == f"video: {url}"
    got = requests.get(url, timeout=30)
    assert got.status_code == 200 and got.content == data
    assert got.headers["Content-Type"] == "video/mp4"
    assert requests.get(url.split("?")[0], timeout=30).status_code in (401, 403)  # not public without signature

    # the manifest went up beside it; it and the local one name the video's object (s3://bucket/key) — a
    # presigned URL is never written into a file that ComfyUI's /view serves to anyone
    local_manifest = json.loads(local.with_suffix(".json").read_text(encoding="utf-8"))
    assert the_output(local_manifest, data)["url"] == f"s3://{BUCKET}/{key}"
    folder = key.rsplit("/", 1)[0] + "/"
    manifests = [o["Key"] for o in objects(stack.s3, ".json") if o["Key"].startswith(folder)]
    assert len(manifests) == 1, manifests
    stored = get(stack.s3, manifests[0])
    assert stored["ContentType"] == "application/json"
    remote_manifest = json.loads(stored["Body"].read())
    assert the_output(remote_manifest, data)["url"] == f"s3://{BUCKET}/{key}"
    assert remote_manifest["brief"]["brand"] == "Acme"

    # the sidecars the render wrote (a fixed set, and the HLS rendition) are there too, byte for byte
    stored_by_sha = {}
    for o in objects(stack.s3):
        if o["Key"].startswith(folder):
            obj = get(stack.s3, o["Key"])
            stored_by_sha[sha256(obj["Body"].read())] = (o["Key"], obj["ContentType"])
    sidecars = [local.with_suffix(ext) for ext in SIDECARS]
    assert all(p.is_file() for p in sidecars), sidecars
    hls = sorted((local.parent / f"{local.stem}_hls").iterdir())  # asked for by upload_prompt
    assert any(p.suffix == ".m3u8" for p in hls) and any(p.suffix == ".ts" for p in hls), hls
    for p in sidecars + hls:
        key_ct = stored_by_sha.get(sha256(p.read_bytes()))
        assert key_ct, f"{p.name} is not in the store"
        assert key_ct[1].split(";")[0] == CONTENT_TYPES[p.suffix], (p.name, key_ct)
    playlist_key = next(k for k, _ in stored_by_sha.values() if k.endswith(".m3u8"))
    assert all(k.startswith(playlist_key.rsplit("/", 1)[0] + "/") for k, _ in stored_by_sha.values()
               if k.endswith(".ts"))  # segments beside their playlist, names kept: the playlist still works

    # a history record names the run
    history = [o["Key"] for o in objects(stack.s3) if o["Key"].startswith("history/")]
    assert any(info["run"] in k for k in history), history


def test_a_video_from_any_node_is_encoded_then_uploaded(stack):
    """A native VIDEO made of frames (core CreateVideo) has no file: the node encodes it, then uploads it."""
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 24, "color": 0x3366CC}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 12.0}},
        "3": {"class_type": "AssetUpload", "inputs": {"video": ["2", 0], "prefix_pattern": "clips/{run}/",
                                                       "url_mode": "presigned", "url_expiry_hours": 1.0}},
    }
    result = stack.comfy.run(prompt)
    text, info = upload_ui(prompt, result)
    assert info["status"] == "uploaded", text
    local = on_server(stack.comfy, info["video"])
    assert local.is_file() and local.parent == Path(stack.comfy.folder("output")) / "AdReel"
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json",
                                       str(local)], capture_output=True, text=True, check=True).stdout)
    (v,) = probe["streams"]
    assert (v["width"], v["height"], int(v["nb_read_frames"])) == (64, 48, 24)
    data = local.read_bytes()
    (key,) = mp4_objects_matching(stack.s3, data)
    assert key.startswith(f"clips/{info['run']}/")
    assert "X-Amz-Expires=3600" in info["url"]
    assert requests.get(info["url"], timeout=30).content == data


def test_store_down_spools_then_the_background_retry_uploads_it_once(stack):
    stack.s3.stop()
    try:
        prompt = upload_prompt(seed=11)  # another script: a new video
        result = stack.comfy.run(prompt)  # does not raise: the prompt succeeds
        local = rendered_mp4(stack.comfy, prompt, result)
        text, info = upload_ui(prompt, result)
        assert text.startswith("Spooled"), text
        assert info["status"] == "spooled" and info["reason_code"] == "unreachable", info
        assert "why:" in text and "background retry" in text
        # the node names the local file relative to ComfyUI's output folder (no absolute server path)
        assert on_server(stack.comfy, info["url"]) == local and f"local: {info['url']}" in text
        assert stack.comfy.base not in json.dumps(info) and stack.comfy.base not in text
        # the video waits in the spool, byte for byte; the original stays where it was
        data = local.read_bytes()
        copies = spooled_copies(stack.spool)
        assert any(p.read_bytes() == data for p in copies), copies
        assert any(p.suffix == ".json" for p in copies)  # its manifest too
        assert local.is_file()
    finally:
        stack.s3.start()  # same ports, same data
    deadline = time.monotonic() + 120
    keys: list[str] = []
    while time.monotonic() < deadline:  # nothing is queued: only the background thread can upload it
        try:
            keys = mp4_objects_matching(stack.s3, data)
        except (BotoCoreError, ClientError):  # SeaweedFS answers 500 for a moment while its volumes come back
            keys = []
        if keys and not spooled_copies(stack.spool):
            break
        time.sleep(1)
    assert len(keys) == 1, f"spooled video not uploaded once: {keys}\n{stack.comfy.log_tail()}"
    assert not spooled_copies(stack.spool), spooled_copies(stack.spool)
    obj = get(stack.s3, keys[0])
    assert obj["ContentType"] == "video/mp4"

    # the manifest followed, naming the video's object; the local manifest got it as well
    folder = keys[0].rsplit("/", 1)[0] + "/"
    manifests = [o["Key"] for o in objects(stack.s3, ".json") if o["Key"].startswith(folder)]
    assert len(manifests) == 1, manifests
    remote_manifest = json.loads(get(stack.s3, manifests[0])["Body"].read())
    assert the_output(remote_manifest, data)["url"] == f"s3://{BUCKET}/{keys[0]}"
    local_manifest = json.loads(local.with_suffix(".json").read_text(encoding="utf-8"))
    assert the_output(local_manifest, data)["url"] == f"s3://{BUCKET}/{keys[0]}"

    # the next run of the same graph finds it there: no second object, a working URL
    result = stack.comfy.run(prompt)
    text, info = upload_ui(prompt, result)
    assert info["status"] == "uploaded" and "already there" in text, text
    assert requests.get(info["url"], timeout=30).content == data
    assert mp4_objects_matching(stack.s3, data) == keys
    # every MP4 this server wrote is in the store exactly once
    local_mp4s = sorted(Path(stack.comfy.folder("output")).rglob("*.mp4"))
    stored = sorted(sha256(get(stack.s3, o["Key"])["Body"].read()) for o in objects(stack.s3, ".mp4"))
    assert len(stored) == len(set(stored)), "the same video stored twice"
    # (a re-render can save identical bytes under a new counter: that is the same object)
    assert {sha256(p.read_bytes()) for p in local_mp4s} <= set(stored), local_mp4s


def test_wrong_secret_is_a_clear_error_and_the_files_wait_in_the_spool(stack):
    """The secret key in ComfyUI's environment no longer matches the store's (the operator rotated it on the
    store side): a clear error, nothing stored, the files wait in the spool, neither secret shown anywhere.
    The store is restarted with another secret rather than a second ComfyUI started with a wrong one: what
    the node meets is the same refusal from the same server."""
    held, rotated = stack.s3.secret_key, "rotated-secret-Hq3nR8vT2yLp6mXc"
    output = Path(stack.comfy.folder("output"))
    before = set(output.rglob("*.mp4"))
    restart_store(stack.s3, rotated)  # same ports, same data: only the identity the store accepts changes
    try:
        prompt = upload_prompt(seed=13)
        with pytest.raises(PromptError) as err:
            stack.comfy.run(prompt)
        message = str(err.value)
        assert "AssetUpload" in message and "secret key does not match" in message, message
        assert "spool" in message, message
        # nothing reached the store; the ad is on disk and waits in the spool
        (mp4,) = set(output.rglob("*.mp4")) - before
        assert not mp4_objects_matching(stack.s3, mp4.read_bytes())
        assert any(p.read_bytes() == mp4.read_bytes() for p in spooled_copies(stack.spool))
        history = json.dumps(stack.comfy.get_json("/history"))
        log = stack.comfy.log_text()
        for secret in (held, rotated):
            assert secret not in message and secret not in history and secret not in log
            for p in stack.spool.rglob("*"):
                assert not p.is_file() or secret.encode() not in p.read_bytes(), p
    finally:
        restart_store(stack.s3, held)


def restart_store(s3: SeaweedFS, secret: str) -> None:
    """The store again on the same ports and data, accepting ``secret``; back once it takes a write and
    serves a byte of every object it held (its volumes answer 500 for a moment after a start, and the
    volume that holds the old objects may join after the one that takes the new write)."""
    s3.stop()
    s3.secret_key = secret
    s3.start()
    client, deadline = s3.client(), time.monotonic() + 60
    while True:
        try:
            client.put_object(Bucket=BUCKET, Key="probe/ready", Body=b"")
            client.delete_object(Bucket=BUCKET, Key="probe/ready")
            for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
                if o["Size"]:
                    client.get_object(Bucket=BUCKET, Key=o["Key"], Range="bytes=0-0")["Body"].read()
            return
        except (BotoCoreError, ClientError):
            assert time.monotonic() < deadline, "the store took no write or served no read 60 s after its restart"
            time.sleep(0.2)


def test_the_secret_key_appears_nowhere(stack, first_run):
    secret = SECRET_KEY
    # the node has no credential widgets
    schema = stack.comfy.get_json("/object_info/AssetUpload")["AssetUpload"]
    names = set(schema["input"]["required"]) | set(schema["input"].get("optional", {}))
    assert names == {"video", "prefix_pattern", "url_mode", "url_expiry_hours", "path"}
    # ComfyUI's history (prompts, outputs, the node's text)
    history = json.dumps(stack.comfy.get_json("/history"))
    assert "adreel_upload" in history and secret not in history
    # every file ComfyUI wrote: raw bytes, and the container's metadata tags
    outputs = [p for p in glob.glob(os.path.join(stack.comfy.folder("output"), "**", "*"), recursive=True)
               if os.path.isfile(p)]
    assert any(p.endswith(".mp4") for p in outputs) and any(p.endswith(".json") for p in outputs)
    for p in outputs:
        assert secret.encode() not in Path(p).read_bytes(), p
        if p.endswith(".mp4"):
            tags = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", p],
                                  capture_output=True, text=True, check=True).stdout
            assert secret not in tags, p
    # the manifests in the store, and everything else there
    for o in objects(stack.s3):
        assert secret.encode() not in get(stack.s3, o["Key"])["Body"].read(), o["Key"]
    # the spool's records
    for p in stack.spool.rglob("*"):
        if p.is_file():
            assert secret.encode() not in p.read_bytes(), p
    # ComfyUI's log (which recorded the upload)
    log = stack.comfy.log_text()
    assert "AssetUpload" in log and secret not in log
