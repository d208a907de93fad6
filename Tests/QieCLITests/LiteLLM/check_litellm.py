"""The real OpenAI Python SDK against a real LiteLLM proxy in front of `qie serve`.

Run by LiteLLMProxyTests with the environment:
  LITELLM_URL     the proxy's address (http://127.0.0.1:PORT)
  LITELLM_KEY     the proxy's master key
  QIE_IMAGES      a folder with wide.png (800x600)
The gateway offers runpod (2511, $0.02 per image) and runflow (2511, $0.03 per
output megapixel), so the proxy has three models from `qie serve
--litellm-config`, plus `wrong-key`, the runpod model with a gateway key qie
does not take. The emulator behind the gateway fails the first submission
(a job failure after it was accepted, so it may have been billed): the billed
failure is checked first.

Prints "ok NAME" per check and, for each edit, "edit NAME REQUEST_ID COST"
(qie's request id, as the proxy passes it on, and the cost the proxy reports),
which the test compares with qie's own log. Exits non-zero at the first failure.
"""

import base64
import io
import os
import sys

import openai
from PIL import Image

client = openai.OpenAI(base_url=os.environ["LITELLM_URL"] + "/v1", api_key=os.environ["LITELLM_KEY"], max_retries=0)
wide = os.path.join(os.environ["QIE_IMAGES"], "wide.png")


def check(condition, message):
    if not condition:
        print("FAILED " + message, flush=True)
        sys.exit(1)


def raw_edit(**fields):
    with open(wide, "rb") as image:
        return client.images.with_raw_response.edit(image=image, prompt="make it night", **fields)


def failure(name, expected, **fields):
    try:
        raw_edit(**fields)
    except openai.APIStatusError as error:
        check(isinstance(error, expected), "%s: %s (%s) instead of %s" % (name, type(error).__name__, error, expected.__name__))
        return error
    check(False, name + ": no error")


def edited(name, raw):
    """The answer's images, after printing its request id and cost for the test."""
    request_id = raw.headers.get("llm_provider-x-request-id")
    cost = raw.headers.get("x-litellm-response-cost")
    check(request_id and request_id.startswith("req_"), "%s: qie's request id is not passed on: %r" % (name, dict(raw.headers)))
    print("edit %s %s %s" % (name, request_id, cost), flush=True)
    answer = raw.parse()
    return answer, [Image.open(io.BytesIO(base64.b64decode(item.b64_json))) for item in answer.data]


# The endpoint accepts the edit and its job fails: qie answers 502 with
# x-should-retry: false and says what may have been billed. The proxy's router
# retries 5xx answers unless the model says num_retries: 0, which the printed
# configuration does: one request reaches qie (the test counts them).
error = failure("billed failure", openai.InternalServerError, model="runpod-qwen-image-edit-2511")
check(error.status_code == 502 and "billed" in str(error), "billed failure: %s %s" % (error.status_code, error))
print("ok billed failure", flush=True)

# n=2 at a size RunPod does not take: two PNGs of exactly that size, $0.04.
raw = raw_edit(model="runpod-qwen-image-edit-2511", n=2, size="1024x768")
answer, pictures = edited("n=2", raw)
check(len(pictures) == 2, "n=2: %d images" % len(pictures))
check(all(p.format == "PNG" and p.size == (1024, 768) for p in pictures), "n=2: %s" % [(p.format, p.size) for p in pictures])
check(raw.headers.get("x-litellm-response-cost") == "0.04", "n=2: the proxy's cost %r" % raw.headers.get("x-litellm-response-cost"))
# What the proxy passes on of the answer: OpenAI's fields and usage, not qie's own object.
check(answer.size == "1024x768" and answer.output_format == "png", "n=2: fields %s %s" % (answer.size, answer.output_format))
check(answer.usage is not None and (answer.usage.model_extra or {}).get("images") == 2, "n=2: usage %r" % answer.usage)
check("qie" not in (answer.model_extra or {}), "n=2: the proxy now passes qie's object on: update the README")
print("ok n=2", flush=True)

# Per output megapixel: the cost is what qie charged for the size it sent
# (planned near 1 MP), not the answer's 800x600; the test compares it with qie's log.
raw = raw_edit(model="runflow-qwen-image-edit-2511")
_, pictures = edited("per megapixel", raw)
check(len(pictures) == 1 and pictures[0].size == (800, 600), "per megapixel: %s" % [p.size for p in pictures])
print("ok per megapixel", flush=True)

# The release, routed by qie among both endpoints.
raw = raw_edit(model="qwen-image-edit-2511", output_format="jpeg")
_, pictures = edited("release", raw)
check(len(pictures) == 1 and pictures[0].format == "JPEG" and pictures[0].size == (800, 600), "release: %s" % pictures)
print("ok release", flush=True)

# A size qie refuses: 400 from qie, BadRequestError from the proxy, not retried.
error = failure("bad size", openai.BadRequestError, model="runpod-qwen-image-edit-2511", size="7x7")
check(error.status_code == 400 and "size" in str(error), "bad size: %s %s" % (error.status_code, error))
print("ok bad size", flush=True)

# The proxy holding a gateway key qie does not take: 401, AuthenticationError.
error = failure("wrong gateway key", openai.AuthenticationError, model="wrong-key")
check(error.status_code == 401 and "gateway key" in str(error), "wrong gateway key: %s %s" % (error.status_code, error))
print("ok wrong gateway key", flush=True)
