#!/usr/bin/env bash
# Installs the real LiteLLM proxy into a virtual environment at .build/litellm,
# pinned by Tests/QieCLITests/LiteLLM/requirements.txt, for the test that puts
# `qie serve` behind it and for the gateway benchmark's LiteLLM row. Safe to
# run again: it installs nothing when the environment already matches the
# requirements. About 760 MB and two minutes the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=Tests/QieCLITests/LiteLLM/requirements.txt
venv=.build/litellm
if [ -x "$venv/bin/litellm" ] && cmp -s "$requirements" "$venv/requirements.txt"; then
  exit 0
fi
# The test drives the proxy with the OpenAI SDK: that script installs it, and
# python3 with its venv module, which this environment needs as well.
scripts/ensure-openai-sdk.sh
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
cp "$requirements" "$venv/requirements.txt"
echo "installed the LiteLLM proxy into $venv" >&2
