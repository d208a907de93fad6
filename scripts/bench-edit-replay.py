#!/usr/bin/env python3
"""The reference client for scripts/bench-edit.sh: replays request bodies
recorded by `qie emulate --record-bodies` on an emulator, CONCURRENCY at a
time, polls every POLL seconds where the answer is a job, and downloads each
result. Prints the wall time in seconds and the polls sent.

  bench-edit-replay.py BASE KEY BODIES CONCURRENCY POLL [POLL_TEMPLATE]

POLL_TEMPLATE is the endpoint's status path with {id} (omit for synchronous
routes). A job is done when its answer holds a result URL (a /files/ path),
failed when its status says so. Where a finished job's result is fetched
apart, QIE_REPLAY_RESULT is that path with {id}: a poll that says the job
completed without a result URL is followed by one GET of it. The key is sent
as `Authorization: SCHEME KEY`, SCHEME from QIE_REPLAY_AUTH (Bearer by default).
"""
import os
import json
import sys
import threading
import time
import urllib.request

base, key, bodies, concurrency, poll = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
template = sys.argv[6] if len(sys.argv) > 6 else None
result_template = os.environ.get("QIE_REPLAY_RESULT") or None
scheme = os.environ.get("QIE_REPLAY_AUTH") or "Bearer"
entries = [json.loads(line) for line in open(f"{bodies}/index.jsonl") if line.strip()]
payloads = [(e["path"], e["contentType"], open(f"{bodies}/{e['file']}", "rb").read()) for e in entries]


def call(method, url, body=None, content_type=None):
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Authorization", f"{scheme} {key}")
    if content_type:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


def find(value, test):
    if isinstance(value, dict):
        for item in value.values():
            found = find(item, test)
            if found is not None:
                return found
    elif isinstance(value, list):
        for item in value:
            found = find(item, test)
            if found is not None:
                return found
    elif test(value):
        return value
    return None


def job_id(answer):
    if isinstance(answer, dict):
        for name in ("id", "generation_id", "request_id"):
            if isinstance(answer.get(name), str):
                return answer[name]
        for item in answer.values():
            found = job_id(item) if isinstance(item, (dict, list)) else None
            if found:
                return found
    if isinstance(answer, list):
        for item in answer:
            found = job_id(item)
            if found:
                return found
    return None


def result_url(answer):
    return find(answer, lambda v: isinstance(v, str) and "/files/" in v)


polls = 0
lock = threading.Lock()
queue = list(range(len(payloads)))
failures = []


def edit(index):
    global polls
    path, content_type, body = payloads[index]
    answer = json.loads(call("POST", base + path, body, content_type))
    url = result_url(answer)
    ident = job_id(answer)
    while url is None:
        if template is None or ident is None:
            raise RuntimeError(f"no result and no job to ask about: {answer}")
        time.sleep(poll)
        answer = json.loads(call("GET", base + template.replace("{id}", ident)))
        with lock:
            polls += 1
        if str(find(answer, lambda v: isinstance(v, str) and v.lower() in ("failed", "error"))).lower() in ("failed", "error"):
            raise RuntimeError(f"job failed: {answer}")
        url = result_url(answer)
        finished = str(answer.get("status", "")).lower() in ("completed", "succeeded", "success") if isinstance(answer, dict) else False
        if url is None and result_template and finished:
            answer = json.loads(call("GET", base + result_template.replace("{id}", ident)))
            url = result_url(answer)
            if url is None:
                raise RuntimeError(f"finished without a result: {answer}")
    urllib.request.urlopen(url, timeout=120).read()


def worker():
    while True:
        with lock:
            if not queue:
                return
            index = queue.pop(0)
        try:
            edit(index)
        except Exception as error:  # reported, and counted against the run
            with lock:
                failures.append(str(error))


start = time.time()
threads = [threading.Thread(target=worker) for _ in range(concurrency)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
wall = time.time() - start
if failures:
    print(f"replay failures: {failures[:3]}", file=sys.stderr)
    sys.exit(1)
print(f"{wall:.3f} {polls}")
