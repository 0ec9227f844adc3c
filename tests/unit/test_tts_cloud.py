"""Cloud narration (OpenAI, ElevenLabs) against fakes that follow their contracts."""
import logging

import pytest

from fakes.tts_servers import FakeTTS
from nodes.engine.models import AdReelInputError
from nodes.engine.audio.tts_cloud import TTSError, speak_cloud, speak_cloud_to_fit

KEY = "sk-test-Zq8mN4vR7tLp2xWc"


@pytest.fixture
def fake(monkeypatch):
    with FakeTTS(KEY) as f:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("ELEVENLABS_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", f.url + "/v1")
        monkeypatch.setenv("ELEVENLABS_BASE_URL", f.url)
        yield f


def test_openai_speaks_with_the_documented_request(fake):
    s = speak_cloud("openai", "Meet the new RoboVac.", "en")
    assert 0.8 < s.duration < 4 and abs(s.samples).max() > 0.1
    req = fake.requests[-1]
    assert req["path"] == "/v1/audio/speech" and req["headers"]["authorization"] == f"Bearer {KEY}"
    assert req["body"]["input"] == "Meet the new RoboVac." and req["body"]["response_format"] == "wav"
    assert req["body"]["model"] == "gpt-4o-mini-tts" and req["body"]["voice"] == "alloy"


def test_elevenlabs_speaks_with_the_documented_request(fake):
    s = speak_cloud("elevenlabs", "Meet the new RoboVac.", "ko", voice="voice123")
    assert 0.8 < s.duration < 4
    req = fake.requests[-1]
    assert req["path"] == "/v1/text-to-speech/voice123" and req["headers"]["xi-api-key"] == KEY
    assert req["query"]["output_format"] == ["mp3_44100_128"]
    assert req["body"]["model_id"] == "eleven_multilingual_v2" and req["body"]["language_code"] == "ko"


@pytest.mark.parametrize("provider", ["openai", "elevenlabs"])
def test_rate_limit_then_success_honours_retry_after(fake, provider, monkeypatch):
    import nodes.engine.audio.tts_cloud as tts
    waits = []
    import time as real_time
    from types import SimpleNamespace  # the client's own clock: it records its waits instead of waiting
    monkeypatch.setattr(tts, "time", SimpleNamespace(sleep=waits.append, monotonic=real_time.monotonic))
    fake.script, fake.retry_after = ["429"], "7"  # not the default backoff (1 s, then 2 s)
    s = speak_cloud(provider, "Hello there.", "en")
    assert s.duration > 0.3 and len(fake.requests) == 2
    assert waits == [7.0]
    fake.script, fake.retry_after = ["429"], "3600"  # a server asking for an hour gets the client's ceiling
    waits.clear()
    speak_cloud(provider, "Hello again.", "en")
    assert waits == [tts.MAX_RETRY_WAIT]


@pytest.mark.parametrize("provider", ["openai", "elevenlabs"])
def test_bad_key_is_clear_and_never_shows_the_key(fake, provider, caplog):
    fake.key = "the-right-one"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TTSError) as exc:
        speak_cloud(provider, "Hello.", "en")
    assert "401" in str(exc.value) and provider in str(exc.value)
    assert KEY not in str(exc.value) and KEY not in caplog.text


def test_missing_key_names_the_variable(fake, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(AdReelInputError, match="OPENAI_API_KEY"):
        speak_cloud("openai", "Hello.", "en")


def test_plain_http_is_refused_off_loopback(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://tts.example.com/v1")
    with pytest.raises(AdReelInputError, match="https"):
        speak_cloud("openai", "Hello.", "en")
    assert not fake.requests


def test_invalid_request_is_reported(fake):
    fake.script = ["422"]
    with pytest.raises(TTSError, match="422.*text: field required"):
        speak_cloud("elevenlabs", "Hello.", "en")


def test_an_overrunning_line_is_asked_again_faster(fake):
    line = "This sentence is far too long to be spoken in the one second this scene allows."
    s = speak_cloud_to_fit("openai", line, "en", 2.0)
    assert len(fake.requests) == 2 and fake.requests[1]["body"]["speed"] > 1.0
    assert s.duration > 0


# ------------------------------------------------------------------ redirects, slow drip, decode bomb
@pytest.mark.parametrize("provider,header", [("elevenlabs", "xi-api-key"), ("openai", "authorization")])
def test_a_redirect_is_not_followed_and_the_key_never_reaches_the_other_host(fake, provider, header):
    with FakeTTS("other-host-key") as other:
        fake.redirect_to = other.url
        fake.script = ["redirect"]
        with pytest.raises(TTSError) as exc:
            speak_cloud(provider, "Hello.", "en")
        assert "redirect (307)" in str(exc.value) and "not followed" in str(exc.value)
        assert other.requests == []  # nothing at all reached the redirect's host, let alone the key
        assert fake.requests[-1]["headers"][header].endswith(KEY)  # the key went to its own host only
        assert KEY not in str(exc.value)


def test_a_slow_drip_is_cut_at_the_total_time(fake, monkeypatch):
    import time
    monkeypatch.setenv("ADREEL_HTTP_TOTAL_SECONDS", "2")
    fake.audio_override = b"\0" * 4096
    fake.drip_chunk, fake.drip_delay = 16, 0.4  # 4 KB at 40 B/s: over 100 s if waited for
    fake.script = ["drip"]
    t0 = time.monotonic()
    with pytest.raises(TTSError, match="within 2 s"):
        speak_cloud("elevenlabs", "Hello.", "en")
    assert time.monotonic() - t0 < 60  # bounded (generously): the drip would take 100 s


def test_too_much_audio_is_not_read(fake, monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_DOWNLOAD_BYTES", "100000")
    fake.audio_override = b"\xff" * 300_000
    with pytest.raises(TTSError, match="more than 100000 bytes of audio; not read further"):
        speak_cloud("elevenlabs", "Hello.", "en")


def test_a_low_bitrate_decode_bomb_decodes_only_up_to_the_media_ceiling(fake, monkeypatch, tmp_path):
    """Many minutes of 8 kbps MP3 (the review's 50 MB ≈ 14 h, scaled down) decode to at most the ceiling."""
    import subprocess
    bomb = tmp_path / "bomb.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=f=220:r=8000:d=120", "-ac", "1",
                    "-b:a", "8k", str(bomb)], check=True)
    monkeypatch.setenv("ADREEL_MAX_MEDIA_SECONDS", "5")
    fake.audio_override = bomb.read_bytes()
    s = speak_cloud("elevenlabs", "Hello.", "en")
    assert 4.0 <= s.duration <= 5.05  # 120 s of audio sent, 5 s decoded


def test_keys_come_from_the_secrets_file_too(fake, monkeypatch, tmp_path):
    import json
    monkeypatch.delenv("ELEVENLABS_API_KEY")
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"ELEVENLABS_API_KEY": KEY}))
    secrets.chmod(0o600)
    monkeypatch.setenv("ADREEL_SECRETS_FILE", str(secrets))
    assert speak_cloud("elevenlabs", "Hello there.", "en").duration > 0.3
    assert fake.requests[-1]["headers"]["xi-api-key"] == KEY
