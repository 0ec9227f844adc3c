"""The job API's pieces that need no ComfyUI: its keys (kept only as hashes), where a webhook may go, and the
per-key rate limit (a real redis-server and the API process).

The webhook signature is checked with the ``standardwebhooks`` library, an implementation of the scheme
independent of AdReel's."""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import time

import pytest

from fleet.api.settings import load_api_settings
from fleet.api.webhooks import Refused, check_url, sign
from fleet.config import FleetError

KEY = "k-" + "x" * 30


def test_keys_are_kept_only_as_hashes_and_short_keys_are_refused():
    settings = load_api_settings(environ={"ADREEL_API_KEYS": f" {KEY} , other-key-0123456789 "})
    assert KEY not in repr(settings) and KEY not in json.dumps([settings.key_hashes, list(settings.webhook_secrets)])
    owner = settings.owner_of(KEY)
    assert owner and owner == settings.owner_of(KEY) and owner != settings.owner_of("other-key-0123456789")
    assert settings.owner_of(KEY + "y") is None and settings.owner_of("") is None
    with pytest.raises(FleetError, match="shorter than 16"):
        load_api_settings(environ={"ADREEL_API_KEYS": "short"})
    with pytest.raises(FleetError, match="ADREEL_API_KEYS"):
        load_api_settings(environ={})


def resolver(table):
    return lambda host, port: [ipaddress.ip_address(a) for a in table[host]]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9000/hook", "http://[::1]/hook", "http://10.1.2.3/hook", "https://192.168.0.7/hook",
    "http://internal.example/hook", "https://localhost/hook",
])
def test_a_webhook_never_goes_to_loopback_or_private_addresses_unless_allowed(url):
    names = resolver({"internal.example": ["172.16.5.4"], "localhost": ["127.0.0.1"], "127.0.0.1": ["127.0.0.1"],
                      "::1": ["::1"], "10.1.2.3": ["10.1.2.3"], "192.168.0.7": ["192.168.0.7"]})
    with pytest.raises(Refused, match="ADREEL_API_WEBHOOK_ALLOW_PRIVATE"):
        check_url(url, allow_private=False, resolver=names)
    assert check_url(url, allow_private=True, resolver=names) == url


@pytest.mark.parametrize("url, allow", [
    ("http://169.254.169.254/latest/meta-data", True), ("http://metadata.example/", True),
    ("ftp://hooks.example/", False), ("https://user:pw@hooks.example/", False), ("not a url", False),
    ("https://hooks.example:99999/", False), ("https://split.example/", False),
])
def test_metadata_addresses_and_odd_urls_are_always_refused(url, allow):
    names = resolver({"metadata.example": ["169.254.169.254"], "hooks.example": ["93.184.216.34"],
                      "169.254.169.254": ["169.254.169.254"], "split.example": ["93.184.216.34", "10.0.0.1"]})
    with pytest.raises(Refused):
        check_url(url, allow_private=allow, resolver=names)
    assert check_url("https://hooks.example/in", allow_private=False, resolver=names) == "https://hooks.example/in"


def test_the_signature_verifies_with_the_standard_webhooks_library():
    standardwebhooks = pytest.importorskip("standardwebhooks")
    secret = hashlib.sha256(("adreel-webhook:" + KEY).encode()).digest()  # as the README derives it
    body = json.dumps({"id": "evt_1", "type": "job.succeeded", "data": {"status": "succeeded"}})
    stamp = int(time.time())
    headers = {"webhook-id": "evt_1", "webhook-timestamp": str(stamp), "webhook-signature": sign(secret, "evt_1",
                                                                                                 stamp, body)}
    hook = standardwebhooks.Webhook("whsec_" + base64.b64encode(secret).decode())
    assert hook.verify(body, headers)["type"] == "job.succeeded"
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        hook.verify(body.replace("succeeded", "failed"), headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        hook.verify(body, {**headers, "webhook-timestamp": str(stamp - 3600)})


def test_each_key_has_its_own_rate_limit_across_the_api(tmp_path):
    """A real redis-server and `python -m fleet api` (no ComfyUI): a key past its requests per minute gets 429
    with Retry-After; another key goes on. The window is shared through Redis, so a second API process on the
    same fleet counts the same requests."""
    import requests

    from fleet_stack import ApiServer, Fleet, RedisServer

    other = "k-" + "y" * 30
    red = RedisServer(tmp_path / "redis").start()
    fleet = Fleet(base=tmp_path, redis=red, s3=None, fleet_env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                                               "ADREEL_API_RATE_PER_MINUTE": "12",
                                                               "ADREEL_FLEET_SECRET": "s" * 64})
    first, second = ApiServer(fleet, [KEY, other]), ApiServer(fleet, [KEY, other])
    try:
        first.wait_healthy(), second.wait_healthy()
        if time.time() % 60 > 50:  # the window turns every minute: start the count early in one
            time.sleep(61 - time.time() % 60)
        answers = [requests.get((first if n % 2 else second).url + "/api/v2/jobs", timeout=10,
                                headers={"Authorization": f"Bearer {KEY}"}) for n in range(13)]
        assert [a.status_code for a in answers] == [200] * 12 + [429]
        err = answers[-1].json()["error"]
        assert err["code"] == "rate_limited" and 1 <= int(answers[-1].headers["Retry-After"]) <= 60
        assert requests.get(first.url + "/api/v2/jobs", headers={"Authorization": f"Bearer {other}"},
                            timeout=10).status_code == 200
        assert requests.get(first.url + "/api/v2/health", timeout=10).status_code == 200
    finally:
        first.stop()
        second.stop()
        red.stop()
