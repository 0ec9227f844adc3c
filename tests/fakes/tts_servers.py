"""Fake OpenAI and ElevenLabs text-to-speech servers on loopback, following the
public contracts (paths, auth headers, bodies, error shapes, Retry-After).

The audio is real speech: espeak-ng says the requested text, and the fake returns
it as WAV (OpenAI, response_format=wav) or MP3 (ElevenLabs, mp3_44100_128).
``script`` is a list of what to answer next: "ok", "401", "429", "500", "422",
"redirect" (a 307 to ``redirect_to`` + the same path, as a gateway or a MITM
would send), "drip" (the audio, ``drip_chunk`` bytes every ``drip_delay``
seconds). ``audio_override`` replaces the audio bytes of an "ok" answer (e.g. a
decode bomb). ``requests`` records every call with its headers — a second
FakeTTS as the redirect target shows whether a key followed the redirect.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from . import record as record_request


def speech_bytes(text: str, fmt: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        wav = f"{tmp}/s.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", wav, text], check=True)
        if fmt == "wav":
            return open(wav, "rb").read()
        return subprocess.run(["ffmpeg", "-v", "error", "-i", wav, "-ar", "44100", "-b:a", "128k", "-f", "mp3",
                               "pipe:1"], capture_output=True, check=True).stdout


class FakeTTS:
    def __init__(self, key: str):
        self.key = key
        self.script: list[str] = []
        self.retry_after = "1"  # what a 429 says in Retry-After (seconds or an HTTP date)
        self.requests: list[dict] = []
        self.redirect_to = ""
        self.audio_override: bytes | None = None
        self.drip_chunk = 256
        self.drip_delay = 0.5
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body: bytes, ctype="application/json", headers=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                record_request("tts", "POST", self.path, self.headers, raw)
                body = json.loads(raw or b"{}")
                u = urlparse(self.path)
                fake.requests.append({"path": u.path, "query": parse_qs(u.query),
                                      "headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": body})
                step = fake.script.pop(0) if fake.script else "ok"
                if step == "redirect":
                    self.send_response(307)
                    self.send_header("Location", fake.redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if u.path == "/v1/audio/speech":
                    self.openai(body, step)
                elif u.path.startswith("/v1/text-to-speech/"):
                    self.eleven(body, step)
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def openai(self, body, step):
                def err(code, msg, typ, headers=None):
                    self._send(code, json.dumps({"error": {"message": msg, "type": typ, "param": None,
                                                           "code": None}}).encode(), headers=headers)
                if self.headers.get("Authorization") != f"Bearer {fake.key}" or step == "401":
                    return err(401, "Incorrect API key provided: sk-…", "invalid_request_error")
                if step == "429":
                    return err(429, "Rate limit reached", "requests", {"Retry-After": fake.retry_after})
                if step == "500":
                    return err(500, "The server had an error", "server_error")
                for field in ("model", "input", "voice"):
                    if not body.get(field):
                        return err(400, f"Missing required parameter: '{field}'.", "invalid_request_error")
                fmt = body.get("response_format", "mp3")
                self.audio(step, speech_bytes(body["input"], fmt), "audio/wav" if fmt == "wav" else "audio/mpeg")

            def audio(self, step, data: bytes, ctype: str):
                data = fake.audio_override if fake.audio_override is not None else data
                if step != "drip":
                    return self._send(200, data, ctype)
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    for i in range(0, len(data), fake.drip_chunk):
                        self.wfile.write(data[i:i + fake.drip_chunk])
                        self.wfile.flush()
                        time.sleep(fake.drip_delay)
                        if fake.closing:
                            return
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def eleven(self, body, step):
                if self.headers.get("xi-api-key") != fake.key or step == "401":
                    return self._send(401, json.dumps({"detail": {"status": "invalid_api_key",
                                                                  "message": "Invalid API key"}}).encode())
                if step == "429":
                    return self._send(429, json.dumps({"detail": {"status": "too_many_concurrent_requests",
                                                                  "message": "Too many requests"}}).encode(),
                                      headers={"Retry-After": fake.retry_after})
                if step == "422" or not body.get("text"):
                    return self._send(422, json.dumps({"detail": [{"loc": ["body", "text"],
                                                                   "msg": "field required", "type": "missing"}]}).encode())
                self.audio(step, speech_bytes(body["text"], "mp3"), "audio/mpeg")

        self.closing = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.closing = True
        self.server.shutdown()
        self.server.server_close()
