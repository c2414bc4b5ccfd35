//! Slowloris against the real servers under a low descriptor limit (`ulimit -n 128`): half-open
//! connections (nothing sent, or half a request) and, over TLS, connections that never send a
//! ClientHello. A normal request must still be answered within the header timeout (2 s here)
//! and a margin, the server must not flood its log with accept errors nor spin.
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use updraft::launch::{Launcher, Logs, Server as Launched};

use crate::common::*;

/// The descriptor limit the servers run under.
const NOFILE: u32 = 128;
/// Half-open connections opened: more than fit under the limit.
const ATTACKERS: usize = 125;
/// The timeouts the servers are started with (seconds).
const TIMEOUTS: [&str; 4] = ["--header-timeout", "2", "--handshake-timeout", "2"];
/// A normal request is answered within the header timeout and this margin.
const PROMPTLY: Duration = Duration::from_secs(6);

/// `updraft ARGS` under `ulimit -n NOFILE`, logging (RUST_LOG=warn) to `log`.
fn start_limited(args: &[&str], log: &Path) -> Launched {
    let script = format!("ulimit -n {NOFILE} && exec \"$0\" \"$@\"");
    let bin = bin();
    let mut all = vec!["-c", script.as_str(), bin.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend_from_slice(&TIMEOUTS);
    Launcher::new("/bin/sh")
        .server(&all, &[], Logs::File(log.to_path_buf()))
        .unwrap()
}

/// Open `n` connections to `base` and send `payload` on each (kept open until dropped).
fn attack(base: &str, n: usize, payload: &[u8]) -> Vec<TcpStream> {
    let addr = base.rsplit("://").next().unwrap();
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(payload).unwrap();
            s
        })
        .collect()
}

/// CPU seconds (user + system) the process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Under attack, `GET {base}/healthz` answers 200 promptly; the log stays small and the
/// process idle (while the request waits for a slot, a server retrying accept without backoff
/// would log and spin).
fn still_served(server: &Launched, log: &Path, client: reqwest::blocking::Client) {
    let pid = server.process.id().unwrap();
    let cpu_before = cpu_secs(pid);
    let t = Instant::now();
    let resp = client
        .get(format!("{}/healthz", server.base))
        .timeout(PROMPTLY + Duration::from_secs(10))
        .send();
    let took = t.elapsed();
    let resp = resp.unwrap_or_else(|e| panic!("{} was not answered: {e}", server.base));
    assert_eq!(resp.status(), 200);
    assert!(took < PROMPTLY, "{} answered after {took:?}", server.base);
    // A server spinning on accept errors would log and burn CPU all the while.
    let log_bytes = std::fs::metadata(log).unwrap().len();
    assert!(
        log_bytes < 1_000_000,
        "{} logged {log_bytes} bytes",
        server.base
    );
    let cpu = cpu_secs(pid) - cpu_before;
    assert!(cpu < 2.0, "{} used {cpu} s of CPU in {took:?}", server.base);
}

#[test]
fn half_open_connections_do_not_starve_the_origin_the_relay_or_the_manager() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let origin = Server::start(&repo.dir);
    let cache = tmp.path().join("cache");
    relay_once(&[&origin.base], &repo.root_v1, &cache).unwrap();
    origin.kill();
    let (root, cache) = (repo.root_v1.to_str().unwrap(), cache.to_str().unwrap());
    let db = format!("sqlite://{}", tmp.path().join("m.db").display());
    let listen = ["--listen", "127.0.0.1:0"];
    let servers: [(&str, Vec<&str>, &[u8]); 3] = [
        ("origin", vec!["serve", repo.dir.to_str().unwrap()], b""),
        (
            "relay",
            vec![
                "relay",
                "--offline",
                "--trusted-root",
                root,
                "--cache",
                cache,
            ],
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        ),
        ("manager", vec!["manager", "--db", &db], b"GET /heal"),
    ];
    for (name, mut args, payload) in servers {
        args.extend_from_slice(&listen);
        let log = tmp.path().join(format!("{name}.log"));
        let server = start_limited(&args, &log);
        let _held = attack(&server.base, ATTACKERS, payload);
        still_served(&server, &log, http());
    }
}

#[test]
fn tls_connections_without_a_client_hello_do_not_starve_the_manager() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (crt, key) = (tmp.path().join("m.crt"), tmp.path().join("m.key"));
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.key_pair.serialize_pem()).unwrap();
    let db = format!("sqlite://{}", tmp.path().join("m.db").display());
    let log = tmp.path().join("manager.log");
    let server = start_limited(
        &[
            "manager",
            "--db",
            &db,
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            crt.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &log,
    );
    let _held = attack(&server.base, ATTACKERS, b"");
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    still_served(&server, &log, client);
}
