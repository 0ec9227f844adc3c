"""The storage engine against a real SeaweedFS S3 server on 127.0.0.1.

Media are made with ffmpeg; what the store holds is read back through boto3
(HEAD / GET / list) and through plain HTTP with ``requests`` — never from what
the engine says about itself.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from nodes.engine.models import Brief, OutputFile, RenderManifest, Storyboard, StoryboardScene
from nodes.engine.storage import (
    S3Store,
    StorageConfigError,
    StorageCredentialsError,
    StorageNotConfigured,
    clean_retention,
    content_type_for,
    list_spooled,
    load_manifest,
    load_storage_config,
    render_prefix,
    retry_spooled,
    start_retry_thread,
    update_manifest_urls,
    upload_ad,
)
from nodes.engine.models import AdReelInputError
from nodes.engine.storage.spool import DB_NAME, LOCK_NAME, SPOOL_MARKER, SpoolEntry, spool_file
from fakes.seaweedfs import ACCESS_KEY, PUBLIC_BUCKET, SECRET_KEY, SeaweedFS

pytestmark = pytest.mark.timeout(120)
MIB = 1024 * 1024


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    server.create_bucket(PUBLIC_BUCKET)
    yield server
    server.stop()


@pytest.fixture
def bucket(s3):
    name = f"t-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(name)
    return name


@pytest.fixture(scope="module")
def media_src(tmp_path_factory):
    """A real 2 s 320x568 H.264/AAC MP4, a JPEG thumbnail from it, SRT and VTT subtitles, an HLS rendition."""
    d = tmp_path_factory.mktemp("media")
    run = lambda *a: subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *a], check=True, cwd=d)
    run("-f", "lavfi", "-i", "testsrc2=s=320x568:d=2", "-f", "lavfi", "-i", "sine", "-shortest",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "ad_9x16.mp4")
    run("-i", "ad_9x16.mp4", "-frames:v", "1", "-q:v", "3", "ad_9x16.jpg")
    hls = d / "hls"
    hls.mkdir()
    run("-i", "ad_9x16.mp4", "-c:v", "libx264", "-g", "25", "-keyint_min", "25", "-c:a", "aac", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
        "-hls_segment_filename", str(hls / "seg_%03d.ts"), str(hls / "ad.m3u8"))
    (d / "ad_9x16.srt").write_text("1\n00:00:00,000 --> 00:00:01,500\nAcme: 50% off — 지금 구매 🎉\n", encoding="utf-8")
    (d / "ad_9x16.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nAcme: 50% off — 지금 구매 🎉\n", encoding="utf-8")
    return d


def make_manifest(folder: Path, files: list[Path], *, brand="Acme Co", costs=0.42, name="ad_9x16.manifest.json") -> Path:
    brief = Brief(brand=brand, product="Rocket Shoes", cta="Buy now", duration_seconds=2, aspect_ratio="9:16")
    scene = StoryboardScene(index=0, segment="hook", start=0, duration=2, start_frame=0, frame_count=60)
    sb = Storyboard(brief=brief, title=f"{brand} launch", language="en", width=320, height=568, fps=30,
                    total_duration=2, total_frames=60, scenes=[scene])
    kinds = {".mp4": "video", ".jpg": "thumbnail", ".srt": "subtitles", ".vtt": "subtitles", ".m3u8": "hls"}
    outputs = [OutputFile(kind=kinds.get(f.suffix, "file"), path=str(f), bytes=f.stat().st_size, sha256=sha256(f)) for f in files]
    m = RenderManifest(brief=brief, storyboard=sb, costs_usd=costs, outputs=outputs, models=["template"])
    path = folder / name
    path.write_text(m.model_dump_json(indent=2), encoding="utf-8")
    return path


@pytest.fixture
def media(media_src, tmp_path):
    """A fresh copy per test (the manifest is updated in place)."""
    d = tmp_path / "out"
    shutil.copytree(media_src, d)
    files = [d / "ad_9x16.mp4", d / "ad_9x16.jpg", d / "ad_9x16.srt", d / "ad_9x16.vtt"]
    manifest = make_manifest(d, files)
    return {"dir": d, "video": files[0], "extras": files[1:], "manifest": manifest, "files": files}


def config_for(s3: SeaweedFS, bucket: str, tmp_path: Path, env_extra=None, **file_values):
    """Resolve a config the way a user's machine would: MinIO-style env + a JSON config file."""
    cfg_file = tmp_path / "storage.json"
    file_values.setdefault("spool_dir", str(tmp_path / "spool"))
    cfg_file.write_text(json.dumps(file_values), encoding="utf-8")
    env = {**s3.env(bucket), **(env_extra or {})}
    return load_storage_config(environ=env, config_path=cfg_file)


def spool_files_on_disk(spool: Path) -> list[Path]:
    if not spool.exists():
        return []
    return [p for p in spool.rglob("*") if p.is_file() and p.name not in (SPOOL_MARKER, LOCK_NAME)
            and not p.name.startswith(DB_NAME)]  # the spool's table: list_spooled tells what it holds


# ---------------------------------------------------------------- uploads
def test_upload_ad_with_companions_content_types_and_manifest_urls(s3, bucket, media, tmp_path):
    cfg = config_for(s3, bucket, tmp_path)
    result = upload_ad(media["video"], media["extras"], manifest_path=media["manifest"],
                       config=cfg.with_choices(prefix_pattern="{brand}/{date}/{run}/"))
    assert result.status == "uploaded", result.reason
    client = s3.client()
    expected_types = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".srt": "application/x-subrip; charset=utf-8",
                      ".vtt": "text/vtt; charset=utf-8", ".json": "application/json"}
    keys = {o["Key"] for o in s3.list_keys(bucket)}
    # 4 outputs + manifest + history record, and nothing else
    assert len(keys) == 6, keys
    by_local = {Path(f.path).name: f for f in result.files}
    for f in media["files"] + [media["manifest"]]:
        up = by_local[f.name]
        assert up.key in keys
        head = client.head_object(Bucket=bucket, Key=up.key)
        assert head["ContentType"] == expected_types[f.suffix]
        assert head["ContentLength"] == f.stat().st_size
        body = client.get_object(Bucket=bucket, Key=up.key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sha256(f)
    vkey = by_local["ad_9x16.mp4"].key
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert vkey.startswith(f"acme-co/{today}/{sha256(media['video'])[:12]}/"), vkey
    assert sha256(media["video"])[:12] in vkey.rsplit("/", 1)[1]
    # the manifest file now names each output's object (s3://bucket/key: no presigned URL in a file anyone may
    # read), with paths relative to its folder; the presigned URLs the result hands out download the bytes
    manifest = load_manifest(media["manifest"])
    assert len(manifest.outputs) == 4
    for out in manifest.outputs:
        up = by_local[Path(out.path).name]
        assert out.url == f"s3://{bucket}/{up.key}" and not Path(out.path).is_absolute()
        r = requests.get(up.url, timeout=10)
        assert r.status_code == 200 and "X-Amz-Signature=" in up.url
        assert hashlib.sha256(r.content).hexdigest() == out.sha256
    # ... and so does the manifest object in the store
    stored_text = client.get_object(Bucket=bucket, Key=by_local[media["manifest"].name].key)["Body"].read().decode()
    stored = json.loads(stored_text)
    assert all(o["url"].startswith(f"s3://{bucket}/") for o in stored["outputs"])
    assert "X-Amz-" not in stored_text and str(media["dir"]) not in stored_text
    assert result.url == by_local["ad_9x16.mp4"].url


def test_reupload_is_idempotent(s3, bucket, media, tmp_path):
    cfg = config_for(s3, bucket, tmp_path, url_mode="public")
    rendered = time.mktime((2024, 3, 5, 12, 0, 0, 0, 0, -1))
    os.utime(media["video"], (rendered, rendered))  # {date} is the render date, not the upload day
    first = upload_ad(media["video"], media["extras"], manifest_path=media["manifest"], config=cfg)
    assert first.files[0].key.startswith("acme-co/2024-03-05/")
    before = {o["Key"]: (o["ETag"], o["LastModified"]) for o in s3.list_keys(bucket)}
    time.sleep(1.05 - time.time() % 1)  # LastModified has one-second resolution: from the next second on, a
    # re-upload would move it (every first upload finished before the listing above)
    second = upload_ad(media["video"], media["extras"], manifest_path=media["manifest"], config=cfg)
    after = {o["Key"]: (o["ETag"], o["LastModified"]) for o in s3.list_keys(bucket)}
    assert second.status == "uploaded"
    media_keys = {f.key for f in first.files if f.role == "output"}
    assert set(after) == set(before), "a second upload created or removed objects"
    for key in media_keys:
        assert after[key] == before[key], f"{key} was uploaded again"
    assert [f.key for f in first.files] == [f.key for f in second.files]
    assert {f.status for f in second.files if f.role == "output"} == {"exists"}


def test_multipart_above_threshold(s3, bucket, tmp_path):
    cfg = config_for(s3, bucket, tmp_path, multipart_threshold_mb=5, multipart_chunksize_mb=5)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * MIB))
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(1 * MIB))
    result = upload_ad(big, [small], config=cfg, write_history=False)
    assert result.status == "uploaded"
    client = s3.client()
    heads = {Path(f.path).name: client.head_object(Bucket=bucket, Key=f.key) for f in result.files}
    assert heads["big.bin"]["ETag"].strip('"').endswith("-3")  # 12 MiB in 5 MiB parts
    assert "-" not in heads["small.bin"]["ETag"]
    r = requests.get(result.url, timeout=30)
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha256(big)


def test_presigned_url_downloads_then_expires(s3, bucket, media, tmp_path):
    cfg = config_for(s3, bucket, tmp_path)
    t0 = time.monotonic()  # the URL is signed after this
    result = upload_ad(media["video"], config=cfg.with_choices(url_mode="presigned", url_expiry_seconds=3), write_history=False)
    url = result.url
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=3" in url
    assert SECRET_KEY not in url
    r = requests.get(url, timeout=10)
    assert r.status_code == 200
    assert r.content == media["video"].read_bytes()
    assert r.headers["Content-Type"] == "video/mp4"
    # refused once its 3 s are up: asked every quarter second from then on, not after a fixed longer wait
    time.sleep(max(0.0, t0 + 3 - time.monotonic()))
    deadline = time.monotonic() + 30
    while requests.get(url, timeout=10).status_code != 403:
        assert time.monotonic() < deadline, "the presigned URL still works 30 s after it expired"
        time.sleep(0.25)
    # without a signature the private bucket refuses too
    assert requests.get(url.split("?")[0], timeout=10).status_code == 403


def test_public_base_url_and_hls_playlist_with_segments(s3, media, tmp_path):
    prefix = f"pub-{uuid.uuid4().hex[:8]}/"
    cfg = config_for(s3, PUBLIC_BUCKET, tmp_path, env_extra={"ADREEL_S3_PUBLIC_BASE_URL": f"{s3.endpoint}/{PUBLIC_BUCKET}"})
    playlist = media["dir"] / "hls" / "ad.m3u8"
    result = upload_ad(media["video"], [playlist], config=cfg.with_choices(prefix_pattern=prefix + "{run}/"), write_history=False)
    assert result.status == "uploaded"
    assert result.url == f"{s3.endpoint}/{PUBLIC_BUCKET}/{[f for f in result.files if f.path.endswith('.mp4')][0].key}"
    purl = result.urls["ad.m3u8"]
    r = requests.get(purl, timeout=10)  # anonymous, as a player would
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert r.content == playlist.read_bytes()
    segments = [ln for ln in r.text.splitlines() if ln and not ln.startswith("#")]
    assert len(segments) >= 2
    base = purl.rsplit("/", 1)[0]
    for seg in segments:
        s = requests.get(f"{base}/{seg}", timeout=10)
        assert s.status_code == 200, seg
        assert s.headers["Content-Type"] == "video/mp2t"
        assert s.content == (playlist.parent / seg).read_bytes()


# ---------------------------------------------------------------- failures
def test_wrong_secret_is_a_clear_error_and_files_are_spooled(s3, bucket, media, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-secret-Hq83nVb27xLp"
    cfg = config_for(s3, bucket, tmp_path, env_extra={"MINIO_SECRET_KEY": wrong})
    with pytest.raises(StorageCredentialsError) as info:
        upload_ad(media["video"], media["extras"], manifest_path=media["manifest"], config=cfg)
    msg = str(info.value)
    assert "SignatureDoesNotMatch" in msg and "secret key does not match" in msg
    assert "MINIO_ACCESS_KEY" in msg and "…EY01" in msg  # where the key came from, masked
    assert ACCESS_KEY not in msg
    result = info.value.result
    assert result.status == "spooled" and len(result.spooled) == 5  # 4 outputs + manifest
    entries = list_spooled(cfg.spool_dir)
    assert sorted(e.role for e in entries) == ["history", "manifest"] + ["output"] * 4
    for e in entries:
        if e.role == "output":
            assert sha256(e.local_path) == sha256(e.source_path) == e.sha256
            assert e.key and e.content_type and e.last_error
    # no secret anywhere: message, logs, manifest, result, spool records
    texts = [msg, caplog.text, media["manifest"].read_text(), json.dumps(dataclasses.asdict(result), default=str),
             repr(cfg), str(cfg), (Path(cfg.spool_dir) / DB_NAME).read_bytes().decode("utf-8", "replace")]
    for text in texts:
        assert wrong not in text
        assert SECRET_KEY not in text
    assert s3.list_keys(bucket) == []
    # credentials fixed: the next run uploads its own file, then drains the spool into the store
    good = config_for(s3, bucket, tmp_path)
    other = tmp_path / "next_run.jpg"
    shutil.copy(media["extras"][0], other)
    with open(other, "ab") as fh:
        fh.write(b"\0")
    nxt = upload_ad(other, config=good, write_history=False)
    assert nxt.status == "uploaded" and nxt.retry is not None
    assert nxt.retry.ok and len(nxt.retry.uploaded) == 6, nxt.retry
    assert len(s3.list_keys(bucket)) == 7
    assert spool_files_on_disk(Path(cfg.spool_dir)) == []
    assert all(o.url for o in load_manifest(media["manifest"]).outputs)
    assert SECRET_KEY not in caplog.text and wrong not in caplog.text


def test_unknown_access_key_is_named(s3, bucket, media, tmp_path):
    cfg = config_for(s3, bucket, tmp_path, env_extra={"MINIO_ACCESS_KEY": "NOSUCHKEY0000XYZW"})
    with pytest.raises(StorageCredentialsError) as info:
        upload_ad(media["video"], config=cfg, write_history=False)
    assert "InvalidAccessKeyId" in str(info.value) and "…XYZW" in str(info.value)
    assert "NOSUCHKEY0000XYZW" not in str(info.value)
    assert len(list_spooled(cfg.spool_dir)) == 1


def test_missing_bucket_spools_and_background_thread_uploads_later(s3, media, tmp_path):
    name = f"t-{uuid.uuid4().hex[:10]}"
    cfg = config_for(s3, name, tmp_path)
    result = upload_ad(media["video"], media["extras"], config=cfg, write_history=False)
    assert result.status == "spooled" and result.reason_code == "bucket-missing"
    assert name in result.reason and "does not exist" in result.reason
    assert len(result.spooled) == 4 and all(Path(f.spool_path).is_file() for f in result.spooled)
    stop = threading.Event()
    thread = start_retry_thread(0.2, stop_event=stop, config=cfg)
    try:
        deadline = time.monotonic() + 30  # the thread's first attempt, however loaded the machine
        while time.monotonic() < deadline and not all(e.attempts >= 1 for e in list_spooled(cfg.spool_dir)):
            time.sleep(0.1)
        assert len(list_spooled(cfg.spool_dir)) == 4  # still no bucket: nothing lost
        assert all(e.attempts >= 1 and "does not exist" in e.last_error for e in list_spooled(cfg.spool_dir))
        s3.create_bucket(name)
        deadline = time.monotonic() + 20
        while list_spooled(cfg.spool_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        thread.stop(timeout=5)
    assert not thread.is_alive()
    assert list_spooled(cfg.spool_dir) == []
    stored = {o["Key"]: o["Size"] for o in s3.list_keys(name)}
    assert sorted(stored.values()) == sorted(f.stat().st_size for f in media["files"])
    assert set(stored) == {f.key for f in result.files}


def test_store_stopped_mid_run_spools_then_retry_uploads_each_once(tmp_path, media):
    with SeaweedFS(tmp_path / "s3-private") as s3:
        bucket = "adreel-midrun"
        s3.create_bucket(bucket)
        cfg = config_for(s3, bucket, tmp_path)
        killed = []

        def progress(event):
            if event["stage"] == "file_done" and event["files_done"] == 1 and not killed:
                s3.stop()  # the store goes away right after the first file
                killed.append(event["file"])

        result = upload_ad(media["video"], media["extras"], manifest_path=media["manifest"], config=cfg, progress=progress)
        assert killed == ["ad_9x16.mp4"]
        assert result.status == "spooled" and result.reason_code == "unreachable"
        assert "unreachable" in result.reason and s3.endpoint in result.reason
        assert [Path(f.path).name for f in result.uploaded] == ["ad_9x16.mp4"] and result.url
        assert len(result.spooled) == 4  # jpg, srt, vtt, manifest
        entries = list_spooled(cfg.spool_dir)
        assert sorted(e.role for e in entries) == ["history", "manifest", "output", "output", "output"]
        # the local manifest already has the URL of what did go up
        urls = {Path(o.path).name: o.url for o in load_manifest(media["manifest"]).outputs}
        assert urls["ad_9x16.mp4"] and not urls["ad_9x16.jpg"]

        # a retry while the store is still down keeps everything and records the attempt
        report = retry_spooled(cfg)
        assert report.uploaded == [] and "unreachable" in report.error
        again = list_spooled(cfg.spool_dir)
        assert len(again) == 5 and all(e.attempts >= 1 and "unreachable" in e.last_error for e in again)
        assert all(Path(e.local_path).is_file() for e in again if e.local_path)

        # the user queues the same ad again while the store is down: spooled again, files not copied twice
        second = upload_ad(media["video"], media["extras"], manifest_path=media["manifest"], config=cfg)
        assert second.status == "spooled" and len(second.spooled) == 5
        entries = list_spooled(cfg.spool_dir)
        assert sorted(e.role for e in entries) == ["history"] * 2 + ["manifest"] * 2 + ["output"] * 4
        assert len({e.local_path for e in entries if e.role == "output"}) == 4

        s3.start()  # same ports, same data
        report = retry_spooled(cfg)
        assert report.ok, report
        assert sorted(u["role"] for u in report.uploaded) == ["history"] * 2 + ["manifest"] * 2 + ["output"] * 4
        assert sorted(u["status"] for u in report.uploaded if u["key"] == result.files[0].key) == ["exists"]
        objects = s3.list_keys(bucket)
        keys = [o["Key"] for o in objects]
        assert len(keys) == len(set(keys)) == 6  # 4 outputs + manifest + history: each exactly once
        client = s3.client()
        for f in media["files"]:
            key = next(u.key for u in result.files if Path(u.path) == f)
            assert hashlib.sha256(client.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest() == sha256(f)
        assert list_spooled(cfg.spool_dir) == [] and spool_files_on_disk(Path(cfg.spool_dir)) == []
        # the original manifest got every URL; the stored one too
        manifest = load_manifest(media["manifest"])
        assert all(o.url for o in manifest.outputs)
        assert str(media["manifest"]) in report.manifests_updated
        stored = json.loads(client.get_object(Bucket=bucket, Key=result.manifest_key)["Body"].read())
        assert all(o["url"] for o in stored["outputs"])
        hist = json.loads(client.get_object(Bucket=bucket, Key=f"history/{result.run}.json")["Body"].read())
        assert hist["status"] == "uploaded" and len(hist["outputs"]) == 4

        # and running the whole upload again adds nothing
        again = upload_ad(media["video"], media["extras"], manifest_path=media["manifest"], config=cfg)
        assert again.status == "uploaded"
        assert sorted(o["Key"] for o in s3.list_keys(bucket)) == sorted(keys)
        assert retry_spooled(cfg).uploaded == []


class _BrokenS3:
    """A loopback HTTP server standing in for a failing store: every request gets a 503 S3 error, or no answer."""

    def __init__(self, mode: str):
        import http.server

        outer = self
        self.mode, self.requests = mode, 0
        self.release = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _answer(self):
                outer.requests += 1
                if outer.mode == "hang":
                    outer.release.wait(10)
                    return
                body = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ServiceUnavailable</Code><Message>Please reduce your request rate.</Message></Error>"
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_HEAD = do_POST = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.mark.parametrize("mode,reason_code,words", [("503", "server-error", "HTTP 503 ServiceUnavailable"),
                                                    ("hang", "unreachable", "read timed out")])
def test_store_errors_and_timeouts_spool(tmp_path, media, mode, reason_code, words, monkeypatch):
    with _BrokenS3(mode) as broken:
        cfg_file = tmp_path / "storage.json"
        cfg_file.write_text(json.dumps({"spool_dir": str(tmp_path / "spool"), "read_timeout": 0.5, "connect_timeout": 1}))
        # boto3's own variables, which boto3 reads from the process environment itself
        for var, value in {"AWS_ENDPOINT_URL_S3": broken.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                           "AWS_SECRET_ACCESS_KEY": SECRET_KEY}.items():
            monkeypatch.setenv(var, value)
        cfg = load_storage_config(environ={"ADREEL_S3_BUCKET": "ads"}, config_path=cfg_file)
        t0 = time.monotonic()
        result = upload_ad(media["video"], media["extras"], config=cfg, write_history=False)
        assert time.monotonic() - t0 < 20
    assert result.status == "spooled" and result.reason_code == reason_code
    assert words in result.reason and broken.endpoint in result.reason
    assert broken.requests >= 1
    assert sorted(sha256(e.local_path) for e in list_spooled(cfg.spool_dir)) == sorted(sha256(f) for f in media["files"])
    assert SECRET_KEY not in json.dumps(dataclasses.asdict(result), default=str)


# ---------------------------------------------------------------- history
def test_each_run_leaves_one_history_record_naming_its_objects(s3, bucket, media, tmp_path):
    cfg = config_for(s3, bucket, tmp_path)
    result = upload_ad(media["video"], media["extras"], manifest_path=media["manifest"], config=cfg)
    other = tmp_path / "other"
    other.mkdir()
    clip = other / "clip.mp4"
    shutil.copy(media["video"], clip)
    with open(clip, "ab") as fh:
        fh.write(b"\0" * 16)  # different content, different run
    second_manifest = make_manifest(other, [clip], brand="Beta Brew", costs=1.5)
    second = upload_ad(clip, manifest_path=second_manifest, config=cfg)
    assert result.run != second.run

    client = s3.client()
    keys = {o["Key"] for o in s3.list_keys(bucket)}
    assert {k for k in keys if k.startswith("history/")} == {f"history/{result.run}.json", f"history/{second.run}.json"}
    first = json.loads(client.get_object(Bucket=bucket, Key=f"history/{result.run}.json")["Body"].read())
    assert first["status"] == "uploaded" and first["brief"]["brand"] == "Acme Co" and "Rocket Shoes" in first["summary"]
    assert first["costs_usd"] == pytest.approx(0.42) and first["manifest_key"] == result.manifest_key
    assert len(first["outputs"]) == 4 and {o["key"] for o in first["outputs"]} <= keys
    video = next(o for o in first["outputs"] if o["name"] == "ad_9x16.mp4")
    body = client.get_object(Bucket=bucket, Key=video["key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == video["sha256"] == sha256(media["video"])
    beta = json.loads(client.get_object(Bucket=bucket, Key=f"history/{second.run}.json")["Body"].read())
    assert beta["brief"]["brand"] == "Beta Brew" and beta["costs_usd"] == pytest.approx(1.5)


# ---------------------------------------------------------------- retention
def _backdate(path: Path, days: float = 10) -> None:
    t = time.time() - days * 86400
    os.utime(path, (t, t), follow_symlinks=False)


def test_retention_never_drops_waiting_uploads_and_cleans_only_adreel_folders(tmp_path):
    from nodes.engine.storage.retention import OWNED_MARKER, claim_folder

    spool = tmp_path / "spool"
    src = tmp_path / "src"
    src.mkdir()
    old_f, new_f = src / "old.mp4", src / "new.mp4"
    old_f.write_bytes(b"old" * 100)
    new_f.write_bytes(b"new" * 100)
    common = dict(role="output", kind="video", content_type="video/mp4", bucket="b", bytes=300)
    old_entry = spool_file(spool, SpoolEntry("b-old", key="k/old.mp4", sha256=sha256(old_f), **common), old_f,
                           reason="down", attempts=1)
    new_entry = spool_file(spool, SpoolEntry("b-new", key="k/new.mp4", sha256=sha256(new_f), **common), new_f,
                           reason="down", attempts=1)
    old_entry.created = "2020-01-01T00:00:00+00:00"  # waiting for years: the store has been down that long
    old_entry.save()
    _backdate(Path(old_entry.local_path))
    partial = spool / "b-new" / "01-x.mp4.part"  # a copy cut short by a crash
    partial.write_bytes(b"half")
    _backdate(partial)
    orphan = spool / "b-new" / "02-uploaded.mp4"  # the copy of an uploaded file whose record went first
    orphan.write_bytes(b"up")
    _backdate(orphan)
    fresh_part = spool / "b-new" / "03-y.mp4.part"  # a copy in progress right now
    fresh_part.write_bytes(b"copying")

    temp = claim_folder(tmp_path / "temp")  # AdReel's own scratch folder
    (temp / "failed_run").mkdir(parents=True)
    old_tmp, new_tmp = temp / "failed_run" / "frame.png", temp / "keep.png"
    old_tmp.write_bytes(b"x")
    new_tmp.write_bytes(b"y")
    _backdate(old_tmp)
    _backdate(temp / "failed_run")
    outside = tmp_path / "precious.mp4"
    outside.write_bytes(b"keep me")
    _backdate(outside)
    link = temp / "link.mp4"
    link.symlink_to(outside)
    _backdate(link)
    # a folder AdReel did not create (e.g. ~/Videos, ComfyUI's output): never cleaned, however old its files
    videos = tmp_path / "Videos"
    videos.mkdir()
    holiday = videos / "holiday.mp4"
    holiday.write_bytes(b"memories")
    _backdate(holiday, 400)

    dry = clean_retention([spool, temp, videos], max_age_hours=24, dry_run=True)
    assert old_tmp.exists() and partial.exists() and dry.removed

    report = clean_retention([spool, temp, videos], max_age_hours=24)
    removed = set(report.removed)
    assert set(dry.removed) == removed
    assert removed == {str(partial), str(orphan), str(old_tmp), str(temp / "failed_run"), str(link)}
    # the old entry was never uploaded: record and copy stay, byte for byte
    assert (old_entry.batch, old_entry.name) in {(e.batch, e.name) for e in list_spooled(spool)}
    assert Path(old_entry.local_path).read_bytes() == b"old" * 100
    assert Path(new_entry.local_path).exists() and fresh_part.exists() and new_tmp.exists()
    assert sorted(e.key for e in list_spooled(spool)) == ["k/new.mp4", "k/old.mp4"]
    assert outside.read_bytes() == b"keep me"  # the link's target is outside: untouched
    assert holiday.read_bytes() == b"memories"
    assert any("Videos" in e and "did not create" in e for e in report.errors), report.errors
    assert (temp / OWNED_MARKER).exists() and (spool / SPOOL_MARKER).exists()

    # a folder that already holds files cannot be claimed
    with pytest.raises(ValueError):
        claim_folder(videos)
    # an age below a day would race a copy or an upload in progress: refused
    for bad in (0, 1, 23.9, float("nan"), -5):
        with pytest.raises(ValueError):
            clean_retention([spool], max_age_hours=bad)
    refused = clean_retention([Path.home()], max_age_hours=24)
    assert refused.removed == [] and "home" in refused.errors[0]


def test_retention_waits_for_a_running_retry(tmp_path):
    from nodes.engine.storage.spool import spool_lock

    spool = tmp_path / "spool"
    src = tmp_path / "a.mp4"
    src.write_bytes(b"a" * 10)
    entry = spool_file(spool, SpoolEntry("b1", "output", "k/a.mp4", kind="video", content_type="video/mp4",
                                         sha256=sha256(src), bytes=10, bucket="b"), src, reason="down", attempts=0)
    part = entry.folder / "09-z.mp4.part"
    part.write_bytes(b"z")
    _backdate(part)
    with spool_lock(spool) as locked:
        assert locked
        busy = clean_retention([spool], max_age_hours=24)
        assert busy.removed == [] and "retry is running" in busy.errors[0]
        assert part.exists()
    assert clean_retention([spool], max_age_hours=24).removed == [str(part)]


# ---------------------------------------------------------------- configuration and keys
def test_unconfigured_storage_names_what_to_set(tmp_path):
    with pytest.raises(StorageNotConfigured) as info:
        load_storage_config(environ={}, config_path=tmp_path / "none.json")
    msg = str(info.value)
    for name in ("ADREEL_S3_BUCKET", "MINIO_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_ENDPOINT_URL_S3", str(tmp_path / "none.json")):
        assert name in msg
    with pytest.raises(StorageNotConfigured, match="no credentials"):
        load_storage_config(environ={"MINIO_BUCKET": "ads"}, config_path=tmp_path / "none.json")


def test_config_precedence(tmp_path, monkeypatch):
    file = tmp_path / "storage.json"
    file.write_text(json.dumps({"bucket": "file-bucket", "endpoint_url": "http://file:9000", "access_key": "FILEKEY0001",
                                "secret_key": "file-secret-xyz", "prefix": "file/{run}/", "url_mode": "public",
                                "public_base_url": "https://cdn.example.com/ads"}))
    # file only
    cfg = load_storage_config(environ={}, config_path=file)
    assert (cfg.bucket, cfg.endpoint_url, cfg.access_key, cfg.prefix_pattern) == ("file-bucket", "http://file:9000", "FILEKEY0001", "file/{run}/")
    # AdReel's environment beats the file (ADREEL_ > MINIO_); boto3's AWS_* (read by boto3 from the process
    # environment) only fill in what both leave unset; credentials as a pair
    for var, value in {"AWS_ENDPOINT_URL_S3": "https://aws.example", "AWS_ACCESS_KEY_ID": "AWSKEY0001",
                       "AWS_SECRET_ACCESS_KEY": "aws-secret-abc"}.items():
        monkeypatch.setenv(var, value)
    env = {"ADREEL_S3_BUCKET": "adreel-bucket", "MINIO_BUCKET": "minio-bucket", "MINIO_ENDPOINT": "minio.local:9000",
           "MINIO_SECURE": "false", "AWS_REGION": "eu-west-1", "ADREEL_S3_PREFIX": "env/{brand}/"}
    cfg = load_storage_config(environ=env, config_path=file)
    assert cfg.bucket == "adreel-bucket" and cfg.endpoint_url == "http://minio.local:9000"
    assert (cfg.access_key, cfg.secret_key) == ("FILEKEY0001", "file-secret-xyz") and cfg.region == "eu-west-1"
    assert cfg.prefix_pattern == "env/{brand}/" and cfg.url_mode == "public"  # url_mode only in the file
    assert cfg.sources["credentials"] == f"config file {file} (access_key + secret_key)"
    # nothing of AdReel's own: boto3 resolves the keys and the endpoint, and the source is named
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"bucket": "file-bucket"}))
    cfg = load_storage_config(environ={}, config_path=bare)
    assert cfg.access_key is None and cfg.sources["credentials"] == "AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY"
    assert S3Store(cfg).endpoint == "https://aws.example"
    env.update({"MINIO_ACCESS_KEY": "MINIOKEY01", "MINIO_SECRET_KEY": "minio-secret-def"})
    cfg = load_storage_config(environ=env, config_path=file)
    assert (cfg.access_key, cfg.secret_key) == ("MINIOKEY01", "minio-secret-def")
    # a half pair is an error, never mixed with another source
    with pytest.raises(StorageConfigError, match="MINIO_SECRET_KEY"):
        load_storage_config(environ={"MINIO_ACCESS_KEY": "K0000001"}, config_path=file)
    file_half = tmp_path / "half.json"
    file_half.write_text(json.dumps({"bucket": "b-1", "access_key": "FILEKEY0001"}))
    with pytest.raises(StorageConfigError, match="sets only one of access_key"):
        load_storage_config(environ={}, config_path=file_half)
    # MINIO_ENDPOINT without scheme is https unless MINIO_SECURE says otherwise
    cfg = load_storage_config(environ={"MINIO_ENDPOINT": "s3.example:9000"}, config_path=file)
    assert cfg.endpoint_url == "https://s3.example:9000"
    # the caller's non-secret choices win over everything
    cfg = load_storage_config(environ=env, config_path=file, prefix_pattern="caller/{date}/", url_mode="presigned",
                              url_expiry_seconds=600)
    assert (cfg.prefix_pattern, cfg.url_mode, cfg.url_expiry_seconds) == ("caller/{date}/", "presigned", 600)
    assert "minio-secret-def" not in repr(cfg) and "MINIOKEY01" not in repr(cfg)
    # bad values name their source, and a broken file never echoes its content
    with pytest.raises(StorageConfigError, match="ADREEL_S3_URL_EXPIRY"):
        load_storage_config(environ={**env, "ADREEL_S3_URL_EXPIRY": "999999999"}, config_path=file)
    file.write_text('{"secret_key": "leaky-secret-123", ')
    with pytest.raises(StorageConfigError) as info:
        load_storage_config(environ={}, config_path=file)
    assert "leaky-secret-123" not in str(info.value) and str(file) in str(info.value)
    file.write_text(json.dumps({"bucket": "b-1", "secrte_key": "x"}))
    with pytest.raises(StorageConfigError, match="secrte_key"):
        load_storage_config(environ={}, config_path=file)


def test_prefix_pattern_is_sanitised():
    values = {"brand": "../../etc/Acme Co.", "date": "2025-05-01", "run": "abc123", "aspect": "9x16"}
    assert render_prefix("{brand}/{date}/{run}/", values) == "etc-acme-co/2025-05-01/abc123/"
    assert render_prefix("/ads//{brand}_{aspect}/", {"brand": "브랜드 Café"}) == "ads/브랜드-café_unknown/"
    assert render_prefix("", values) == ""
    for bad in ("../{brand}/", "a/./b", "{nope}/", "a\\b/", "x\n/"):
        with pytest.raises(AdReelInputError):
            render_prefix(bad, values)


def test_content_types():
    assert content_type_for("a.MP4") == "video/mp4"
    assert content_type_for("t.jpeg") == "image/jpeg"
    assert content_type_for("s.vtt").startswith("text/vtt")
    assert content_type_for("s.srt").startswith("application/x-subrip")
    assert content_type_for("p.m3u8") == "application/vnd.apple.mpegurl"
    assert content_type_for("seg.ts") == "video/mp2t"
    assert content_type_for("x.unknownext") == "application/octet-stream"


def test_update_manifest_urls_in_place(media):
    video = media["video"]
    updated = update_manifest_urls(media["manifest"], {str(video): "https://cdn.example/v.mp4",
                                                        sha256(media["extras"][0]): "https://cdn.example/t.jpg"})
    on_disk = load_manifest(media["manifest"])
    assert on_disk == updated
    urls = {Path(o.path).name: o.url for o in on_disk.outputs}
    assert urls == {"ad_9x16.mp4": "https://cdn.example/v.mp4", "ad_9x16.jpg": "https://cdn.example/t.jpg",
                    "ad_9x16.srt": None, "ad_9x16.vtt": None}
    with pytest.raises(AdReelInputError, match="manifest"):
        update_manifest_urls(media["video"], {})


def test_explicit_keys_ignore_a_stale_aws_profile(s3, media, tmp_path, monkeypatch):
    """MINIO_* keys work even when AWS_PROFILE names a profile that does not exist."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(name)
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    cfg = config_for(s3, name, tmp_path)
    result = upload_ad(media["video"], config=cfg, write_history=False)
    assert result.status == "uploaded", result.reason


def test_boto3_resolves_the_aws_variables_itself(s3, media, tmp_path, monkeypatch):
    """Only the bucket is AdReel's: the endpoint (AWS_ENDPOINT_URL_S3, answered path-style) and the keys
    (AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY) are boto3's own, and the upload lands there."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(name)
    for var, value in {"AWS_ENDPOINT_URL_S3": s3.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                       "AWS_SECRET_ACCESS_KEY": SECRET_KEY}.items():
        monkeypatch.setenv(var, value)
    cfg_file = tmp_path / "storage.json"
    cfg_file.write_text(json.dumps({"spool_dir": str(tmp_path / "spool"), "url_mode": "public"}))
    cfg = load_storage_config(environ={"ADREEL_S3_BUCKET": name}, config_path=cfg_file)
    result = upload_ad(media["video"], config=cfg, write_history=False)
    assert result.status == "uploaded", result.reason
    (stored,) = s3.list_keys(name)
    assert result.url == f"{s3.endpoint}/{name}/{stored['Key']}"
    assert stored["Size"] == media["video"].stat().st_size


def test_the_retry_thread_applies_retention_when_asked(tmp_path):
    """With an age set, the background thread removes what is older than it in AdReel's own folders."""
    from nodes.engine.storage.retention import claim_folder
    from nodes.engine.storage.background import start_retry_thread
    spool = tmp_path / "spool"
    temp = claim_folder(tmp_path / "temp")
    old = temp / "old.png"
    old.write_bytes(b"x")
    fresh = temp / "fresh.png"
    fresh.write_bytes(b"y")
    _backdate(old, 3)
    stop = threading.Event()
    thread = start_retry_thread(0.1, stop_event=stop, spool_dir=spool, retention_hours=24,
                                retention_folders=[temp])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and old.exists():
            time.sleep(0.1)
    finally:
        thread.stop()
    assert not old.exists() and fresh.exists()


# ---------------------------------------------------------------- hostile input (issue 11)
CANARY = "canary-0f3c9a1e-never-in-the-bucket"


@pytest.fixture
def render(media_src, tmp_path):
    """A render folder as FFmpegAssemble leaves it in ComfyUI's output: ``ad_00001_.mp4`` and its sidecars,
    the manifest by exact name ``ad_00001_.json`` (absolute paths, as render.py writes them), an HLS folder."""
    out = tmp_path / "output" / "AdReel"
    out.mkdir(parents=True)
    stem = "ad_00001_"
    files = []
    for src, name in (("ad_9x16.mp4", f"{stem}.mp4"), ("ad_9x16.jpg", f"{stem}.jpg"), ("ad_9x16.srt", f"{stem}.srt"),
                      ("ad_9x16.vtt", f"{stem}.vtt")):
        shutil.copy(media_src / src, out / name)
        files.append(out / name)
    hls = out / f"{stem}_hls"
    shutil.copytree(media_src / "hls", hls)
    files += sorted(hls.iterdir())
    manifest = make_manifest(out, files, name=f"{stem}.json")
    data = json.loads(manifest.read_text())
    data["brief"]["logo_path"] = str(tmp_path / "temp" / "adreel_inputs" / "logo_abc.png")
    manifest.write_text(json.dumps(data))
    secret_dir = tmp_path / "home" / ".aws"  # files a network user must never get into the bucket
    secret_dir.mkdir(parents=True)
    (secret_dir / "credentials").write_text(f"[default]\naws_secret_access_key = {CANARY}\n")
    storage_json = tmp_path / "output" / "storage.json"  # next to, not inside, the render's folder
    storage_json.write_text(json.dumps({"secret_key": CANARY}))
    return {"dir": out, "stem": stem, "video": files[0], "files": files, "manifest": manifest,
            "secret": secret_dir / "credentials", "storage_json": storage_json}


def bucket_bodies(s3, bucket) -> dict:
    client = s3.client()
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"]) for o in s3.list_keys(bucket)}


def assert_no_canary(s3, bucket):
    for key, obj in bucket_bodies(s3, bucket).items():
        body = obj["Body"].read()
        assert CANARY.encode() not in body, key
        assert b"root:x:0:0" not in body, key
        assert obj["ContentType"].split(";")[0] not in ("text/html", "image/svg+xml", "application/xhtml+xml"), key


def evil_outputs(render) -> list[dict]:
    """What an attacker writes into a manifest: files outside the render's folder, links, pages."""
    d = render["dir"]
    (d / f"{render['stem']}.html").write_text("<script>alert(1)</script>")
    (d / f"{render['stem']}.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>")
    link = d / f"{render['stem']}_link.jpg"
    if not link.is_symlink():
        link.symlink_to(render["secret"])
    # files outside the folder with an extension AdReel uploads, named after the video: only the
    # confinement stops them (the attacker records their true sha256, e.g. of a well-known file)
    outside = d.parent / f"{render['stem']}.jpg"
    outside.write_text(CANARY)
    deep = d.parent.parent / "home" / f"{render['stem']}_x.mp4"
    deep.write_text(CANARY)
    paths = ["/etc/passwd", str(render["secret"]), "../storage.json", "../../home/.aws/credentials", "/etc/hostname",
             str(link), f"{render['stem']}.html", f"{render['stem']}.svg", "~/.aws/credentials", str(outside),
             f"../{render['stem']}.jpg", f"../../home/{render['stem']}_x.mp4", f"{render['stem']}_hls/../../{outside.name}"]
    out = []
    for p in paths:
        full = Path(os.path.expanduser(p)) if Path(os.path.expanduser(p)).is_absolute() else d / p
        real = Path(os.path.realpath(full))
        digest = sha256(real) if real.is_file() and os.access(real, os.R_OK) else "0" * 64
        out.append({"kind": "video", "path": p, "bytes": real.stat().st_size if real.is_file() else 1, "sha256": digest})
    return out


def test_an_uploaded_manifest_cannot_push_files_from_outside_the_render_folder(s3, bucket, render, tmp_path):
    from nodes.engine.storage.manifest import manifest_beside

    cfg = config_for(s3, bucket, tmp_path)
    data = json.loads(render["manifest"].read_text())
    data["outputs"] += evil_outputs(render)
    render["manifest"].write_text(json.dumps(data))
    # the hijack variant: a look-alike manifest that sorts first is never the render's manifest
    hijack = render["dir"] / f"{render['stem']}.a.json"
    hijack.write_text(json.dumps({**data, "outputs": evil_outputs(render)}))
    assert manifest_beside(render["video"]) == render["manifest"]

    result = upload_ad(render["video"], manifest_path=manifest_beside(render["video"]), config=cfg)
    assert result.status == "uploaded", result.reason
    keys = {o["Key"] for o in s3.list_keys(bucket)}
    # exactly the render's files: 4 + the HLS playlist and segments, the manifest, the history record
    hls = sorted((render["dir"] / f"{render['stem']}_hls").iterdir())
    assert len(keys) == 4 + len(hls) + 2, sorted(keys)
    stored = {hashlib.sha256(o["Body"].read()).hexdigest() for o in bucket_bodies(s3, bucket).values()}
    assert {sha256(f) for f in render["files"]} <= stored
    assert_no_canary(s3, bucket)
    assert any("not this render's" in n for n in result.notes), result.notes
    # the manifest on disk (ComfyUI serves it through /view) holds no presigned URL and no absolute path
    text = render["manifest"].read_text()
    assert "X-Amz-Signature" not in text and str(tmp_path) not in text
    assert json.loads(text)["brief"]["logo_path"] == "logo_abc.png"


def test_a_manifest_that_does_not_list_the_video_is_ignored(s3, bucket, render, tmp_path):
    """``input/evil.mp4`` + ``input/evil.json``: the manifest names other files of the folder, not the video."""
    cfg = config_for(s3, bucket, tmp_path)
    folder = tmp_path / "input"
    folder.mkdir()
    evil = folder / "evil.mp4"
    evil.write_bytes(b"any bytes at all")
    (folder / "evil.jpg").write_bytes(b"someone else's upload")
    brief = json.loads(render["manifest"].read_text())
    brief["outputs"] = [{"kind": "thumbnail", "path": str(folder / "evil.jpg"), "bytes": 5, "sha256": sha256(folder / "evil.jpg")},
                        {"kind": "video", "path": "/etc/passwd", "bytes": 1, "sha256": "0" * 64}]
    (folder / "evil.json").write_text(json.dumps(brief))
    result = upload_ad(evil, manifest_path=folder / "evil.json", config=cfg, write_history=False)
    assert result.status == "uploaded"
    (only,) = s3.list_keys(bucket)
    assert only["Key"].endswith(".mp4") and only["Size"] == len(b"any bytes at all")
    assert any("not this render's manifest" in n for n in result.notes)
    assert "X-Amz" not in (folder / "evil.json").read_text()  # not written back into


def test_a_listed_file_changed_after_the_render_is_not_uploaded(s3, bucket, render, tmp_path):
    """``overwrite=true`` on a sidecar: its bytes no longer match the manifest's sha256."""
    cfg = config_for(s3, bucket, tmp_path)
    thumb = render["dir"] / f"{render['stem']}.jpg"
    thumb.write_text(CANARY)
    result = upload_ad(render["video"], manifest_path=render["manifest"], config=cfg, write_history=False)
    assert result.status == "uploaded"
    assert not any(Path(f.path) == thumb for f in result.files)
    assert_no_canary(s3, bucket)


def test_content_types_never_make_a_page():
    for name in ("x.html", "x.htm", "x.svg", "x.xhtml", "x.js", "x.xml"):
        assert content_type_for(name) == "application/octet-stream", name


def test_reserved_prefixes_and_first_writer_wins_history(s3, bucket, render, tmp_path):
    cfg = config_for(s3, bucket, tmp_path)
    for pattern in ("history/", "history/{run}/", "/history//x/", "key-images/{brand}/"):
        with pytest.raises(AdReelInputError, match="reserves"):
            upload_ad(render["video"], config=cfg.with_choices(prefix_pattern=pattern), write_history=False)
    data = json.loads(render["manifest"].read_text())
    data["brief"]["brand"] = data["storyboard"]["brief"]["brand"] = "History"
    render["manifest"].write_text(json.dumps(data))
    with pytest.raises(AdReelInputError, match="prefix_pattern"):  # a placeholder cannot lead there either
        upload_ad(render["video"], manifest_path=render["manifest"], config=cfg.with_choices(prefix_pattern="{brand}/"))
    assert s3.list_keys(bucket) == []

    data["brief"]["brand"] = data["storyboard"]["brief"]["brand"] = "Acme Co"
    render["manifest"].write_text(json.dumps(data))
    first = upload_ad(render["video"], manifest_path=render["manifest"], config=cfg)
    hist_key = f"history/{first.run}.json"
    before = s3.client().get_object(Bucket=bucket, Key=hist_key)["Body"].read()
    # the same MP4 bytes (e.g. downloaded from the CDN) re-uploaded by someone else with a forged brief
    forged_dir = tmp_path / "input"
    forged_dir.mkdir()
    copy = forged_dir / "ad_00001_.mp4"
    shutil.copy(render["video"], copy)
    forged = make_manifest(forged_dir, [copy], brand="Evil Corp", name="ad_00001_.json")
    second = upload_ad(copy, manifest_path=forged, config=cfg.with_choices(prefix_pattern="evil/{run}/"))
    assert second.run == first.run and any("already exists" in n for n in second.notes)
    assert s3.client().get_object(Bucket=bucket, Key=hist_key)["Body"].read() == before
    assert json.loads(before)["brief"]["brand"] == "Acme Co"


def test_a_forged_spool_record_cannot_delete_or_upload_files_outside_its_batch(s3, bucket, tmp_path):
    cfg = config_for(s3, bucket, tmp_path)
    precious = tmp_path / "precious.txt"
    precious.write_text(CANARY)
    src = tmp_path / "real.mp4"
    src.write_bytes(b"r" * 50)
    entry = spool_file(cfg.spool_dir, SpoolEntry("b-1", "output", "k/real-x.mp4", kind="video",
                                                 content_type="video/mp4", sha256=sha256(src), bytes=50, bucket=bucket),
                       src, reason="down", attempts=1)
    forged = dataclasses.replace(entry)  # a second row of the same batch, written by someone else
    forged.name = "01-forged.mp4"
    forged.key = "k/forged-x.txt"
    forged.local_path = str(precious)  # with the matching sha256: a forged record pointing at a file it must not upload
    forged.source_path = None
    forged.sha256, forged.bytes = sha256(precious), precious.stat().st_size
    forged.save()
    forged.remove()
    assert precious.read_text() == CANARY  # remove() unlinks only inside its batch folder
    forged.save()
    report = retry_spooled(cfg)
    assert [u["key"] for u in report.uploaded] == ["k/real-x.mp4"]
    assert any("outside its batch" in f["error"] for f in report.failed), report.failed
    assert precious.read_text() == CANARY
    assert_no_canary(s3, bucket)


def test_a_spool_left_by_the_json_record_version_is_uploaded_after_the_update(s3, bucket, tmp_path):
    """An upload spooled before the spool became a table (one ``*.spool.json`` record beside each copy)
    is not lost: the next retry reads it, uploads it once and leaves nothing behind."""
    cfg = config_for(s3, bucket, tmp_path)
    src = tmp_path / "old.mp4"
    src.write_bytes(b"o" * 64)
    batch = Path(cfg.spool_dir) / "20260101T000000-abc-1234"
    batch.mkdir(parents=True)
    (Path(cfg.spool_dir) / SPOOL_MARKER).write_text("AdReel upload spool")
    copy = batch / "00-ad-old.mp4"
    shutil.copy(src, copy)
    record = {"batch": batch.name, "name": "00-ad-old.mp4", "role": "output", "key": "k/ad-old.mp4", "kind": "video",
              "content_type": "video/mp4", "cache_control": None, "sha256": sha256(src), "bytes": 64,
              "source_path": str(src), "local_path": str(copy), "bucket": bucket, "created": "2026-01-01T00:00:00+00:00",
              "attempts": 2, "last_error": "down", "last_attempt": None, "reason": "down", "url_mode": "auto",
              "url_expiry_seconds": 86400, "output_keys": {}, "manifest_identity": None, "payload": None,
              "state": "spooled", "owner_pid": None, "version": 2}
    (batch / "00-ad-old.mp4.spool.json").write_text(json.dumps(record))
    report = retry_spooled(cfg)
    assert report.ok and [u["key"] for u in report.uploaded] == ["k/ad-old.mp4"], report
    assert [o["Key"] for o in s3.list_keys(bucket)] == ["k/ad-old.mp4"]
    assert list_spooled(cfg.spool_dir) == [] and spool_files_on_disk(Path(cfg.spool_dir)) == []


def test_the_spool_is_never_someone_elses_folder(tmp_path):
    from nodes.engine.storage.spool import check_spool_dir, ensure_spool_dir

    videos = tmp_path / "Videos"
    videos.mkdir()
    (videos / "holiday.mp4").write_bytes(b"memories")
    with pytest.raises(StorageConfigError, match="not an AdReel spool"):
        ensure_spool_dir(videos)
    assert not (videos / SPOOL_MARKER).exists()
    comfy_out = tmp_path / "ComfyUI" / "output"
    comfy_out.mkdir(parents=True)
    for inside in (comfy_out, comfy_out / "spool", tmp_path / "ComfyUI"):
        with pytest.raises(StorageConfigError, match="ComfyUI"):
            check_spool_dir(inside, [comfy_out])
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(StorageConfigError, match="writable by other users"):
        ensure_spool_dir(shared)
    with pytest.raises(StorageConfigError, match="home"):
        check_spool_dir(Path.home())
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    assert (ensure_spool_dir(empty) / SPOOL_MARKER).is_file()
    new = ensure_spool_dir(tmp_path / "a" / "new")
    assert (new / SPOOL_MARKER).is_file() and (new.stat().st_mode & 0o077) == 0


class SimulatedCrash(BaseException):
    """Stands for kill -9: not an Exception, so no handler of the product catches it."""


def _crash_at(monkeypatch, step: str, nth: int = 1):
    from nodes.engine.storage import spool as spool_mod

    seen = {"n": 0}

    def hook(name):
        if name == step:
            seen["n"] += 1
            if seen["n"] == nth:
                raise SimulatedCrash(step)

    monkeypatch.setattr(spool_mod, "CRASH_HOOK", hook)
    return seen


def _down_config(cfg, tmp_path):
    """The same settings (spool, bucket) with the store unreachable: a closed port."""
    import dataclasses
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return dataclasses.replace(cfg, endpoint_url=f"http://127.0.0.1:{port}", connect_timeout=0.5)


@pytest.mark.parametrize("step,store_up,nth", [
    ("intents-recorded", True, 1),   # crash before the first request
    ("uploaded", True, 1),           # the video is in the store, its record not yet removed
    ("uploaded", True, 3),           # mid-run
    ("manifest-uploaded", True, 1),
    ("history-written", True, 1),
    ("spool-copied", False, 2),      # store down: a copy fsynced as .part, not renamed yet
    ("spool-replaced", False, 1),    # renamed, the record not yet updated
    ("spool-recorded", False, 3),
])
def test_a_crash_at_any_step_is_finished_by_the_next_retry_cycle(s3, bucket, media, tmp_path, monkeypatch, step,
                                                                  store_up, nth):
    cfg = config_for(s3, bucket, tmp_path)
    seen = _crash_at(monkeypatch, step, nth)
    with pytest.raises(SimulatedCrash):
        upload_ad(media["video"], media["extras"], manifest_path=media["manifest"],
                  config=cfg if store_up else _down_config(cfg, tmp_path))
    assert seen["n"] == nth
    from nodes.engine.storage import spool as spool_mod
    monkeypatch.setattr(spool_mod, "CRASH_HOOK", None)
    assert list_spooled(cfg.spool_dir), "nothing recorded: the crash would lose the upload"

    report = retry_spooled(cfg)  # the next cycle (the background thread, or the next run)
    assert report.ok, report
    keys = [o["Key"] for o in s3.list_keys(bucket)]
    assert len(keys) == len(set(keys)) == 6, keys  # 4 outputs + manifest + history: each exactly once
    client = s3.client()
    stored = {hashlib.sha256(client.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest() for k in keys}
    assert {sha256(f) for f in media["files"]} <= stored
    hist = [k for k in keys if k.startswith("history/")]
    assert len(hist) == 1 and json.loads(client.get_object(Bucket=bucket, Key=hist[0])["Body"].read())["status"] == "uploaded"
    assert list_spooled(cfg.spool_dir) == [] and spool_files_on_disk(Path(cfg.spool_dir)) == []
    assert all(o.url for o in load_manifest(media["manifest"]).outputs)


def test_a_copy_lost_by_a_power_cut_is_recopied_from_its_source(s3, bucket, media, tmp_path):
    cfg = config_for(s3, bucket, tmp_path)
    result = upload_ad(media["video"], media["extras"], config=_down_config(cfg, tmp_path), write_history=False)
    assert result.status == "spooled"
    entries = {Path(e.source_path).name: e for e in list_spooled(cfg.spool_dir)}
    video_copy = Path(entries["ad_9x16.mp4"].local_path)
    video_copy.write_bytes(b"")  # the record reached the disk, the data did not
    thumb_copy = Path(entries["ad_9x16.jpg"].local_path)
    thumb_copy.unlink()
    report = retry_spooled(cfg)
    assert report.ok, report
    client = s3.client()
    for f in [media["video"], *media["extras"]]:
        key = next(x.key for x in result.files if Path(x.path) == f)
        assert hashlib.sha256(client.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest() == sha256(f)
    assert list_spooled(cfg.spool_dir) == []


def test_a_corrupt_copy_whose_source_is_gone_is_kept_not_lost(s3, bucket, media, tmp_path):
    cfg = config_for(s3, bucket, tmp_path)
    src = tmp_path / "gone.mp4"
    shutil.copy(media["video"], src)
    result = upload_ad(src, config=_down_config(cfg, tmp_path), write_history=False)
    (entry,) = list_spooled(cfg.spool_dir)
    Path(entry.local_path).write_bytes(b"x" * entry.bytes)
    src.unlink()
    for _ in range(2):
        report = retry_spooled(cfg)
        assert report.uploaded == [] and "spool-corrupt" not in str(report.error)
        assert "no longer matches" in report.failed[0]["error"]
    (kept,) = list_spooled(cfg.spool_dir)
    assert Path(kept.local_path).is_file() and kept.attempts >= 2
    assert s3.list_keys(bucket) == [] and result.status == "spooled"


KILL_SCRIPT = r"""
import os, signal, sys
sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], "tests")]
from nodes.engine.storage import load_storage_config, upload_ad
cfg = load_storage_config(config_path=sys.argv[2])
sent = {"n": 0}
def progress(event):
    if event["stage"] == "upload" and event["bytes_done"] >= 11 * 1024 * 1024:
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of the multipart upload
upload_ad(sys.argv[3], config=cfg, write_history=True, progress=progress)
print("not killed")
"""


def test_kill_9_mid_multipart_upload_is_aborted_and_redone_once(s3, bucket, tmp_path):
    """A real SIGKILL of the uploading process: the next cycle aborts the parts it left and uploads once."""
    cfg_file = tmp_path / "storage.json"
    cfg_file.write_text(json.dumps({"spool_dir": str(tmp_path / "spool"), "multipart_threshold_mb": 5,
                                    "multipart_chunksize_mb": 5, "max_concurrency": 1}))
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(24 * MIB))
    env = {**os.environ, **s3.env(bucket)}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([os.environ.get("ADREEL_PYTHON", "python3"), "-c", KILL_SCRIPT, str(root), str(cfg_file), str(big)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stdout + proc.stderr
    client = s3.client()
    left = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert left, "the killed upload left no incomplete multipart upload (the test needs one)"
    cfg = load_storage_config(environ=s3.env(bucket), config_path=cfg_file)
    (intent,) = [e for e in list_spooled(cfg.spool_dir) if e.role == "output"]
    assert intent.state == "intent" and intent.source_path == str(big.resolve())

    report = retry_spooled(cfg)
    assert report.ok, report
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    objects = s3.list_keys(bucket)
    videos = [o for o in objects if o["Key"].endswith(".mp4")]
    assert len(videos) == 1 and videos[0]["Size"] == big.stat().st_size
    body = client.get_object(Bucket=bucket, Key=videos[0]["Key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha256(big)
    assert len([o for o in objects if o["Key"].startswith("history/")]) == 1
    assert list_spooled(cfg.spool_dir) == []


def test_plan_upload_decides_every_object_and_key_without_a_store(render, tmp_path):
    """The upload's plan from local files alone: no store is configured to answer (its endpoint is a
    closed port), yet every object, kind and key is decided — the video first, HLS segments before
    their playlist in one folder, the manifest last, all under the rendered prefix."""
    from nodes.engine.storage.uploader import collect_files, plan_upload

    cfg_file = tmp_path / "storage.json"
    cfg_file.write_text(json.dumps({"spool_dir": str(tmp_path / "spool")}), encoding="utf-8")
    cfg = load_storage_config(environ={"MINIO_ENDPOINT": "http://127.0.0.1:9", "MINIO_ACCESS_KEY": "a",
                                       "MINIO_SECRET_KEY": "b", "MINIO_BUCKET": "ads"}, config_path=cfg_file)
    cfg = cfg.with_choices(prefix_pattern="{brand}/{aspect}/{run}/")
    files = collect_files(render["video"], manifest_path=render["manifest"])
    plan = plan_upload(files, files.manifest, cfg)
    video_sha = sha256(render["video"])
    assert plan.run == video_sha[:12] and plan.prefix == f"acme-co/9x16/{plan.run}/"
    first = plan.items[0]
    assert (first.path, first.kind, first.role) == (render["video"], "video", "output")
    assert first.key == f"{plan.prefix}ad-{video_sha[:12]}.mp4"  # ComfyUI's save counter is left out
    by_kind = {it.kind for it in plan.items}
    assert {"video", "thumbnail", "subtitles", "hls"} <= by_kind
    hls = [it for it in plan.items if it.path.parent.name.endswith("_hls")]
    assert hls and hls[-1].path.suffix == ".m3u8" and all(it.path.suffix != ".m3u8" for it in hls[:-1])
    assert len({it.key.rsplit("/", 1)[0] for it in hls}) == 1
    assert plan.manifest_key.startswith(plan.prefix) and plan.manifest_key.endswith(".json")
    assert plan.keys[-1] == plan.manifest_key and len(set(plan.keys)) == len(plan.keys)
    assert all(k.startswith(plan.prefix) for k in plan.keys)
    # without the manifest only the given files are planned
    alone = collect_files(render["video"])
    bare = plan_upload(alone, alone.manifest, cfg)
    assert bare.prefix.startswith("unbranded/")  # no brief without the manifest
    assert bare.manifest_key is None and [it.path for it in bare.items] == [render["video"]]
