"""Job records against a real redis-server (no ComfyUI): the queue cap holds under concurrent submits, a job
is run by one worker process at a time, cancel and delete win over a worker, and everything survives a
SIGKILL of Redis (AOF)."""
from __future__ import annotations

import threading

import pytest

from fleet.config import load_settings
from fleet.jobs import JobSpec
from fleet.records import QueueFull, Records
from fleet_stack import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def records(redis_server, request):
    settings = load_settings(redis_server.url, environ={"ADREEL_FLEET_NAMESPACE": f"t-{request.node.name[:40]}"})
    return Records(settings)


def job(i: int, brand: str = "Acme") -> JobSpec:
    return JobSpec(id=f"job{i:04d}", row=i + 1, variant=0, seed=7, brief={"brand": brand},
                   prompt={"1": {"class_type": "BrandBrief", "inputs": {"brand": brand}}}, brand=brand)


def test_the_cap_holds_when_many_submits_race(records):
    accepted, refused = [], []

    def submit(i):
        try:
            records.admit(f"batch{i}", [job(i)], cap=5)
            accepted.append(i)
        except QueueFull as exc:
            refused.append(exc)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == 5 and len(refused) == 15 and records.waiting() == 5
    assert all(e.waiting == 5 and "5 job(s) are waiting" in str(e) for e in refused)


def test_one_worker_process_owns_a_running_job_and_cancel_wins(records):
    records.admit("b", [job(1), job(2)], cap=10)
    claim = records.claim("job0001", "w1", "w1/aaa", "http://c1")
    assert claim["previous_state"] == "queued" and claim["attempts"] == 1
    assert records.waiting() == 1
    # another process (even one with the same display name) cannot change it
    assert records.update("job0001", "w1/bbb", progress="0.5") == "running"
    assert records.finish("job0001", "w1/bbb", "completed") == "running"
    assert records.update("job0001", "w1/aaa", progress="0.5") == "ok"
    # cancel wins: the owner's finish no longer applies
    assert records.cancel("job0001") == "running"
    assert records.finish("job0001", "w1/aaa", "completed", outputs={"url": "x"}) == "cancelled"
    assert records.job("job0001")["state"] == "cancelled" and records.job("job0001")["outputs"] == {}
    # a cancelled queued job is dropped when a worker gets its message
    assert records.cancel("job0002") == "queued" and records.waiting() == 0
    assert records.claim("job0002", "w2", "w2/ccc", "http://c2") == {"previous_state": "cancelled"}
    # resubmitting requeues cancelled jobs, fresh
    waiting, queued = records.admit("b", [job(1), job(2)], cap=10)
    assert queued == ["job0001", "job0002"] and records.job("job0001")["attempts"] == 0


def test_a_redelivered_running_job_is_taken_over_and_counted(records):
    records.admit("b", [job(3)], cap=10)
    records.claim("job0003", "w1", "w1/aaa", "http://c1")
    records.update("job0003", "w1/aaa", prompt_id="p-1")
    again = records.claim("job0003", "w2", "w2/bbb", "http://c2")  # w1 died; its message came back
    assert again == {"previous_state": "running", "attempts": 2, "previous_worker": "w1",
                     "previous_comfy": "http://c1", "previous_prompt": "p-1"}
    assert records.finish("job0003", "w1/aaa", "completed") == "running"  # the dead one's late word is ignored
    assert records.finish("job0003", "w2/bbb", "completed", outputs={"url": "u"}) == "ok"
    assert records.claim("job0003", "w3", "w3/ccc", "http://c3") == {"previous_state": "completed"}


def test_delete_leaves_a_tombstone_and_history_filters(records):
    records.admit("b", [job(4, "Acme"), job(5, "Bolt")], cap=10)
    assert [j["brand"] for j in records.history(brand="bolt")] == ["Bolt"]
    records.delete("job0004", ["fleet/job0004/a.mp4"])
    assert records.job("job0004") is None and records.tombstone("job0004")["keys"] == ["fleet/job0004/a.mp4"]
    assert [j["id"] for j in records.batch_jobs("b")] == ["job0005"]
    assert records.claim("job0004", "w1", "w1/a", "c") == {"previous_state": "missing"}
    assert records.waiting() == 1


def test_records_survive_a_sigkill_of_redis(redis_server, records):
    records.admit("persist", [job(6), job(7)], cap=10)
    records.claim("job0006", "w1", "w1/a", "c")
    redis_server.kill()
    redis_server.start()
    fresh = Records(records.settings)
    assert [j["state"] for j in fresh.batch_jobs("persist")] == ["running", "queued"]
    assert fresh.waiting() == 1
