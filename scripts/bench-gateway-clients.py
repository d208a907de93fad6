"""Concurrent OpenAI SDK clients against `qie serve`, for scripts/bench-gateway.sh.

  load SERVED CLIENTS EDITS LATENCY         wall time of EDITS edits against the ideal
  memory SERVED CLIENTS SMALL LARGE PID     peak RSS of PID after SMALL and after LARGE edits
  stream SERVED N LATENCY                   a stream=true edit of N images: time to first byte,
                                            longest gap between bytes, when each event came
"""
import os
import io
import multiprocessing
import sys
import threading
import time


def figure(name, value, reference, target):
    """One figure for scripts/bench.sh's table (when it set QIE_BENCH_FIGURES)."""
    path = os.environ.get("QIE_BENCH_FIGURES")
    if path:
        with open(path, "a") as out:
            out.write("%s\t%s\t%s\t%s\n" % (name, value, "" if reference is None else reference, target))

import openai
from PIL import Image

buffer = io.BytesIO()
Image.new("RGB", (1024, 1280), (90, 120, 200)).save(buffer, "JPEG", quality=90)
photo = buffer.getvalue()


def run(served, clients, total, ready=None):
    """Edits `total` images with `clients` threads; returns the first start, the
    last finish and the failures. Clients are built before the clock starts
    (after `ready`, a barrier shared with the other processes, when given), so
    the time is the edits' own, not the SDK's setup."""
    queue = list(range(total))
    lock = threading.Lock()
    failures = []
    built = [openai.OpenAI(base_url=served + "/v1", api_key="bench-gateway", max_retries=0, timeout=120)
             for _ in range(clients)]

    def worker(client):
        while True:
            with lock:
                if not queue:
                    return
                queue.pop()
            try:
                client.images.edit(image=("photo.jpg", photo, "image/jpeg"), prompt="bench", model="runpod", output_format="jpeg")
            except Exception as error:
                failures.append(repr(error))

    threads = [threading.Thread(target=worker, args=(client,)) for client in built]
    if ready is not None:
        ready.wait()
    start = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return start, time.time(), failures


def rss(pid):
    for line in open("/proc/%s/status" % pid):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return 0.0


def share(served, clients, total, ready, results):
    """One process's share of the clients (its own interpreter, so the clients are not held up by one lock)."""
    results.put(run(served, clients, total, ready))


def run_processes(served, clients, total, processes=4):
    """`clients` threads spread over `processes` processes, `total` edits between
    them; the wall time runs from the first process's start to the last one's end."""
    processes = min(processes, clients)
    ready, results = multiprocessing.Barrier(processes), multiprocessing.Queue()
    workers = [multiprocessing.Process(target=share, args=(
        served, clients // processes + (i < clients % processes), total // processes + (i < total % processes), ready, results))
        for i in range(processes)]
    for worker in workers:
        worker.start()
    outcomes = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    return max(end for _, end, _ in outcomes) - min(start for start, _, _ in outcomes), sum((f for _, _, f in outcomes), [])


def stream(served, n, latency):
    """One stream=true edit of `n` images over a plain socket: when each byte
    arrived, from the moment the request was written."""
    import socket, urllib.parse
    address = urllib.parse.urlparse(served)
    boundary = b"qie-bench-stream"
    fields = ((b"prompt", b"bench"), (b"model", b"runpod"), (b"n", str(n).encode()), (b"stream", b"true"))
    body = b"".join(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (boundary, name, value)
                    for name, value in fields)
    body += (b"--%s\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\n"
             b"Content-Type: image/jpeg\r\n\r\n" % boundary) + photo + b"\r\n--%s--\r\n" % boundary
    head = ("POST /v1/images/edits HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer bench-gateway\r\n"
            "Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n"
            % (address.hostname, address.port, boundary.decode(), len(body))).encode()
    connection = socket.create_connection((address.hostname, address.port))
    connection.sendall(head + body)
    sent = time.perf_counter()
    arrivals, received, events = [], b"", []
    while True:
        chunk = connection.recv(1 << 16)
        if not chunk:
            break
        now = time.perf_counter() - sent
        arrivals.append(now)
        before = received.count(b"event: image_edit.completed")
        received += chunk
        events += [now] * (received.count(b"event: image_edit.completed") - before)
        if received.endswith(b"0\r\n\r\n") or b"event: error" in received:
            break
    connection.close()
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])] or [0]
    ok = len(events) == n and b'"qie":' in received
    print("== 4. streaming: stream=true, n=%d on RunPod (n requests), %.0f s endpoint latency" % (n, latency))
    print("  time to first byte: %.1f ms (goal < 100 ms)" % (arrivals[0] * 1000))
    print("  longest gap between bytes: %.2f s (goal < 15 s; keep-alive every 5 s)" % max(gaps))
    print("  image events at: %s s; whole edit %.2f s%s" % (", ".join("%.2f" % t for t in events), arrivals[-1],
                                                          "" if ok else "  (INCOMPLETE: %d events)" % len(events)))
    figure("stream time to first byte (ms)", round(arrivals[0] * 1000, 1), None, "< 100 ms")
    figure("stream longest gap between bytes (s)", round(max(gaps), 2), None, "< 15 s")
    if not ok:
        sys.exit(1)


mode, served = sys.argv[1], sys.argv[2]
if mode == "stream":
    stream(served, int(sys.argv[3]), float(sys.argv[4]))
    sys.exit(0)
clients = int(sys.argv[3])
if mode == "load":
    edits, latency = int(sys.argv[4]), float(sys.argv[5])
    wall, failures = run_processes(served, clients, edits)
    ideal = edits / clients * latency
    print("== 2. load: %d SDK clients, %d edits, %.1f s endpoint latency" % (clients, edits, latency))
    print("  wall %.2f s = %.3fx the ideal %.1f s (goal <= 1.1x; clients in 4 processes, built before the clock starts)" % (wall, wall / ideal, ideal))
    figure("gateway load, %d SDK clients: wall / ideal (s)" % clients, wall, ideal, "<= 1.10x")
else:
    small, large, pid = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    print("== 3. memory: peak RSS of qie serve, %d clients, no latency" % clients)
    _, _, failures = run(served, clients, small)
    first = rss(pid)
    print("  after %d edits: %.1f MB" % (small, first))
    _, _, more = run(served, clients, large - small)
    failures += more
    print("  after %d edits: %.1f MB (%.2fx)" % (large, rss(pid), rss(pid) / first))
    figure("gateway peak RSS, %d / %d edits (MB)" % (large, small), rss(pid), first, "<= 1.25x")
if failures:
    sys.exit("%d edits failed: %s" % (len(failures), failures[0]))
