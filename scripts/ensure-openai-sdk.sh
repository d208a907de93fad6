#!/usr/bin/env bash
# Installs the real OpenAI Python SDK (and Pillow) into a virtual environment
# at .build/openai-sdk, pinned by Tests/QieCLITests/OpenAISDK/requirements.txt,
# for the test that drives `qie serve` with it. Safe to run again: it installs
# nothing when the environment already matches the requirements.
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=Tests/QieCLITests/OpenAISDK/requirements.txt
venv=.build/openai-sdk
if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$venv/requirements.txt"; then
  exit 0
fi
scripts/ensure-deps.sh python3
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: python3-venv" >&2
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
cp "$requirements" "$venv/requirements.txt"
echo "installed the OpenAI SDK into $venv" >&2
