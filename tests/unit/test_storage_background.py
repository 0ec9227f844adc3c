"""The storage pieces AssetUpload uses, without ComfyUI: the background thread's settings and singleton
(engine.storage.background), which local file a ``path`` may name and how files are shown
(engine.storage.local), and the upload's text and JSON (``UploadResult.describe`` / ``payload``)."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from nodes.engine.models import AdReelInputError
from nodes.engine.storage import UploadedFile, UploadResult, background, progress_line
from nodes.engine.media.files import is_inside
from nodes.engine.storage.local import given_video, shown_path


@pytest.mark.parametrize("raw, expected, warned", [
    ("", 300.0, False), ("12", 12.0, False), ("0.5", 300.0, True), ("nan", 300.0, True), ("soon", 300.0, True),
])
def test_retry_interval_from_the_environment(monkeypatch, caplog, raw, expected, warned):
    monkeypatch.setenv(background.RETRY_INTERVAL_ENV, raw)
    with caplog.at_level(logging.WARNING, logger="adreel.storage"):
        assert background.retry_interval() == expected
    assert (background.RETRY_INTERVAL_ENV in caplog.text) is warned


@pytest.mark.parametrize("raw, expected", [("", None), ("48", 48.0), ("23.9", None), ("nan", None), ("-1", None)])
def test_retention_hours_at_least_a_day_or_off(monkeypatch, raw, expected):
    monkeypatch.setenv(background.RETENTION_ENV, raw)
    assert background.retention_hours() == expected


def test_one_retry_thread_per_process_restarted_when_it_died(monkeypatch, tmp_path):
    monkeypatch.setenv(background.RETRY_INTERVAL_ENV, "3600")
    monkeypatch.setenv("ADREEL_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setattr(background, "_retry_thread", None)
    first = background.ensure_retry_thread()
    try:
        assert first.is_alive() and first.interval == 3600.0 and first.daemon
        assert background.ensure_retry_thread() is first
    finally:
        first.stop(5)
    assert not first.is_alive()
    second = background.ensure_retry_thread()
    try:
        assert second is not first and second.is_alive()
    finally:
        second.stop(5)


def test_nothing_waiting_starts_no_thread_at_load(monkeypatch, tmp_path):
    monkeypatch.setattr(background, "_retry_thread", None)
    monkeypatch.setenv("ADREEL_STORAGE_CONFIG", str(tmp_path / "none.json"))
    monkeypatch.setenv("ADREEL_SPOOL_DIR", str(tmp_path / "spool"))
    for var in ("MINIO_ENDPOINT", "AWS_ENDPOINT_URL", "ADREEL_S3_BUCKET", "MINIO_BUCKET"):
        monkeypatch.delenv(var, raising=False)
    assert background.resume_waiting_uploads([str(tmp_path)]) is None  # never raises
    assert background._retry_thread is None


@pytest.fixture
def folders(tmp_path):
    out = {name: tmp_path / name for name in ("output", "temp", "input")}
    for p in out.values():
        p.mkdir()
    (out["output"] / "AdReel").mkdir()
    (out["output"] / "AdReel" / "ad.mp4").write_bytes(b"\0\0\0\x18ftypmp42")
    (out["output"] / "AdReel" / "notes.txt").write_text("x")
    (tmp_path / "elsewhere.mp4").write_bytes(b"\0\0\0\x18ftypmp42")
    return {k: str(v) for k, v in out.items()}


def test_given_video_inside_the_folders_only(folders, tmp_path):
    assert given_video("AdReel/ad.mp4", folders) == Path(folders["output"], "AdReel", "ad.mp4").resolve()
    assert given_video(str(Path(folders["output"], "AdReel", "ad.mp4")), folders).name == "ad.mp4"
    for raw, words in [("../elsewhere.mp4", "must be a file inside the server's output, temp or input folder"),
                       (str(tmp_path / "elsewhere.mp4"), "must be a file inside"),
                       ("AdReel/gone.mp4", "gone.mp4 does not exist"),
                       ("AdReel/notes.txt", "notes.txt is not a video file")]:
        with pytest.raises(AdReelInputError) as err:
            given_video(raw, folders)
        assert err.value.field == "path" and words in str(err.value)
        assert str(tmp_path) not in str(err.value)  # no server path in the message


def test_a_link_out_of_the_folders_is_not_inside(folders, tmp_path):
    link = Path(folders["input"], "link.mp4")
    os.symlink(tmp_path / "elsewhere.mp4", link)
    assert not is_inside(link, *folders.values())
    with pytest.raises(AdReelInputError, match="must be a file inside"):
        given_video(str(link), folders)


def test_shown_path_never_absolute(folders, tmp_path):
    assert shown_path(Path(folders["output"], "AdReel", "ad.mp4"), folders) == "output/AdReel/ad.mp4"
    assert shown_path(tmp_path / "elsewhere.mp4", folders) == "elsewhere.mp4"
    assert shown_path("", folders) == ""


def result(status, tmp_path, **kw):
    video = tmp_path / "output" / "ad.mp4"
    files = [UploadedFile(path=str(video), key="ads/r1/ad.mp4", kind="video", role="video", content_type="video/mp4",
                          bytes=10, sha256="ab" * 32, status="uploaded" if status == "uploaded" else "spooled",
                          url="https://cdn.example.com/ads/r1/ad.mp4" if status == "uploaded" else None,
                          spool_path=None if status == "uploaded" else str(tmp_path / "spool" / "b1" / "ad.mp4")),
             UploadedFile(path=str(tmp_path / "output" / "seg0.ts"), key="ads/r1/seg0.ts", kind="video",
                          role="hls-member", content_type="video/mp2t", bytes=5, sha256="cd" * 32, status="exists")]
    return video, UploadResult(status=status, bucket="ads", endpoint="https://s3.example.com", run="r1",
                               prefix="ads/r1/", files=files, **kw)


def test_describe_and_payload_of_an_upload(tmp_path):
    video, res = result("uploaded", tmp_path, url="https://cdn.example.com/ads/r1/ad.mp4", notes=["one note"])
    shown = lambda p: shown_path(p, {"output": str(tmp_path / "output")})  # noqa: E731
    text = res.describe(video, 300, shown)
    assert text.splitlines()[:2] == ["Uploaded 2 file(s) to s3://ads/ads/r1/ (1 already there)",
                                     "video: https://cdn.example.com/ads/r1/ad.mp4"]
    assert text.splitlines()[-1] == "one note"
    payload = res.payload(video, shown)
    assert [f["name"] for f in payload["files"]] == ["ad.mp4"]  # HLS members are not listed one by one
    assert payload["files"][0]["local"] == "output/ad.mp4" and payload["video"] == "output/ad.mp4"
    assert payload["url"] == "https://cdn.example.com/ads/r1/ad.mp4"
    assert str(tmp_path) not in json.dumps(payload) + text


def test_describe_and_payload_of_a_spooled_upload(tmp_path):
    video, res = result("spooled", tmp_path, reason="the store is unreachable", reason_code="unreachable")
    shown = lambda p: shown_path(p, {"output": str(tmp_path / "output")})  # noqa: E731
    text = res.describe(video, 60, shown)
    assert text.startswith("Spooled: 1 file(s) kept in the local spool")
    assert "why: the store is unreachable" in text and "every 60s" in text and "local: output/ad.mp4" in text
    assert "1 file(s) did reach s3://ads/ads/r1/" in text
    payload = res.payload(video, shown)
    assert payload["url"] == "output/ad.mp4" and payload["files"][0]["spooled"] is True
    assert payload["reason_code"] == "unreachable"
    assert str(tmp_path) not in json.dumps(payload) + text  # neither the video's nor the spool's location


def test_progress_line():
    fraction, line = progress_line({"file": "ad.mp4", "files_done": 1, "files_total": 3,
                                    "bytes_done": 2_500_000, "bytes_total": 10_000_000})
    assert fraction == 0.25 and line == "uploading ad.mp4 · 1/3 files · 2.5 MB / 10.0 MB"
    assert progress_line({"file": "x", "files_done": 0, "files_total": 0, "bytes_done": 0, "bytes_total": 0})[0] == 0.0
