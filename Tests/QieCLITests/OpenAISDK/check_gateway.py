"""The real OpenAI Python SDK against `qie serve` (backed by `qie emulate`).

Run by GatewaySDKTests with the environment:
  QIE_GATEWAY_URL   the gateway's address (http://127.0.0.1:PORT)
  QIE_GATEWAY_KEY   a gateway key it accepts
  QIE_ENDPOINT_KEY  the endpoint key, which must appear in no answer
  QIE_IMAGES        a folder with wide.jpg (800x600) and tall.png (480x640)
Prints "ok NAME" per check and exits non-zero at the first failure.
"""

import base64
import io
import os
import sys
import urllib.request

import openai
from PIL import Image

base = os.environ["QIE_GATEWAY_URL"]
key = os.environ["QIE_GATEWAY_KEY"]
endpoint_key = os.environ["QIE_ENDPOINT_KEY"]
images = os.environ["QIE_IMAGES"]
wide = os.path.join(images, "wide.jpg")
tall = os.path.join(images, "tall.png")

client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def check(condition, message):
    if not condition:
        print("FAILED " + message, flush=True)
        sys.exit(1)


def decoded(item):
    return Image.open(io.BytesIO(base64.b64decode(item.b64_json)))


def no_key(response, name):
    check(endpoint_key not in response.model_dump_json(), name + ": the endpoint key is in the answer")


def edit(**fields):
    with open(fields.pop("path", wide), "rb") as image:
        return client.images.edit(image=image, **fields)


# One file as `image`: PNG (OpenAI's default) at the input's own size.
response = edit(prompt="make it night", model="runpod")
check(len(response.data) == 1, "one image: %d results" % len(response.data))
picture = decoded(response.data[0])
check(picture.format == "PNG" and picture.size == (800, 600), "one image: %s %s" % (picture.format, picture.size))
check(response.output_format == "png" and response.size == "800x600", "one image: fields %s %s" % (response.output_format, response.size))
extra = response.model_extra or {}
check(extra.get("qie", {}).get("cost_usd") == "0.02", "one image: qie cost %r" % extra.get("qie"))
no_key(response, "one image")
print("ok one image", flush=True)

# A list of one (the SDK sends it as image[]), with its raw answer for the cost header.
with open(wide, "rb") as image:
    raw = client.images.with_raw_response.edit(image=[image], prompt="make it night", model="runpod")
check(raw.headers.get("x-litellm-response-cost") == "0.02", "list of one: cost header %r" % raw.headers.get("x-litellm-response-cost"))
check(len(raw.parse().data) == 1, "list of one: results")
print("ok list of one", flush=True)

# Three images: the first is edited, the others go along as references.
with open(wide, "rb") as a, open(tall, "rb") as b, open(wide, "rb") as c:
    response = client.images.edit(image=[a, b, c], prompt="combine them", model="lumenfall")
check(len(response.data) == 1 and decoded(response.data[0]).size == (800, 600), "three images")
print("ok three images", flush=True)

# n=3 on an endpoint without a count field: three requests, three images.
response = edit(prompt="three takes", model="runpod", n=3)
check(len(response.data) == 3, "n=3: %d results" % len(response.data))
check(len(set(response.model_extra["qie"]["request_ids"])) == 3, "n=3: request ids")
print("ok n=3", flush=True)

# response_format=url: downloaded from the gateway and checked.
response = edit(prompt="make it night", model="runpod", response_format="url", output_format="jpeg")
url = response.data[0].url
check(url.startswith(base + "/v1/files/"), "url: %s" % url)
with urllib.request.urlopen(url) as answer:
    check(answer.headers["Content-Type"] == "image/jpeg", "url: content type %s" % answer.headers["Content-Type"])
    picture = Image.open(io.BytesIO(answer.read()))
check(picture.format == "JPEG" and picture.size == (800, 600), "url: %s %s" % (picture.format, picture.size))
print("ok url", flush=True)

# WebP from an endpoint that makes only PNG or JPEG: converted by the gateway.
response = edit(prompt="make it night", model="runpod-edit", output_format="webp")
check(decoded(response.data[0]).format == "WEBP" and response.output_format == "webp", "webp")
print("ok webp converted", flush=True)

# size=1024x1536 on RunPod 2511: exactly that size back.
response = edit(prompt="make it night", model="runpod-qwen-image-edit-2511", size="1024x1536", path=tall)
check(decoded(response.data[0]).size == (1024, 1536), "size: %s" % (decoded(response.data[0]).size,))
check(response.size == "1024x1536", "size field: %s" % response.size)
print("ok size 1024x1536", flush=True)

# Errors: the SDK's typed exceptions, with the field in `param`.
try:
    edit(prompt="x", model="runpod", n=0)
    check(False, "n=0 was accepted")
except openai.BadRequestError as error:
    check(error.status_code == 400 and error.param == "n", "n=0: %s %s" % (error.status_code, error.param))
try:
    edit(prompt="x", model="dall-e-2")
    check(False, "an unknown model was accepted")
except openai.NotFoundError as error:
    check(error.param == "model" and error.code == "model_not_found", "unknown model: %s %s" % (error.param, error.code))
try:
    client.images.edit(image=("notes.png", b"these are words, not pixels", "image/png"), prompt="x")
    check(False, "text as an image was accepted")
except openai.BadRequestError as error:
    check(error.param == "image" and "not an image" in error.message, "text as image: %s" % error.message)
try:
    edit(prompt="x", background="transparent")
    check(False, "background=transparent was accepted")
except openai.BadRequestError as error:
    check(error.param == "background", "transparent: %s" % error.param)
try:
    openai.OpenAI(base_url=base + "/v1", api_key="not-a-gateway-key", max_retries=0).images.edit(
        image=open(wide, "rb"), prompt="x")
    check(False, "a wrong gateway key was accepted")
except openai.AuthenticationError as error:
    check(error.status_code == 401, "wrong key: %s" % error.status_code)
    check(endpoint_key not in str(error.body), "wrong key: the endpoint key is in the error")
print("ok errors", flush=True)

# Idempotency-Key: the retry is the first answer (same request id), not a second request.
first = edit(prompt="once only", model="runpod", extra_headers={"Idempotency-Key": "sdk-retry-1"})
again = edit(prompt="once only", model="runpod", extra_headers={"Idempotency-Key": "sdk-retry-1"})
ids = (first.model_extra["qie"]["request_ids"], again.model_extra["qie"]["request_ids"])
check(ids[0] == ids[1] and len(ids[0]) == 1, "idempotency: request ids %r" % (ids,))
check(first.data[0].b64_json == again.data[0].b64_json, "idempotency: different images")
print("ok idempotency", flush=True)

# stream=True: the SDK's stream of image_edit.completed events, one per image.
with open(wide, "rb") as image:
    events = list(client.images.edit(image=image, prompt="make it night", model="runpod", n=2, stream=True))
check([event.type for event in events] == ["image_edit.completed"] * 2, "stream: %r" % [event.type for event in events])
check(all(Image.open(io.BytesIO(base64.b64decode(event.b64_json))).size == (800, 600) for event in events), "stream: images")
print("ok stream", flush=True)

# A mask keeping the left half of the input: the edit (a negative, from
# `qie emulate --effect negative`) only shows on the right.
mask = Image.new("RGBA", (800, 600), (0, 0, 0, 0))
mask.paste((0, 0, 0, 255), (0, 0, 400, 600))
mask_bytes = io.BytesIO()
mask.save(mask_bytes, "PNG")
with open(wide, "rb") as image:
    response = client.images.edit(image=image, mask=("mask.png", mask_bytes.getvalue(), "image/png"),
                                  prompt="edit the right half", model="runpod")
result = decoded(response.data[0]).convert("RGB")
source = Image.open(wide).convert("RGB")
check(result.size == (800, 600), "mask: size %s" % (result.size,))
for x, y in ((50, 100), (350, 500)):
    check(all(abs(a - b) <= 4 for a, b in zip(result.getpixel((x, y)), source.getpixel((x, y)))),
          "mask: kept at %d,%d: %s vs %s" % (x, y, result.getpixel((x, y)), source.getpixel((x, y))))
for x, y in ((450, 100), (750, 500)):
    check(all(abs(a - (255 - b)) <= 24 for a, b in zip(result.getpixel((x, y)), source.getpixel((x, y)))),
          "mask: edited at %d,%d: %s vs %s" % (x, y, result.getpixel((x, y)), source.getpixel((x, y))))
print("ok mask", flush=True)

# The models list in OpenAI's shape.
models = [model.id for model in client.models.list()]
check("runpod-qwen-image-edit-2511" in models and "lumenfall-qwen-image-edit-2511" in models, "models: %r" % models)
print("ok models", flush=True)
print("all checks passed", flush=True)
