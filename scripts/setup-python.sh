#!/usr/bin/env bash
# Creates .venv with python-tuf (PyPI `tuf`, plus `cryptography` for key generation) for the
# interoperability tests and the benchmark. Idempotent and safe to run concurrently.
set -euo pipefail
cd "$(dirname "$0")/.."
TUF_VERSION="7.0.1"
exec 9>.venv.lock
flock 9
check() {
  [ -x .venv/bin/python ] && .venv/bin/python -c "
import sys, tuf, cryptography
sys.exit(0 if tuf.__version__ == '$TUF_VERSION' else 1)" 2>/dev/null
}
if check; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check "tuf==$TUF_VERSION" "cryptography>=42"
.venv/bin/python -c "import tuf; print('python-tuf', tuf.__version__, 'installed in .venv')"
