"""Cloud narration: OpenAI's and ElevenLabs' text-to-speech, keys from the environment.

OpenAI        POST {OPENAI_BASE_URL|https://api.openai.com/v1}/audio/speech
              Authorization: Bearer $OPENAI_API_KEY
              {"model", "input" (≤4096 chars), "voice", "response_format": "wav", "speed": 0.25..4}
              → the audio bytes; errors {"error": {"message", "type", "param", "code"}}
ElevenLabs    POST {ELEVENLABS_BASE_URL|https://api.elevenlabs.io}/v1/text-to-speech/{voice_id}
              ?output_format=mp3_44100_128, header xi-api-key: $ELEVENLABS_API_KEY
              {"text", "model_id", "language_code"?, "voice_settings": {"speed"}}
              → MP3 bytes; errors {"detail": {"status", "message"}} (422: {"detail": [{loc, msg}]})

Keys come from the pack's one key lookup (the environment, then the AdReel
secrets file) and never appear in a widget, a message or a log line (every key
is registered with the redaction layer). Base URLs must be https (plain http is
allowed for loopback only, e.g. a local gateway or a test server). 429 and 5xx
are retried (bounded) honouring Retry-After. A redirect is never followed (the
key header would travel with it): it is an error naming the status. Each
request is bounded in total time (``ADREEL_HTTP_TOTAL_SECONDS``) and the audio in
bytes (50 MB, or ``ADREEL_MAX_DOWNLOAD_BYTES`` when lower); the decode reads only
the container the provider promised (``-f wav`` / ``-f mp3``), with the protocol
whitelist ``file,pipe`` and at most ``ADREEL_MAX_MEDIA_SECONDS`` (and 10 min) of
audio, under a time limit.
"""
from __future__ import annotations

import os
import subprocess
import time
from urllib.parse import quote

import httpx
import numpy as np

from .. import limits
from ..cloud.http import InsecureURL, ReadDeadline, ResponseTooLarge, parse_retry_after, read_capped, require_https
from ..cloud.redaction import clip, redact
from ..cloud.secrets import SecretsFileError, find_key
from ..media.ffmpeg import find_ffmpeg
from ..models import AdReelInputError
from .narration import Speech, trim_silence

PROVIDERS = {
    "openai": {"key_env": "OPENAI_API_KEY", "base_env": "OPENAI_BASE_URL", "base": "https://api.openai.com/v1",
               "model": "gpt-4o-mini-tts", "voice": "alloy", "format": "wav"},
    "elevenlabs": {"key_env": "ELEVENLABS_API_KEY", "base_env": "ELEVENLABS_BASE_URL",
                   "base": "https://api.elevenlabs.io", "model": "eleven_multilingual_v2",
                   "voice": "21m00Tcm4TlvDq8ikWAM", "format": "mp3"},
}
MAX_INPUT_CHARS = {"openai": 4096, "elevenlabs": 5000}
MAX_AUDIO_BYTES = 50 * 2**20
MAX_SPEECH_SECONDS = 600.0   # 5000 characters are never more than a few minutes of speech
DECODE_TIMEOUT = 120.0
MAX_RETRY_WAIT = 30.0


class TTSError(RuntimeError):
    def __init__(self, message: str):
        super().__init__(redact(message))


def _base_url(provider: str) -> str:
    spec = PROVIDERS[provider]
    base = (os.environ.get(spec["base_env"]) or spec["base"]).strip()
    try:
        return require_https(base, spec["base_env"], allow_loopback_http=True)
    except InsecureURL as e:
        raise AdReelInputError(spec["base_env"], str(e)) from None


def _key(provider: str) -> str:
    env = PROVIDERS[provider]["key_env"]
    try:
        key = find_key([env], provider)
    except SecretsFileError as e:
        raise AdReelInputError("backend", str(e)) from None
    if key is None:
        raise AdReelInputError("backend", f"{provider} narration needs the environment variable {env} "
                               "(set it where ComfyUI runs, or in the AdReel secrets file; keys are never "
                               "taken from widgets)")
    return key.reveal()


def _message(provider: str, status: int, raw: bytes, reason: str) -> str:
    import json
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        body = {}
    if provider == "openai":
        msg = (body.get("error") or {}).get("message") if isinstance(body, dict) and \
            isinstance(body.get("error"), dict) else None
    else:
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, dict):
            msg = f"{detail.get('status', '')}: {detail.get('message', '')}".strip(": ")
        elif isinstance(detail, list):
            msg = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', '')}" for d in detail[:5]
                            if isinstance(d, dict))
        else:
            msg = None
    msg = clip(msg or raw.decode("utf-8", "replace") or reason or "", 200)
    hint = {401: f"check {PROVIDERS[provider]['key_env']}", 402: "the account is out of credit",
            403: "the key may not use this model or voice", 422: "the request was refused as invalid",
            429: "rate limit or quota reached; try again later"}.get(status, "")
    return f"{provider} TTS answered {status}: {msg}" + (f" ({hint})" if hint else "")


def _post(provider: str, url: str, headers: dict, body: dict, key: str, tries: int = 3,
          timeout: float | None = None) -> bytes:
    total = min(float(timeout), limits.HTTP_TOTAL_SECONDS.read()) if timeout else limits.HTTP_TOTAL_SECONDS.read()
    cap = min(MAX_AUDIO_BYTES, limits.MAX_DOWNLOAD_BYTES.read())
    with httpx.Client(follow_redirects=False, timeout=httpx.Timeout(min(30.0, total), connect=min(10.0, total))) as client:
        for attempt in range(tries):
            deadline = time.monotonic() + total
            try:
                with client.stream("POST", url, json=body, headers=headers) as resp:
                    status = resp.status_code
                    if 300 <= status < 400:
                        raise TTSError(f"{provider} TTS answered a redirect ({status}); it is not followed, so the "
                                       f"key is never sent on to another host: set {PROVIDERS[provider]['base_env']} "
                                       "to the final URL")
                    if status != 200:
                        raw = read_capped(resp, 64 * 1024, deadline, f"{provider} TTS's error")
                        if status in (429, 500, 502, 503, 504) and attempt + 1 < tries:
                            wait = parse_retry_after(resp.headers)
                            time.sleep(min(MAX_RETRY_WAIT, wait) if wait is not None else min(8, 2 ** attempt))
                            continue
                        raise TTSError(_message(provider, status, raw, resp.reason_phrase))
                    return read_capped(resp, cap, deadline, f"{provider} TTS's audio")
            except ResponseTooLarge:
                raise TTSError(f"{provider} TTS sent more than {cap} bytes of audio; not read further") from None
            except ReadDeadline:
                raise TTSError(f"{provider} TTS did not finish sending the audio within {total:g} s "
                               "(ADREEL_HTTP_TOTAL_SECONDS)") from None
            except httpx.HTTPError as exc:
                if attempt + 1 < tries and isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                    time.sleep(min(8, 2 ** attempt))
                    continue
                raise TTSError(f"{provider} TTS is not reachable: {type(exc).__name__}") from None
    raise TTSError(f"{provider} TTS kept failing")


def decode_speech(data: bytes, what: str, fmt: str | None = None) -> Speech:
    """Audio of container ``fmt`` (wav / mp3; None: probe, local use only) → mono float Speech at 48 kHz.

    Bounded: ``-protocol_whitelist file,pipe`` (a playlist inside the bytes cannot reach a file), at most
    ``ADREEL_MAX_MEDIA_SECONDS`` (and 10 minutes) decoded, and a time limit."""
    seconds = min(MAX_SPEECH_SECONDS, limits.MAX_MEDIA_SECONDS.read())
    cmd = [find_ffmpeg(), "-v", "error", "-nostdin", "-protocol_whitelist", "file,pipe"]
    if fmt:
        cmd += ["-f", fmt]
    cmd += ["-i", "pipe:0", "-t", f"{seconds:g}", "-ac", "1", "-ar", "48000", "-f", "f32le", "pipe:1"]
    try:
        proc = subprocess.run(cmd, input=data, capture_output=True, timeout=DECODE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise TTSError(f"{what} returned audio that took over {DECODE_TIMEOUT:g} s to decode") from None
    if proc.returncode != 0 or not proc.stdout:
        raise TTSError(f"{what} returned audio ffmpeg cannot read: {clip(proc.stderr.decode(errors='replace')[-200:])}")
    return trim_silence(Speech(np.frombuffer(proc.stdout, "<f4").copy(), 48000))


def speak_cloud(provider: str, text: str, language: str, voice: str = "", model: str = "",
                speed: float = 1.0) -> Speech:
    """Speech for ``text`` from ``provider`` ('openai' | 'elevenlabs')."""
    if provider not in PROVIDERS:
        raise AdReelInputError("backend", f"is not one of {', '.join(PROVIDERS)}")
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
    return decode_speech(data, f"{provider} TTS", spec["format"])


def speak_cloud_to_fit(provider: str, text: str, language: str, seconds: float, voice: str = "",
                       model: str = "", lead_in: float = 0.1, breath: float = 0.25) -> Speech:
    """Speak; if it overruns the scene, ask once more at the speed that fits."""
    speech = speak_cloud(provider, text, language, voice, model)
    budget = seconds - lead_in - breath
    if speech.duration > budget > 0:
        speech = speak_cloud(provider, text, language, voice, model, speed=speech.duration / budget * 1.03)
    return speech
