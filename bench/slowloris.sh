#!/bin/sh
# Slowloris numbers of issue 11 section 1 (see bench/slowloris.py): one JSON line per server.
#   bench/slowloris.sh [UPDRAFT_BINARY] [slowloris.py options, e.g. --extra '--header-timeout 2']
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../target/release/updraft}
[ $# -gt 0 ] && shift
exec python3 "$here/slowloris.py" "$bin" "$@"
