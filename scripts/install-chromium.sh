#!/usr/bin/env bash
# Headless Chromium for the report tests (tests/local/test_report_html.py), from Debian's
# packages. Needs root (apt-get); a no-op when a chromium is already on PATH.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium already installed: $(command -v chromium)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-chromium.sh: run as root (apt-get install chromium), or skip the report screenshot tests" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "chromium installed: $(command -v chromium)"
