#!/usr/bin/env bash
# Benchmark of `qie serve` (not a test), against `qie emulate` on 127.0.0.1:
#  1. overhead: a 1.3 MP edit (1024x1280 JPEG, a size RunPod takes, so the
#     gateway has no image work to do) through the gateway (the OpenAI SDK's
#     multipart, JSON answer with b64_json) beside the same edit sent to the
#     emulated endpoint directly (RunPod's JSON with a data URI, then the
#     result's download), no latency, one at a time: p50 and p99 of each and
#     of the difference; then the same for a 1024x768 photo, which the
#     gateway pads to 1280x1024 and restores (its image work, measured),
#     and for that photo with a mask (a PNG with soft alpha), which the
#     gateway also composites; then the 1.3 MP edit through a LiteLLM proxy
#     configured by `qie serve --litellm-config` (.build/litellm,
#     scripts/ensure-litellm.sh) beside the same request to qie serve
#     directly, in pairs, one at a time: what the proxy adds, p50 and p99;
#  2. load: 64 concurrent OpenAI SDK clients, 2 s endpoint latency, 256 edits:
#     wall time against the ideal 256 / 64 x 2 s = 8 s;
#  3. memory: peak RSS of a fresh gateway after 64 and after 640 edits;
#  4. streaming: a stream=true edit of 3 images at 20 s endpoint latency:
#     time to first byte and the longest gap between bytes (keep-alive
#     comments while the endpoint works), and when each image's event came.
#   scripts/bench-gateway.sh [--quick]
# --quick (run by `make test`, so the script keeps working) uses the debug
# build, 20 edits for 1 (10 pairs through LiteLLM), 16 clients x 32 edits at
# 0.5 s for 2, 16 / 64 edits for 3, and 2 s latency for 4; its figures are
# not the benchmark's.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
quick=0
[ "${1:-}" = "--quick" ] && quick=1
scripts/ensure-openai-sdk.sh
scripts/ensure-litellm.sh
python=.build/openai-sdk/bin/python
if [ $quick -eq 1 ]; then
  qie=.build/debug/qie
  [ -x "$qie" ] || { echo "build qie first (swift build --product qie)" >&2; exit 1; }
else
  build_release qie
  qie=.build/release/qie
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/qie-bench-gateway.XXXXXX")
stop() { for pid in ${proxy:-} ${emulator:-} ${gateway:-}; do kill "$pid" 2>/dev/null || true; done; }
cleanup() { stop; rm -rf "$work"; }
trap cleanup EXIT

start() {  # latency concurrency
  stop
  wait 2>/dev/null || true
  # The last start's address must not be read for this one's: a process
  # started in the background may not have truncated its file yet when the
  # wait for its address begins.
  rm -f "$work/emulator.out" "$work/gateway.out"
  "$qie" emulate --port 0 --api-key bench-key --latency "$1" >"$work/emulator.out" 2>&1 &
  emulator=$!
  endpoint=$(listening_address "$work/emulator.out" "$emulator")
  rm -rf "$work/state"
  RUNPOD_API_KEY=bench-key QIE_RUNPOD_BASE_URL="$endpoint" QIE_GATEWAY_KEYS=bench-gateway \
    "$qie" serve --port 0 --provider runpod --concurrency "$2" --queue 1024 --state "$work/state" \
    >"$work/gateway.out" 2>"$work/gateway.log" &
  gateway=$!
  served=$(listening_address "$work/gateway.out" "$gateway")
}

rss() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$gateway/status"; }

if [ $quick -eq 1 ]; then overhead_n=20; clients=16; edits=32; latency=0.5; small=16; large=64; stream_latency=2; proxied_n=10
else overhead_n=300; clients=64; edits=256; latency=2; small=64; large=640; stream_latency=20; proxied_n=200; fi

start 0 8
# The gateway behind LiteLLM's proxy, as the README's recipe sets it up: the
# configuration qie prints, a master key, no database. Everything LiteLLM
# would fetch at start is read from its package.
"$qie" serve --litellm-config --port "${served##*:}" --provider runpod >"$work/litellm.yaml"
printf 'general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n' >>"$work/litellm.yaml"
QIE_GATEWAY_KEY=bench-gateway LITELLM_MASTER_KEY=sk-bench HOME="$work" NO_COLOR=1 \
  LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOCAL_BLOG_POSTS=True LITELLM_LOCAL_POLICY_TEMPLATES=True \
  LITELLM_LOCAL_AUTOROUTER_PRESETS=True LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS=True \
  .build/litellm/bin/litellm --config "$work/litellm.yaml" --host 127.0.0.1 --port 0 >"$work/litellm.out" 2>&1 &
proxy=$!
# uvicorn's "Uvicorn running on http://127.0.0.1:PORT" once the proxy has started.
proxied=$(listening_address "$work/litellm.out" "$proxy")
"$python" - "$served" "$endpoint" "$overhead_n" "$proxied" "$proxied_n" <<'PY'
import base64, io, json, os, statistics, sys, time, http.client, urllib.parse
import openai
from PIL import Image
served, endpoint, n, proxied, proxied_n = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
def jpeg(width, height):
    buffer = io.BytesIO()
    Image.effect_mandelbrot((width, height), (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
photo = jpeg(1024, 1280)
client = openai.OpenAI(base_url=served + "/v1", api_key="bench-gateway", max_retries=0)
host = urllib.parse.urlparse(endpoint)
connection = http.client.HTTPConnection(host.hostname, host.port)
body = json.dumps({"input": {"prompt": "bench", "images": ["data:image/jpeg;base64," + base64.b64encode(photo).decode()], "size": "1024*1280", "output_format": "jpeg"}})

def direct():
    connection.request("POST", "/v2/qwen-image-edit-2511/runsync", body, {"Authorization": "Bearer bench-key", "Content-Type": "application/json"})
    answer = json.loads(connection.getresponse().read())
    path = urllib.parse.urlparse(answer["output"]["image_url"]).path
    connection.request("GET", path)
    return connection.getresponse().read()

# The same multipart body the SDK sends, over the same kind of connection as
# the direct calls, so only the gateway differs between the two.
boundary = "qie-bench-boundary"
def multipart(photo, mask=None, model=b"runpod"): return b"".join([
    b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (boundary.encode(), name, value)
    for name, value in ((b"prompt", b"bench"), (b"model", model), (b"output_format", b"jpeg"))
]) + b"--%s\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\nContent-Type: application/octet-stream\r\n\r\n" % boundary.encode() + photo + (
    b"" if mask is None else
    b"\r\n--%s\r\nContent-Disposition: form-data; name=\"mask\"; filename=\"mask.png\"\r\nContent-Type: image/png\r\n\r\n" % boundary.encode() + mask
) + b"\r\n--%s--\r\n" % boundary.encode()

def mask_png(width, height):
    """An OpenAI-style mask: opaque (keep) but for a clear ellipse (edit) with a soft edge."""
    from PIL import ImageDraw, ImageFilter
    alpha = Image.new("L", (width, height), 255)
    ImageDraw.Draw(alpha).ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=0)
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    mask.putalpha(alpha.filter(ImageFilter.GaussianBlur(8)))
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return buffer.getvalue()
form = multipart(photo)
served_host = urllib.parse.urlparse(served)
served_connection = http.client.HTTPConnection(served_host.hostname, served_host.port)

def gateway(form=form):
    served_connection.request("POST", "/v1/images/edits", form, {
        "Authorization": "Bearer bench-gateway", "Content-Type": "multipart/form-data; boundary=" + boundary})
    answer = json.loads(served_connection.getresponse().read())
    return base64.b64decode(answer["data"][0]["b64_json"])

# The same request through the LiteLLM proxy, whose model names are the
# endpoints' ids; the direct side of each pair names the same id.
named = multipart(photo, model=b"runpod-qwen-image-edit-2511")
proxied_host = urllib.parse.urlparse(proxied)
proxied_connection = http.client.HTTPConnection(proxied_host.hostname, proxied_host.port)
def through_proxy():
    proxied_connection.request("POST", "/v1/images/edits", named, {
        "Authorization": "Bearer sk-bench", "Content-Type": "multipart/form-data; boundary=" + boundary})
    response = proxied_connection.getresponse()
    answer = json.loads(response.read())
    if response.status != 200 or response.getheader("x-litellm-response-cost") != "0.02":
        raise SystemExit("the proxy answered %d, cost %r: %s" % (response.status, response.getheader("x-litellm-response-cost"), answer))
    return base64.b64decode(answer["data"][0]["b64_json"])

def sdk():
    answer = client.images.edit(image=("photo.jpg", photo, "image/jpeg"), prompt="bench", model="runpod", output_format="jpeg")
    return base64.b64decode(answer.data[0].b64_json)

def timed(call):
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000

for call in (direct, gateway, sdk, through_proxy):  # warm every path
    for _ in range(3): call()
pairs = [(timed(direct), timed(gateway)) for _ in range(n)]
with_sdk = [timed(sdk) for _ in range(max(5, n // 10))]
padded = multipart(jpeg(1024, 768))
masked = multipart(jpeg(1024, 768), mask_png(1024, 768))
for body in (padded, masked):  # warm both
    for _ in range(3): gateway(body)
resized = [timed(lambda: gateway(padded)) for _ in range(max(5, n // 5))]
composited = [timed(lambda: gateway(masked)) for _ in range(max(5, n // 5))]
# The proxy (uvicorn) closes a connection idle for 5 s, as this one has been: a new one, warmed.
proxied_connection.close()
for _ in range(3): through_proxy()
proxied_pairs = [(timed(lambda: gateway(named)), timed(through_proxy)) for _ in range(proxied_n)]
def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

def compare(pairs, first, second, added, goals=("", "")):
    """Prints p50 and p99 of each side of `pairs` and of what the second adds; records the latter with its goals."""
    a = [x for x, _ in pairs]; b = [y for _, y in pairs]; diff = [y - x for x, y in pairs]
    for label, values in ((first, a), (second, b)):
        print("  %-23s p50 %.1f ms  p99 %.1f ms" % (label + ":", percentile(values, 50), percentile(values, 99)))
    goal = "  (goal %s / %s)" % goals if goals[0] else ""
    print("  %-23s p50 %.1f ms  p99 %.1f ms%s" % (added + ":", percentile(diff, 50), percentile(diff, 99), goal))
    if os.environ.get("QIE_BENCH_FIGURES"):
        with open(os.environ["QIE_BENCH_FIGURES"], "a") as out:
            for p, target in zip((50, 99), goals):
                out.write("%s p%d, 1.3 MP edit (ms)\t%s\t\t%s\n" % (added, p, percentile(diff, p), target))

print("== 1. overhead, 1.3 MP edit (1024x1280 JPEG, a size RunPod takes), no latency, %d edits each way" % n)
compare(pairs, "direct to the endpoint", "through qie serve", "gateway overhead", ("< 15 ms", "< 50 ms"))
print("  (the OpenAI Python SDK's own call through qie serve: p50 %.1f ms)" % percentile(with_sdk, 50))
print("  a 1024x768 photo, padded to 1280x1024 and restored: p50 %.1f ms  p99 %.1f ms through qie serve" % (percentile(resized, 50), percentile(resized, 99)))
print("  the same with a mask (PNG, soft alpha), composited: p50 %.1f ms  p99 %.1f ms through qie serve" % (percentile(composited, 50), percentile(composited, 99)))
if os.environ.get("QIE_BENCH_FIGURES"):
    with open(os.environ["QIE_BENCH_FIGURES"], "a") as out:
        out.write("gateway padded and restored p50, 1024x768 photo (ms)\t%s\t\t<= 70 ms\n" % percentile(resized, 50))
        out.write("gateway padded, restored and composited through a mask p50 (ms)\t%s\t\t<= 70 ms\n" % percentile(composited, 50))
print("  the same 1.3 MP edit through a LiteLLM proxy in front of qie serve, %d pairs:" % proxied_n)
compare(proxied_pairs, "qie serve directly", "through LiteLLM", "LiteLLM proxy overhead")
PY
kill "$proxy"
wait "$proxy" 2>/dev/null || true
proxy=""

start "$latency" "$clients"
"$python" scripts/bench-gateway-clients.py load "$served" "$clients" "$edits" "$latency"
# The gateway's own time per request, from its log: what it adds to the
# endpoint's latency, apart from the clients sharing the machine.
"$python" - "$work/gateway.log" "$latency" <<'PY'
import re, statistics, sys
seconds = [float(m.group(1)) for m in (re.search(r" seconds=([0-9.]+)", line) for line in open(sys.argv[1])) if m]
latency = float(sys.argv[2])
print("  in the gateway: mean %.3f s, max %.3f s per request = %.3fx the %.1f s latency"
      % (statistics.mean(seconds), max(seconds), statistics.mean(seconds) / latency, latency))
PY

# A fresh gateway, so its peak memory covers only the edits counted.
start 0 "$clients"
"$python" scripts/bench-gateway-clients.py memory "$served" "$clients" "$small" "$large" "$gateway"

# A long edit, streamed: the client hears from the gateway at once and every
# few seconds, whatever the endpoint's latency.
start "$stream_latency" 4
"$python" scripts/bench-gateway-clients.py stream "$served" 3 "$stream_latency"
