"""Cloud narration: OpenAI's and ElevenLabs' text-to-speech, keys from the environment.

OpenAI        POST {OPENAI_BASE_URL|https://api.openai.com/v1}/audio/speech
              Authorization: Bearer $OPENAI_API_KEY
              {"model", "input" (≤4096 chars), "voice", "response_format": "wav", "speed": 0.25..4}
              → the audio bytes; errors {"error": {"message", "type", "param", "code"}}
ElevenLabs    POST {ELEVENLABS_BASE_URL|https://api.elevenlabs.io}/v1/text-to-speech/{voice_id}
              ?output_format=mp3_44100_128, header xi-api-key: $ELEVENLABS_API_KEY
              {"text", "model_id", "language_code"?, "voice_settings": {"speed"}}
              → MP3 bytes; errors {"detail": {"status", "message"}} (422: {"detail": [{loc, msg}]})

Keys never appear in a widget, a message or a log line. Base URLs must be https
(plain http is allowed for loopback only, e.g. a local gateway or a test server).
429 and 5xx are retried (bounded) honouring Retry-After.
"""
from __future__ import annotations

import os
import subprocess
import time
from urllib.parse import quote, urlparse

import numpy as np
import requests

from .ffmpeg_tools import find_ffmpeg
from .models import AdReelInputError
from .narration import Speech, trim_silence

PROVIDERS = {
    "openai": {"key_env": "OPENAI_API_KEY", "base_env": "OPENAI_BASE_URL", "base": "https://api.openai.com/v1",
               "model": "gpt-4o-mini-tts", "voice": "alloy"},
    "elevenlabs": {"key_env": "ELEVENLABS_API_KEY", "base_env": "ELEVENLABS_BASE_URL",
                   "base": "https://api.elevenlabs.io", "model": "eleven_multilingual_v2",
                   "voice": "21m00Tcm4TlvDq8ikWAM"},
}
MAX_INPUT_CHARS = {"openai": 4096, "elevenlabs": 5000}
MAX_AUDIO_BYTES = 50 * 2**20


class TTSError(RuntimeError):
    pass


def _base_url(provider: str) -> str:
    spec = PROVIDERS[provider]
    base = (os.environ.get(spec["base_env"]) or spec["base"]).rstrip("/")
    u = urlparse(base)
    loopback = u.hostname in ("127.0.0.1", "localhost", "::1")
    if u.scheme != "https" and not (u.scheme == "http" and loopback):
        raise AdReelInputError(spec["base_env"], f"{spec['base_env']} must be an https URL (got {u.scheme}://…)")
    return base


def _key(provider: str) -> str:
    env = PROVIDERS[provider]["key_env"]
    key = os.environ.get(env, "").strip()
    if not key:
        raise AdReelInputError("backend", f"{provider} narration needs the environment variable {env} "
                               "(set it where ComfyUI runs; keys are never taken from widgets)")
    return key


def _message(provider: str, resp: requests.Response, key: str) -> str:
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if provider == "openai":
        msg = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
    else:
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, dict):
            msg = f"{detail.get('status', '')}: {detail.get('message', '')}".strip(": ")
        elif isinstance(detail, list):
            msg = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', '')}" for d in detail)
        else:
            msg = None
    msg = (msg or resp.text[:300] or resp.reason or "").replace(key, "[redacted]")
    hint = {401: f"check {PROVIDERS[provider]['key_env']}", 402: "the account is out of credit",
            403: "the key may not use this model or voice", 422: "the request was refused as invalid",
            429: "rate limit or quota reached; try again later"}.get(resp.status_code, "")
    return f"{provider} TTS answered {resp.status_code}: {msg}" + (f" ({hint})" if hint else "")


def _post(provider: str, url: str, headers: dict, body: dict, key: str, tries: int = 3,
          timeout: float = 120.0) -> bytes:
    for attempt in range(tries):
        try:
            resp = requests.post(url, json=body, headers=headers, timeout=timeout, stream=True)
        except requests.RequestException as exc:
            if attempt + 1 < tries:
                time.sleep(min(8, 2 ** attempt))
                continue
            raise TTSError(f"{provider} TTS is not reachable: {type(exc).__name__}") from None
        if resp.status_code in (429, 500, 502, 503, 504) and attempt + 1 < tries:
            wait = resp.headers.get("Retry-After", "")
            time.sleep(min(30.0, float(wait)) if wait.replace(".", "", 1).isdigit() else min(8, 2 ** attempt))
            continue
        if resp.status_code != 200:
            raise TTSError(_message(provider, resp, key))
        data = bytearray()
        for chunk in resp.iter_content(1 << 16):
            data += chunk
            if len(data) > MAX_AUDIO_BYTES:
                raise TTSError(f"{provider} TTS sent more than {MAX_AUDIO_BYTES >> 20} MB of audio")
        return bytes(data)
    raise TTSError(f"{provider} TTS kept failing")


def decode_speech(data: bytes, what: str) -> Speech:
    """Any audio ffmpeg reads → mono float Speech at its own rate (24 kHz+ kept)."""
    proc = subprocess.run([find_ffmpeg(), "-v", "error", "-nostdin", "-i", "pipe:0", "-ac", "1", "-ar", "48000",
                           "-f", "f32le", "pipe:1"], input=data, capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        raise TTSError(f"{what} returned audio ffmpeg cannot read: {proc.stderr.decode(errors='replace')[-200:]}")
    return trim_silence(Speech(np.frombuffer(proc.stdout, "<f4").copy(), 48000))


def speak_cloud(provider: str, text: str, language: str, voice: str = "", model: str = "",
                speed: float = 1.0) -> Speech:
    """Speech for ``text`` from ``provider`` ('openai' | 'elevenlabs')."""
    if provider not in PROVIDERS:
        raise AdReelInputError("backend", f"{provider!r} is not one of {', '.join(PROVIDERS)}")
    text = text.strip()
    if not text:
        return Speech(np.zeros(0, np.float32), 48000)
    if len(text) > MAX_INPUT_CHARS[provider]:
        raise AdReelInputError("text", f"{len(text)} characters: {provider} speaks at most {MAX_INPUT_CHARS[provider]}")
    spec = PROVIDERS[provider]
    key = _key(provider)
    base = _base_url(provider)
    voice = voice or spec["voice"]
    model = model or spec["model"]
    if provider == "openai":
        body = {"model": model, "input": text, "voice": voice, "response_format": "wav",
                "speed": round(min(4.0, max(0.25, speed)), 3)}
        data = _post(provider, f"{base}/audio/speech", {"Authorization": f"Bearer {key}"}, body, key)
    else:
        body = {"text": text, "model_id": model, "voice_settings": {"speed": round(min(1.2, max(0.7, speed)), 3)}}
        if language:
            body["language_code"] = language.split("-")[0]
        url = f"{base}/v1/text-to-speech/{quote(voice, safe='')}?output_format=mp3_44100_128"
        data = _post(provider, url, {"xi-api-key": key}, body, key)
    return decode_speech(data, f"{provider} TTS")


def speak_cloud_to_fit(provider: str, text: str, language: str, seconds: float, voice: str = "",
                       model: str = "", lead_in: float = 0.1, breath: float = 0.25) -> Speech:
    """Speak; if it overruns the scene, ask once more at the speed that fits."""
    speech = speak_cloud(provider, text, language, voice, model)
    budget = seconds - lead_in - breath
    if speech.duration > budget > 0:
        speech = speak_cloud(provider, text, language, voice, model, speed=speech.duration / budget * 1.03)
    return speech
