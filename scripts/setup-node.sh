#!/usr/bin/env bash
# Installs what the console's browser tests inject into pages (axe-core, pinned by
# tests-browser/package-lock.json) from the npm registry, if missing. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../tests-browser"
if [ -f node_modules/axe-core/axe.min.js ]; then
  exit 0
fi
echo "installing axe-core from npm..." >&2
npm ci --no-audit --no-fund --silent
