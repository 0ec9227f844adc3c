"""The suite-wide canary check finds a leaked secret wherever a test server wrote it."""
import os

import fakes
from harness import CANARY, CANARY_ENV, ComfyServer


def test_canary_check_finds_a_leak_in_any_file_the_server_wrote(tmp_path):
    server = ComfyServer(base_dir=str(tmp_path))
    server._prepare()
    assert server.canary_leaks() == []
    deep = tmp_path / "output" / "AdReel" / "x"
    deep.mkdir(parents=True)
    (deep / "ad.json").write_text('{"note": "key=%s"}' % CANARY_ENV["MINIO_SECRET_KEY"])
    (tmp_path / "comfyui.log").write_text("ok\n")
    assert server.canary_leaks() == [os.path.join("output", "AdReel", "x", "ad.json")]
    assert "GET /history" in server.canary_leaks(history='{"x": "%s"}' % CANARY)


def test_canary_names_are_secrets_an_attacker_would_try_and_values_are_unguessable():
    assert {"MINIO_SECRET_KEY", "HF_TOKEN"} <= set(CANARY_ENV)
    assert all(v.startswith(CANARY) and len(CANARY) > 40 for v in CANARY_ENV.values())


def test_fake_request_recorder_sees_the_canary():
    before = len(fakes.received)
    fakes.record("probe", "GET", "/x", {"Authorization": "Bearer nothing"}, b"{}")
    assert fakes.canary_hits(CANARY) == []
    del fakes.received[before:]
