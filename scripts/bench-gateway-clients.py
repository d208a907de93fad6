"""Concurrent OpenAI SDK clients against `qie serve`, for scripts/bench-gateway.sh.

  load SERVED CLIENTS EDITS LATENCY         wall time of EDITS edits against the ideal
  memory SERVED CLIENTS SMALL LARGE PID     peak RSS of PID after SMALL and after LARGE edits
"""
import io
import multiprocessing
import sys
import threading
import time

import openai
from PIL import Image

buffer = io.BytesIO()
Image.new("RGB", (1024, 1280), (90, 120, 200)).save(buffer, "JPEG", quality=90)
photo = buffer.getvalue()


def run(served, clients, total):
    """Edits `total` images with `clients` threads; returns the wall time and the failures."""
    queue = list(range(total))
    lock = threading.Lock()
    failures = []

    def worker():
        client = openai.OpenAI(base_url=served + "/v1", api_key="bench-gateway", max_retries=0, timeout=120)
        while True:
            with lock:
                if not queue:
                    return
                queue.pop()
            try:
                client.images.edit(image=("photo.jpg", photo, "image/jpeg"), prompt="bench", model="runpod", output_format="jpeg")
            except Exception as error:
                failures.append(repr(error))

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.time() - start, failures


def rss(pid):
    for line in open("/proc/%s/status" % pid):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return 0.0


def share(arguments):
    """One process's share of the clients (its own interpreter, so the clients are not held up by one lock)."""
    served, clients, total = arguments
    return run(served, clients, total)[1]


def run_processes(served, clients, total, processes=4):
    """`clients` threads spread over `processes` processes, `total` edits between them."""
    processes = min(processes, clients)
    shares = [(served, clients // processes + (i < clients % processes), total // processes + (i < total % processes))
              for i in range(processes)]
    start = time.time()
    with multiprocessing.Pool(processes) as pool:
        failures = sum(pool.map(share, shares), [])
    return time.time() - start, failures


mode, served, clients = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "load":
    edits, latency = int(sys.argv[4]), float(sys.argv[5])
    wall, failures = run_processes(served, clients, edits)
    ideal = edits / clients * latency
    print("== 2. load: %d SDK clients, %d edits, %.1f s endpoint latency" % (clients, edits, latency))
    print("  wall %.2f s = %.3fx the ideal %.1f s (goal <= 1.1x; clients in 4 processes)" % (wall, wall / ideal, ideal))
else:
    small, large, pid = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    print("== 3. memory: peak RSS of qie serve, %d clients, no latency" % clients)
    _, failures = run(served, clients, small)
    first = rss(pid)
    print("  after %d edits: %.1f MB" % (small, first))
    _, more = run(served, clients, large - small)
    failures += more
    print("  after %d edits: %.1f MB (%.2fx)" % (large, rss(pid), rss(pid) / first))
if failures:
    sys.exit("%d edits failed: %s" % (len(failures), failures[0]))
