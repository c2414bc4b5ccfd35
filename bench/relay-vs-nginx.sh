#!/usr/bin/env bash
# Serves the same repository from nginx and from an Updraft relay (plain HTTP and HTTPS with the
# same certificate), each pinned to one core, with the load on the other core, and prints
# requests/s, throughput and latency side by side, with ratios. Cases: small and large files,
# conditional GETs (304), HTTPS with keep-alive and with a new TLS handshake per request,
# 10,000 concurrent keep-alive connections polling timestamp.json with conditional GETs
# (p50/p99 at a fixed polling rate), and the release burst (1,000 clients fetching one 10 MiB target at once).
# Installs nginx and wrk from Debian if missing. Everything listens on 127.0.0.1 and is stopped.
#   bench/relay-vs-nginx.sh [SECONDS] [CONNECTIONS_FOR_THE_POLLING_CASE] [BURST_CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
POLLERS="${2:-10000}"
BURST="${3:-1000}"
# The polling case: each connection polls every POLL_EVERY_MS for POLL_SECONDS (10,000 agents
# every 2 s offer 5,000 requests/s; a one-core client cannot offer more and measure fairly).
POLL_EVERY_MS="${POLL_EVERY_MS:-2000}"
POLL_SECONDS="${POLL_SECONDS:-10}"
SERVER_CPU=0
CLIENT_CPU=1
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  echo "installing nginx and wrk from Debian..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
fi
cargo build --release --locked -q -p updraft
LOAD_BIN=$(cargo bench --locked -p updraft --bench load --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\)).*/\1/p' | tail -1)
U="$PWD/target/release/updraft"
# 10,000 connections need 10,000 descriptors in each server and in wrk.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
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
# One certificate for both servers (a benchmark fixture; the servers' TLS is rustls and nginx's own).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null
chmod 644 "$W/key.pem"   # read by nginx's workers (www-data) in this throwaway directory
SMALL="targets/content/bench.small/1.0/$(sha256sum "$W/small.bin" | cut -c1-64).small.bin"
LARGE="targets/content/bench.large/1.0/$(sha256sum "$W/large.bin" | cut -c1-64).large.bin"

NGINX_PORT=18481
RELAY_PORT=18482
NGINX_TLS_PORT=18483
RELAY_TLS_PORT=18484
cat > "$W/nginx.conf" <<CONF
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
worker_rlimit_nofile 30000;
events { worker_connections 20000; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 100000;
  types { application/json json; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    listen 127.0.0.1:$NGINX_TLS_PORT ssl backlog=4096;
    # The relay (rustls) offers TLS 1.3 first; Debian's nginx 1.22 would stop at 1.2 by default.
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate $W/cert.pem;
    ssl_certificate_key $W/key.pem;
    root $W/repo;
  }
}
CONF
taskset -c $SERVER_CPU nginx -c "$W/nginx.conf" -e "$W/nginx-error.log"
RUST_LOG=warn taskset -c $SERVER_CPU "$U" relay --offline --trusted-root "$W/repo/metadata/1.root.json" \
  --cache "$W/cache" --listen "127.0.0.1:$RELAY_PORT" >/dev/null &
PIDS+=($!)
RUST_LOG=warn taskset -c $SERVER_CPU "$U" relay --offline --trusted-root "$W/repo/metadata/1.root.json" \
  --cache "$W/cache" --listen "127.0.0.1:$RELAY_TLS_PORT" --tls-cert "$W/cert.pem" --tls-key "$W/key.pem" >/dev/null &
PIDS+=($!)
for port in $NGINX_PORT $RELAY_PORT; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/metadata/timestamp.json" >/dev/null && break; sleep 0.05; done
done
for port in $NGINX_TLS_PORT $RELAY_TLS_PORT; do
  for _ in $(seq 100); do curl -sfk "https://127.0.0.1:$port/metadata/timestamp.json" >/dev/null && break; sleep 0.05; done
done

# wrk on the other core; prints "requests/s bytes/s p50_ms p99_ms errors" (errors: socket errors,
# timeouts and answers other than 2xx/3xx).
measure() {
  local conns="$1" url="$2"; shift 2
  local out
  out=$(taskset -c $CLIENT_CPU wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 10s --latency "$@" "$url")
  echo "$out" | awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    function bytes(v,  u, n) { u=substr(v, length(v)-1); n=substr(v, 1, length(v)-2);
      if (u=="KB") return n*1024; if (u=="MB") return n*1048576; if (u=="GB") return n*1073741824; return v+0 }
    /Requests\/sec/ { rps=$2 } /Transfer\/sec/ { bps=bytes($2) }
    $1=="50%" { p50=ms($2) } $1=="99%" { p99=ms($2) }
    /Socket errors/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx/ { err += $NF }
    END { printf "%s %.0f %.3f %.3f %d\n", rps, bps, p50, p99, err+0 }'
}
etag() { curl -sIk "$1" | awk 'tolower($1)=="etag:" {print $2}' | tr -d '\r'; }

TS_SIZE=$(stat -c %s "$W/repo/metadata/timestamp.json")
printf "%-34s %11s %11s %7s  %9s %9s  %9s %9s %7s\n" "case" "nginx req/s" "relay req/s" "ratio" \
  "nginx MB/s" "relay MB/s" "p99 nginx" "p99 relay" "errors"
# row NAME CONNECTIONS PATH [cond] [tls] [close]: the same load against both servers.
row() {
  local name="$1" conns="$2" path="$3"; shift 3
  local cond="" scheme=http np=$NGINX_PORT rp=$RELAY_PORT extra=()
  for opt in "$@"; do
    case $opt in
      cond) cond=1 ;;
      tls) scheme=https np=$NGINX_TLS_PORT rp=$RELAY_TLS_PORT ;;
      close) extra+=(-H "Connection: close") ;;
    esac
  done
  local nu="$scheme://127.0.0.1:$np/$path" ru="$scheme://127.0.0.1:$rp/$path" n r
  if [ -n "$cond" ]; then
    n=$(measure "$conns" "$nu" -H "If-None-Match: $(etag "$nu")" "${extra[@]}")
    r=$(measure "$conns" "$ru" -H "If-None-Match: $(etag "$ru")" "${extra[@]}")
  else
    n=$(measure "$conns" "$nu" "${extra[@]}")
    r=$(measure "$conns" "$ru" "${extra[@]}")
  fi
  set -- $n $r
  awk -v name="$name" -v nr="$1" -v nb="$2" -v n99="$4" -v ne="$5" -v rr="$6" -v rb="$7" -v r99="$9" -v re="${10}" 'BEGIN {
    printf "%-34s %11.0f %11.0f %6.2fx  %9.1f %9.1f  %7.2fms %7.2fms %3d/%-3d\n",
      name, nr, rr, (nr>0? rr/nr : 0), nb/1048576, rb/1048576, n99, r99, ne, re }'
}
row "timestamp.json (${TS_SIZE} B)" 32 metadata/timestamp.json
row "timestamp.json 304" 32 metadata/timestamp.json cond
row "64 KiB target" 32 "$SMALL"
row "10 MiB target" 32 "$LARGE"
row "https timestamp.json keep-alive" 32 metadata/timestamp.json tls
row "timestamp.json connection/req" 32 metadata/timestamp.json close
row "https timestamp.json handshake/req" 32 metadata/timestamp.json tls close
row "$POLLERS conns flat out 304" "$POLLERS" metadata/timestamp.json cond
echo "(${DURATION}s per case, wrk -t1 on CPU $CLIENT_CPU, servers on CPU $SERVER_CPU; errors nginx/relay;"
echo " goals: >=1.0x nginx req/s on every case, no errors. Flat out, latency is connections / rate.)"

# A fleet polling: POLLERS keep-alive connections, each a conditional GET every POLL_EVERY_MS.
echo
echo "$POLLERS keep-alive connections, each polling timestamp.json (If-None-Match) every ${POLL_EVERY_MS} ms for ${POLL_SECONDS}s"
echo "(goal: p99 < 50 ms, no errors)"
for s in nginx:$NGINX_PORT relay:$RELAY_PORT; do
  u="http://127.0.0.1:${s#*:}/metadata/timestamp.json"
  printf "%-6s " "${s%%:*}"
  taskset -c $CLIENT_CPU "$LOAD_BIN" poll "$u" "$POLLERS" "$POLL_SECONDS" "$POLL_EVERY_MS" "$(etag "$u")"
done

# The release burst: BURST clients fetch the 10 MiB target at the same instant, each on its own
# connection; time to the last byte per client.
echo
echo "release burst: $BURST clients fetch one 10 MiB target at once"
for s in nginx:$NGINX_PORT relay:$RELAY_PORT; do
  printf "%-6s " "${s%%:*}"
  taskset -c $CLIENT_CPU "$LOAD_BIN" burst "http://127.0.0.1:${s#*:}/$LARGE" "$BURST" 10485760
done
