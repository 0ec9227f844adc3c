"""The suite-wide canary check finds a leaked secret wherever a test server wrote it."""
import json
import os
import subprocess
import sys

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


def test_each_session_has_canary_values_no_one_can_guess():
    """A fresh canary per test session: another run of the harness draws other values."""
    code = "import harness, json; print(json.dumps(harness.CANARY_ENV))"
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    other = json.loads(subprocess.run([sys.executable, "-c", code], cwd=tests, capture_output=True, text=True,
                                      check=True, env={**os.environ, "PYTHONPATH": tests}).stdout)
    assert other.keys() == CANARY_ENV.keys()
    assert all(other[k] != v and CANARY not in other[k] for k, v in CANARY_ENV.items())


def test_fake_request_recorder_sees_the_canary_wherever_it_is_sent():
    before = len(fakes.received)
    try:
        fakes.record("probe", "GET", "/x", {"Authorization": "Bearer nothing"}, b"{}")
        assert fakes.canary_hits(CANARY) == []
        fakes.record("probe", "POST", "/v1/chat", {"Authorization": f"Bearer {CANARY_ENV['HF_TOKEN']}"}, b"{}")
        fakes.record("probe", "POST", "/upload", {}, b'{"k": "%s"}' % CANARY_ENV["MINIO_SECRET_KEY"].encode())
        assert len(fakes.canary_hits(CANARY)) == 2
    finally:
        del fakes.received[before:]
