#!/usr/bin/env bash
# The two machine programs the test suite drives for real: nginx (the forward-auth test) and
# Chromium (the web page's end-to-end test, through playwright-core; never a downloaded browser).
# Installs whichever is missing from Debian's packages when it can (root with apt-get), so
# `npm test` works on a fresh machine; otherwise says what to install and fails.
set -euo pipefail
export PATH="$PATH:/usr/sbin"   # Debian keeps nginx in /usr/sbin, which not every PATH lists.

missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "the test suite needs: ${missing[*]} (Debian: apt-get install --no-install-recommends ${missing[*]})" >&2
  exit 1
fi
echo "installing ${missing[*]} for the test suite (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
if [[ " ${missing[*]} " == *" nginx "* ]]; then
  # The package may start the system nginx on port 80; the test starts its own. Best effort.
  { service nginx stop || systemctl stop nginx || true; } >/dev/null 2>&1
  { systemctl disable nginx || update-rc.d nginx disable || true; } >/dev/null 2>&1
fi
