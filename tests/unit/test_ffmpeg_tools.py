"""ffmpeg is found, or the error says what is missing."""
import os
import stat

import pytest

from nodes.engine.media import ffmpeg as ffmpeg_tools


@pytest.fixture(autouse=True)
def fresh_cache():
    ffmpeg_tools.find_ffmpeg.cache_clear()
    ffmpeg_tools.capabilities.cache_clear()
    yield
    ffmpeg_tools.find_ffmpeg.cache_clear()
    ffmpeg_tools.capabilities.cache_clear()


def test_system_ffmpeg_has_what_adreel_needs():
    path = ffmpeg_tools.find_ffmpeg()
    enc, fil = ffmpeg_tools.capabilities(path)
    assert {"libx264", "aac"} <= enc and {"overlay", "scale"} <= fil


def test_env_pointing_nowhere_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("ADREEL_FFMPEG", "/nonexistent/ffmpeg")
    with pytest.raises(ffmpeg_tools.FFmpegNotFound, match="ADREEL_FFMPEG"):
        ffmpeg_tools.find_ffmpeg()


def test_a_build_without_libx264_is_named(monkeypatch, tmp_path):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho ' V..... libopenh264  OpenH264'\necho ' A..... aac  AAC'\n"
                    "echo ' ... overlay  VV->V  Overlay'\necho ' ... scale V->V Scale'\necho ' ... format V->V f'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("ADREEL_FFMPEG", str(fake))
    with pytest.raises(ffmpeg_tools.FFmpegNotFound, match="encoder libx264"):
        ffmpeg_tools.find_ffmpeg()
