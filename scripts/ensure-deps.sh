#!/usr/bin/env bash
# Installs what building qie needs, if it is missing: the C libraries (with
# their pkg-config files) from Debian/Ubuntu packages, and the tools named as
# arguments (benchmarks' reference tools; chromium, python3 and postgresql for
# the tests). Swift packages come through Package.swift. Safe to run again: it
# installs nothing when all is there.
set -euo pipefail

missing=()
pkg-config --exists vips 2>/dev/null || missing+=(libvips-dev)
pkg-config --exists libpng 2>/dev/null || missing+=(libpng-dev)
pkg-config --exists libjpeg 2>/dev/null || missing+=(libjpeg-dev)
pkg-config --exists libwebpmux 2>/dev/null || missing+=(libwebp-dev)
pkg-config --exists sqlite3 2>/dev/null || missing+=(libsqlite3-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
for tool in "$@"; do
  case "$tool" in
    vipsthumbnail) command -v vipsthumbnail >/dev/null 2>&1 || missing+=(libvips-tools) ;;
    convert) dpkg -s imagemagick >/dev/null 2>&1 || missing+=(imagemagick) ;;
    hyperfine) command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine) ;;
    time) [ -x /usr/bin/time ] || missing+=(time) ;;
    chromium) [ -x /usr/bin/chromium ] || missing+=(chromium) ;;
    python3) command -v python3 >/dev/null 2>&1 || missing+=(python3) ;;
    postgresql) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql) ;;
  esac
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "qie needs: ${missing[*]} (Debian/Ubuntu package names); install them with your package manager" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
