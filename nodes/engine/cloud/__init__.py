"""The one safety layer for everything AdReel sends to, or reads from, another host.

Providers, LLM backends, cloud TTS and storage all go through it:

* ``redaction`` — one registry of secrets and one log filter for the whole
  process: registered values (and their base64 / URL-encoded forms, and any
  prefix of 8+ characters, as in a body cut mid-key) and credential shapes
  (Authorization headers, presigned-URL signatures, ``password=`` …) are
  masked in every message, log line and traceback;
* ``secrets`` — one key lookup (environment, then the secrets file), keys that
  never print, and the permission check of any file that holds a secret;
* ``http`` — one https policy, one Retry-After parser, destination checks
  (loopback, private and metadata ranges) and reads capped in bytes and time;
* ``llm_policy`` — where an LLM key may go: the host configured for it in the
  environment, or an allowlist there.

This package imports nothing from the stages (providers, script, storage …);
they import it.
"""
