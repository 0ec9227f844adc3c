"""Job records against a real redis-server (no ComfyUI): the queue cap holds under concurrent submits, a job
is run by one worker process at a time, cancel and delete win over a worker, everything survives a
SIGKILL of Redis (AOF), only specs signed with the fleet's secret verify, and a Redis that answers without
a password is refused."""
from __future__ import annotations

import threading

import pytest

from fleet.config import FleetError, load_settings
from fleet.jobs import JobSpec
from fleet.records import QueueFull, Records, SpecRefused
from fleet_stack import RedisServer, fleet_secret

SECRET = fleet_secret()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def records(redis_server, request):
    settings = load_settings(redis_server.url, environ={"ADREEL_FLEET_NAMESPACE": f"t-{request.node.name[:40]}",
                                                        "ADREEL_FLEET_SECRET": SECRET})
    records = Records(settings)
    records.ping()
    return records


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
    created = again.pop("created")
    assert again == {"previous_state": "running", "attempts": 2, "previous_worker": "w1",
                     "previous_comfy": "http://c1", "delivery": 2}
    assert float(created) == records.job("job0003")["created"]
    assert records.finish("job0003", "w1/aaa", "completed") == "running"  # the dead one's late word is ignored
    assert records.finish("job0003", "w2/bbb", "completed", outputs={"url": "u"}) == "ok"
    assert records.claim("job0003", "w3", "w3/ccc", "http://c3") == {"previous_state": "completed"}


def test_a_claim_or_finish_repeated_by_its_owner_after_a_lost_reply_changes_nothing(records):
    """What a worker does when Redis went away before its reply came: it sends the same script again."""
    records.admit("b", [job(8)], cap=10)
    first = records.claim("job0008", "w1", "w1/aaa", "http://c1")
    again = records.claim("job0008", "w1", "w1/aaa", "http://c1")
    assert first["previous_state"] == again["previous_state"] == "queued"
    assert first["attempts"] == again["attempts"] == 1 and first["delivery"] == again["delivery"] == 1
    assert records.job("job0008")["attempts"] == 1
    assert records.finish("job0008", "w1/aaa", "completed", outputs={"url": "u"}) == "ok"
    assert records.finish("job0008", "w1/aaa", "completed", outputs={"url": "u"}) == "ok"  # the repeat
    assert records.finish("job0008", "w2/bbb", "completed") == "completed"  # anyone else: not theirs
    assert records.job("job0008")["state"] == "completed" and records.job("job0008")["attempts"] == 1


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


def test_only_a_spec_signed_with_the_fleet_secret_verifies(records, redis_server):
    records.admit("signed", [job(10), job(11)], cap=10)
    spec = records.verified_spec("job0010")
    assert spec["prompt"] == job(10).prompt and spec["brief"] == {"brand": "Acme"}
    raw = redis_server.client(decode_responses=True)
    key = records.job_key
    # altered: one value of the prompt changed, signature kept
    text = raw.hget(key("job0010"), "spec")
    raw.hset(key("job0010"), "spec", text.replace('"Acme"', '"Evil"'))
    # moved: a signed spec and its signature copied to another job
    raw.hset(key("job0011"), mapping={"spec": raw.hget(key("job0010"), "spec"), "sig": raw.hget(key("job0010"), "sig")})
    raw.hset(key("job0011"), "spec", text)
    # forged: written straight into Redis, unsigned or signed with a guess
    raw.hset(key("job0012"), mapping={"id": "job0012", "state": "queued", "spec": text})
    raw.hset(key("job0013"), mapping={"id": "job0013", "state": "queued", "spec": text, "sig": "0" * 64})
    for jid in ("job0010", "job0011", "job0012", "job0013"):
        with pytest.raises(SpecRefused) as err:
            records.verified_spec(jid)
        assert "Evil" not in str(err.value) and "Acme" not in str(err.value)  # the reason, never the content
    # another fleet's secret verifies nothing of this one
    other = Records(load_settings(redis_server.url, environ={"ADREEL_FLEET_NAMESPACE": records.ns,
                                                              "ADREEL_FLEET_SECRET": fleet_secret()}))
    records.admit("signed2", [job(14)], cap=10)
    assert records.verified_spec("job0014")
    with pytest.raises(SpecRefused):
        other.verified_spec("job0014")
    # a refused job is failed, with the reason, and leaves the queue
    waiting = records.waiting()
    assert records.refuse("job0010", "its spec's signature does not check out") == "queued"
    assert records.job("job0010")["state"] == "failed" and "refused" in records.job("job0010")["error"]
    assert records.waiting() == waiting - 1


def test_submit_without_the_secret_writes_nothing(redis_server):
    settings = load_settings(redis_server.url, environ={"ADREEL_FLEET_NAMESPACE": "t-nosecret"})
    records = Records(settings)
    with pytest.raises(FleetError, match="ADREEL_FLEET_SECRET is not set"):
        records.admit("b", [job(20)], cap=10)
    assert records.job("job0020") is None and records.waiting() == 0


def test_a_redis_that_answers_without_a_password_is_refused_unless_loopback_and_insecure(tmp_path):
    open_redis = RedisServer(tmp_path / "open", password="").start()
    try:
        env = {"ADREEL_FLEET_SECRET": SECRET}
        with pytest.raises(FleetError, match="has no password"):
            load_settings(open_redis.url, environ=env)
        # a password in the URL does not make the server ask for one
        with_pw = Records(load_settings(open_redis.url.replace("redis://", "redis://:guess@"), environ=env))
        with pytest.raises(FleetError, match="password"):
            with_pw.ping()
        Records(load_settings(open_redis.url, environ=env, insecure=True)).ping()  # loopback + --insecure
    finally:
        open_redis.stop()
