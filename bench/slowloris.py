#!/usr/bin/env python3
"""Slowloris against the real servers (origin, relay, manager; plain and TLS) under a low
descriptor limit: the numbers of issue 11 section 1, before and after. Rerun with
bench/slowloris.sh [UPDRAFT_BINARY]. Standard library only; everything on 127.0.0.1.

For each server: start it under `ulimit -n LIMIT`, open ATTACK connections that send nothing
or half a request line (or, over TLS, no ClientHello), then time one normal request (bounded
by --deadline), and report the connections the server held, whether the request succeeded and
how long it took, the bytes the server logged and its CPU seconds over the attack window.
"""
import argparse, json, os, socket, ssl, subprocess, sys, tempfile, time, urllib.request

def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout

def start(binary, args, log, limit):
    script = f'ulimit -n {limit} && exec "$0" "$@"'
    p = subprocess.Popen(["sh", "-c", script, binary, *args], stdout=subprocess.PIPE,
                         stderr=open(log, "wb"), env={**os.environ, "RUST_LOG": "info"})
    line = p.stdout.readline().decode()
    base = next(w for w in line.split() if w.startswith(("http://", "https://")))
    scheme, rest = base.split("://", 1)
    return p, f"{scheme}://{rest.split('/')[0]}"

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def attack(host, port, n, payload):
    held = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((host, port))
            if payload:
                s.sendall(payload)
            held.append(s)
        except OSError:
            s.close()
    return held

def still_open(socks):
    """Connections the server has not closed (a read would block, not return EOF)."""
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            n += 1 if s.recv(1) else 0
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n

def timed_get(url, deadline):
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    t = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=deadline, context=ctx) as r:
            r.read()
            ok = r.status == 200
    except Exception as e:  # noqa: BLE001 - reported as the outcome
        ok = f"failed: {type(e).__name__}: {e}"
    return ok, time.monotonic() - t

def measure(name, binary, args, path, payload, opts, tmp):
    log = os.path.join(tmp, f"{name}.log")
    p, base = start(binary, args, log, opts.limit)
    try:
        host, port = base.split("://")[1].split(":")
        cpu0 = cpu_seconds(p.pid)
        socks = attack(host, int(port), opts.attack, payload)
        time.sleep(opts.hold)
        ok, took = timed_get(base + path, opts.deadline)
        held = still_open(socks)
        time.sleep(opts.window)
        row = dict(server=name, opened=len(socks), held_after_request=held, request_ok=ok,
                   request_secs=round(took, 2), log_bytes=os.path.getsize(log),
                   cpu_secs=round(cpu_seconds(p.pid) - cpu0, 2))
        for s in socks:
            s.close()
        return row
    finally:
        p.kill()
        p.wait()

def setup(binary, tmp):
    repo = os.path.join(tmp, "repo")
    run(binary, "repo", "init", repo)
    f = os.path.join(tmp, "pattern.dat")
    open(f, "wb").write(b"pattern")
    run(binary, "repo", "add", repo, f, "--component", "antimalware.pattern",
        "--version", "1.0.0", "--kind", "pattern")
    run(binary, "repo", "publish", repo)
    cache, root = os.path.join(tmp, "cache"), os.path.join(repo, "metadata/1.root.json")
    run(binary, "relay", "--once", "--trusted-root", root, "--cache", cache,
        "--upstream", f"file://{repo}")
    key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1")
    return repo, root, cache, cert, key

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--limit", type=int, default=128, help="descriptor limit (ulimit -n)")
    ap.add_argument("--attack", type=int, default=120, help="half-open connections")
    ap.add_argument("--hold", type=float, default=1.0, help="seconds before the request")
    ap.add_argument("--deadline", type=float, default=30.0, help="request timeout (s)")
    ap.add_argument("--window", type=float, default=5.0, help="extra seconds of observation")
    ap.add_argument("--extra", default="", help="extra server flags, e.g. '--header-timeout 2'")
    opts = ap.parse_args()
    extra = opts.extra.split()
    with tempfile.TemporaryDirectory() as tmp:
        repo, root, cache, cert, key = setup(opts.binary, tmp)
        db = lambda n: f"sqlite://{tmp}/{n}.db"
        listen = ["--listen", "127.0.0.1:0"]
        half = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        cases = [
            ("origin", ["serve", repo, *listen], "/healthz", b""),
            ("relay", ["relay", "--offline", "--trusted-root", root, "--cache", cache, *listen],
             "/healthz", half),
            ("manager", ["manager", "--db", db("plain"), *listen], "/healthz", half),
            ("manager-tls", ["manager", "--db", db("tls"), *listen, "--tls-cert", cert,
                             "--tls-key", key], "/healthz", b""),
        ]
        for name, args, path, payload in cases:
            print(json.dumps(measure(name, opts.binary, args + extra, path, payload, opts, tmp)),
                  flush=True)

if __name__ == "__main__":
    main()
