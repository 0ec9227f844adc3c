"""The suite-wide canary check finds a leaked secret wherever a test server wrote it."""
import json
import os
import signal
import subprocess
import sys
import urllib.request

import fakes
from harness import CANARY, CANARY_ENV, ComfyServer, ForkedProcess


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



def test_a_forked_test_server_is_a_comfyui_process_of_its_own(tmp_path):
    """The harness forks test servers from a launcher that has imported torch once (tests/comfy_launcher.py):
    each one still serves AdReel from its own folders, in a session of its own, with the environment it was
    given, logs where a started one would, and ends as a process does (SIGTERM, SIGKILL)."""
    ceilings = {"a": "1.25", "b": "2.5"}  # the operator's spending ceiling, which the cost route reports
    servers = [ComfyServer(base_dir=str(tmp_path / name), env={"ADREEL_MAX_COST_USD": usd}) for name, usd in ceilings.items()]
    try:
        for server in servers:
            server.start()
        for server, usd in zip(servers, ceilings.values()):
            pid = server.proc.pid
            if os.environ.get("ADREEL_TEST_FORK_COMFYUI") != "0":
                assert isinstance(server.proc, ForkedProcess)
            assert os.getpgid(pid) == pid and os.getsid(pid) == pid
            # (what the process reads from its environment: a forked one's /proc/PID/environ still shows the
            # launcher's first block)
            assert server.get_json("/adreel/providers/estimate?provider=luma&model=ray-2")["budget_usd"] == float(usd)
            assert os.readlink(f"/proc/{pid}/cwd") == os.path.realpath(server.comfy)
            with urllib.request.urlopen(server.url + "/object_info/BrandBrief", timeout=30) as r:
                assert "BrandBrief" in json.loads(r.read())
            assert "To see the GUI go to" in server.log_text()
        servers[0].stop()
        assert servers[0].proc.returncode == -signal.SIGTERM
        servers[1].kill()
        assert servers[1].proc.returncode == -signal.SIGKILL and servers[1].proc.poll() == -signal.SIGKILL
    finally:
        for server in servers:
            server.cleanup()
