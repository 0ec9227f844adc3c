"""The fleet's command line: ``python -m fleet {worker,submit,status,wait,cancel,history,delete,api} …``.

Exit status: 0 done; 1 ``wait`` saw failed or cancelled jobs; 2 a clear error
(bad input, Redis or ComfyUI unreachable, queue full — nothing was changed);
3 ``wait`` timed out.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from .config import DEFAULT_REDIS_URL, REDIS_URL_ENV, STATES, TERMINAL, FleetError, load_settings

EXIT_FAILED, EXIT_ERROR, EXIT_TIMEOUT = 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fleet", description="AdReel's API workflows across many ComfyUI "
                                "servers, through Dramatiq and Redis.")
    p.add_argument("--redis", help=f"Redis URL with its password, redis://:PASSWORD@host:6379/0 (default: "
                   f"${REDIS_URL_ENV} or {DEFAULT_REDIS_URL})")
    p.add_argument("--insecure", action="store_true",
                   help="accept a Redis without a password, on loopback only (a local test); never on a network")
    sub = p.add_subparsers(dest="command", required=True)

    w = sub.add_parser("worker", help="run one worker, paired with one ComfyUI server")
    w.add_argument("--comfy", required=True, help="the ComfyUI server's URL, e.g. http://127.0.0.1:8188")
    w.add_argument("--name", default="", help="this worker's name in `status` (default: host-pid-random)")
    w.add_argument("--wait-comfy", type=float, default=0, metavar="S",
                   help="wait up to S seconds for the ComfyUI server to answer at start")

    s = sub.add_parser("submit", help="submit a batch: one job per brief row × variant")
    s.add_argument("workflow", help="an API-format workflow, e.g. example_workflows/api/brief_to_ad_upload.json")
    s.add_argument("--briefs", required=True, help="CSV or JSON Lines file whose columns/keys are BrandBrief's inputs")
    s.add_argument("--variants", type=int, default=1, help="variants per brief (ScriptLLM seeds seed, seed+1, …)")
    s.add_argument("--json", action="store_true", help='print {"batch": …, "jobs": […]}')

    st = sub.add_parser("status", help="the jobs of a batch")
    st.add_argument("batch")
    st.add_argument("--json", action="store_true")

    wt = sub.add_parser("wait", help="wait for a batch; exit 0 when every job completed")
    wt.add_argument("batch")
    wt.add_argument("--timeout", type=float, default=None, metavar="S", help="give up after S seconds (exit 3)")
    wt.add_argument("--json", action="store_true")

    c = sub.add_parser("cancel", help="cancel a batch: drop its queued jobs, interrupt its running ones")
    c.add_argument("batch")

    h = sub.add_parser("history", help="jobs, newest first")
    h.add_argument("--brand")
    h.add_argument("--state", choices=STATES)
    h.add_argument("--limit", type=int, default=200)
    h.add_argument("--json", action="store_true")

    d = sub.add_parser("delete", help="delete a job: its record and its objects in the store")
    d.add_argument("job")

    a = sub.add_parser("api", help="serve the Comfy API v2 job contract over the fleet (keys: ADREEL_API_KEYS)")
    a.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    a.add_argument("--port", type=int, default=8189)
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.command in ("worker", "api") else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.redis, insecure=args.insecure)
        return COMMANDS[args.command](settings, args)
    except FleetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


# ------------------------------------------------------------------ commands
def cmd_worker(settings, args) -> int:
    from .worker import run_worker

    return run_worker(settings, args.comfy, name=args.name, wait_comfy=args.wait_comfy)


def _records(settings):
    from .records import Records

    records = Records(settings)
    records.ping()
    return records


def cmd_submit(settings, args) -> int:
    from .broker import make_broker
    from .jobs import batch_id_for, build_jobs, load_workflow, read_briefs

    settings.signing_key()  # the jobs are signed with it: without it, nothing is submitted
    workflow = load_workflow(args.workflow)
    jobs = build_jobs(workflow, read_briefs(args.briefs, workflow), args.variants, workflow_name=args.workflow)
    if len(jobs) > settings.max_queued:
        raise FleetError(f"this batch has {len(jobs)} jobs, more than the {settings.max_queued} the queue may hold "
                         "(ADREEL_FLEET_MAX_QUEUED); split it")
    batch = batch_id_for([j.id for j in jobs])
    records = _records(settings)
    waiting, queued = records.admit(batch, jobs, settings.max_queued)
    _broker, actor = make_broker(settings)
    for job_id in queued:
        actor.send(job_id)
    fresh = set(queued)
    listed = [{**j.public(), "queued": j.id in fresh} for j in jobs]
    if args.json:
        print(json.dumps({"batch": batch, "jobs": listed, "queued": len(queued), "waiting": waiting + len(queued)}))
    else:
        print(batch)
        print(f"{len(jobs)} job(s), {len(queued)} queued now ({len(jobs) - len(queued)} already queued, running "
              f"or completed); {waiting + len(queued)} waiting in all", file=sys.stderr)
    return 0


def _batch(settings, batch):
    records = _records(settings)
    return records, records.batch_jobs(batch)


def _counts(jobs) -> dict:
    counts = {s: 0 for s in STATES}
    for j in jobs:
        counts[j["state"]] = counts.get(j["state"], 0) + 1
    return counts


def _line(j) -> str:
    what = j["url"] or ", ".join(j["outputs"].get("paths") or []) or j["error"]
    return (f"{j['id']}  row {j['row']:<3} v{j['variant']:<2} {j['state']:<9} {j['progress'] * 100:5.1f}%  "
            f"attempts {j['attempts']}  {j['worker'] or '-':<16} {what}")


def cmd_status(settings, args) -> int:
    _, jobs = _batch(settings, args.batch)
    if args.json:
        print(json.dumps({"batch": args.batch, "counts": _counts(jobs), "jobs": jobs}))
    else:
        counts = _counts(jobs)
        print(f"batch {args.batch}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
        for j in jobs:
            print(_line(j))
    return 0


def cmd_wait(settings, args) -> int:
    records, jobs = _batch(settings, args.batch)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    while True:
        jobs = records.batch_jobs(args.batch)
        if all(j["state"] in TERMINAL for j in jobs):
            break
        if deadline is not None and time.monotonic() >= deadline:
            left = [j for j in jobs if j["state"] not in TERMINAL]
            print(f"timed out after {args.timeout:g}s: {len(left)} job(s) not finished:", file=sys.stderr)
            for j in left:
                print("  " + _line(j), file=sys.stderr)
            return EXIT_TIMEOUT
        time.sleep(1)
    bad = [j for j in jobs if j["state"] != "completed"]
    if args.json:
        print(json.dumps({"batch": args.batch, "counts": _counts(jobs), "jobs": jobs}))
    else:
        for j in jobs:
            if j["state"] == "completed":
                print(f"{j['id']}  row {j['row']} v{j['variant']}  {j['url'] or ', '.join(j['outputs'].get('paths') or [])}")
    if bad:
        print(f"{len(bad)} job(s) did not complete:", file=sys.stderr)
        for j in bad:
            print(f"  {j['id']}  row {j['row']} v{j['variant']}  {j['state']}: {j['error']}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_cancel(settings, args) -> int:
    records, jobs = _batch(settings, args.batch)
    was = {"queued": 0, "running": 0}
    for j in jobs:
        prev = records.cancel(j["id"])
        if prev in was:
            was[prev] += 1
    print(f"batch {args.batch}: cancelled {was['queued']} queued job(s) (dropped) and {was['running']} running "
          "job(s) (their workers interrupt them on their ComfyUI within about a second)")
    return 0


def cmd_history(settings, args) -> int:
    records = _records(settings)
    jobs = records.history(brand=args.brand, state=args.state, limit=max(1, args.limit))
    if args.json:
        print(json.dumps({"jobs": jobs}))
    else:
        for j in jobs:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(j["created"]))
            print(f"{stamp}  {j['batch']}  {j['brand']:<16} " + _line(j))
    return 0


def cmd_delete(settings, args) -> int:
    from . import objects

    records = _records(settings)
    removed = objects.delete_job(records, args.job)
    if removed is None:
        raise FleetError(f"no job {args.job!r} (`python -m fleet history` lists the jobs)")
    print(f"deleted job {args.job}: its record and {len(removed)} object(s)")
    return 0


def cmd_api(settings, args) -> int:
    from .api.server import run_api

    return run_api(settings, host=args.host, port=args.port)


COMMANDS = {"worker": cmd_worker, "submit": cmd_submit, "status": cmd_status, "wait": cmd_wait,
            "cancel": cmd_cancel, "history": cmd_history, "delete": cmd_delete, "api": cmd_api}
