#!/usr/bin/env bash
# Creates .venv with python-tuf (PyPI `tuf`) for the interoperability tests and the benchmark.
# Idempotent: does nothing when the venv already has the pinned version.
set -euo pipefail
cd "$(dirname "$0")/.."
TUF_VERSION="7.0.1"
if [ -x .venv/bin/python ] && .venv/bin/python -c "import tuf, sys; sys.exit(0 if tuf.__version__ == '$TUF_VERSION' else 1)" 2>/dev/null; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check "tuf==$TUF_VERSION"
.venv/bin/python -c "import tuf; print('python-tuf', tuf.__version__, 'installed in .venv')"
