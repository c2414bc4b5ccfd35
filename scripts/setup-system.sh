#!/usr/bin/env bash
# Installs the Debian packages the tests use (ClamAV for the end-to-end consumer test), if missing.
# Needs root (CI and these machines run as root) and the Debian package registry.
set -euo pipefail
need=()
command -v clamscan >/dev/null 2>&1 || need+=(clamav)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing ${need[*]} from Debian..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
