#!/usr/bin/env bash
# Serves the same repository from nginx and from an Updraft relay, each pinned to one core, with
# wrk on the other core, and prints requests/s and throughput side by side, with ratios.
# Installs nginx and wrk from Debian if missing. Everything listens on 127.0.0.1 and is stopped.
#   bench/relay-vs-nginx.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
SERVER_CPU=0
CLIENT_CPU=1
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  echo "installing nginx and wrk from Debian..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
fi
cargo build --release --locked -q -p updraft
U="$PWD/target/release/updraft"
W=$(mktemp -d /tmp/updraft-bench.XXXXXX)
chmod 755 "$W"   # nginx workers run as www-data
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

"$U" repo init "$W/repo" >/dev/null
head -c 65536 /dev/urandom > "$W/small.bin"
head -c 10485760 /dev/urandom > "$W/large.bin"
"$U" repo add "$W/repo" "$W/small.bin" --component bench.small --version 1.0 --kind pattern >/dev/null
"$U" repo add "$W/repo" "$W/large.bin" --component bench.large --version 1.0 --kind engine >/dev/null
"$U" repo publish "$W/repo" >/dev/null
"$U" relay --once --upstream "file://$W/repo" --trusted-root "$W/repo/metadata/1.root.json" --cache "$W/cache" >/dev/null
SMALL="targets/content/bench.small/1.0/$(sha256sum "$W/small.bin" | cut -c1-64).small.bin"
LARGE="targets/content/bench.large/1.0/$(sha256sum "$W/large.bin" | cut -c1-64).large.bin"

NGINX_PORT=18481
RELAY_PORT=18482
cat > "$W/nginx.conf" <<CONF
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 100000;
  types { application/json json; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $W/repo;
  }
}
CONF
taskset -c $SERVER_CPU nginx -c "$W/nginx.conf" -e "$W/nginx-error.log"
RUST_LOG=warn taskset -c $SERVER_CPU "$U" relay --offline --trusted-root "$W/repo/metadata/1.root.json" \
  --cache "$W/cache" --listen "127.0.0.1:$RELAY_PORT" >/dev/null &
PIDS+=($!)
for port in $NGINX_PORT $RELAY_PORT; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/metadata/timestamp.json" >/dev/null && break; sleep 0.05; done
done

# wrk on the other core; prints "requests/s bytes/s".
measure() {
  local url="$1"; shift
  local out
  out=$(taskset -c $CLIENT_CPU wrk -t1 -c32 -d"${DURATION}s" --latency "$@" "$url")
  local rps bps
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  bps=$(echo "$out" | awk '/Transfer\/sec/ {v=$2; u=substr(v, length(v)-1); n=substr(v, 1, length(v)-2); m=1; if (u=="KB") m=1024; else if (u=="MB") m=1048576; else if (u=="GB") m=1073741824; else {n=v; m=1}; printf "%.0f", n*m}')
  local non2xx
  non2xx=$(echo "$out" | awk '/Non-2xx or 3xx/ {print $NF}')
  if [ -n "$non2xx" ]; then echo "warning: $non2xx non-2xx/3xx responses from $url" >&2; fi
  echo "$rps $bps"
}
etag() { curl -sI "$1" | awk 'tolower($1)=="etag:" {print $2}' | tr -d '\r'; }

TS_SIZE=$(stat -c %s "$W/repo/metadata/timestamp.json")
printf "%-28s %14s %14s %8s   %14s %14s %8s\n" "case" "nginx req/s" "relay req/s" "ratio" "nginx MB/s" "relay MB/s" "ratio"
row() {
  local name="$1" path="$2" cond="${3:-}"
  local n r nh rh
  if [ -n "$cond" ]; then
    nh=$(etag "http://127.0.0.1:$NGINX_PORT/$path"); rh=$(etag "http://127.0.0.1:$RELAY_PORT/$path")
    n=$(measure "http://127.0.0.1:$NGINX_PORT/$path" -H "If-None-Match: $nh")
    r=$(measure "http://127.0.0.1:$RELAY_PORT/$path" -H "If-None-Match: $rh")
  else
    n=$(measure "http://127.0.0.1:$NGINX_PORT/$path")
    r=$(measure "http://127.0.0.1:$RELAY_PORT/$path")
  fi
  set -- $n $r
  awk -v name="$name" -v nr="$1" -v nb="$2" -v rr="$3" -v rb="$4" 'BEGIN {
    printf "%-28s %14.0f %14.0f %7.2fx   %14.1f %14.1f %7.2fx\n", name, nr, rr, rr/nr, nb/1048576, rb/1048576, (nb>0? rb/nb : 0) }'
}
row "timestamp.json (${TS_SIZE} B)" metadata/timestamp.json
row "timestamp.json 304" metadata/timestamp.json cond
row "64 KiB target" "$SMALL"
row "10 MiB target" "$LARGE"
echo "(${DURATION}s per case, wrk -t1 -c32 on CPU $CLIENT_CPU, servers on CPU $SERVER_CPU; goals: >=1.2x, >=1.0x on 304, >=0.9x throughput on 10 MiB)"
