#!/usr/bin/env bash
# Installs the Debian packages the tests use, if missing: ClamAV (the end-to-end consumer test),
# Chromium and its WebDriver (the console's browser tests), bsdiff (the delta bench's reference).
# Needs root (CI and these machines run as root) and the Debian package registry.
set -euo pipefail
need=()
command -v clamscan >/dev/null 2>&1 || need+=(clamav)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v bsdiff >/dev/null 2>&1 || need+=(bsdiff)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing ${need[*]} from Debian..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
