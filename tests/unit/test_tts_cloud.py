"""Cloud narration (OpenAI, ElevenLabs) against fakes that follow their contracts."""
import logging

import pytest

from fakes.tts_servers import FakeTTS
from nodes.engine.models import AdReelInputError
from nodes.engine.tts_cloud import TTSError, speak_cloud, speak_cloud_to_fit

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
def test_rate_limit_then_success_honours_retry_after(fake, provider):
    fake.script = ["429"]
    s = speak_cloud(provider, "Hello there.", "en")
    assert s.duration > 0.3 and len(fake.requests) == 2


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
