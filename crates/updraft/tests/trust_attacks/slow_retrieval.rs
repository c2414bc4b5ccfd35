//! Slow retrieval: a relay that accepts the connection and then sends nothing, or sends its
//! headers and then drips one byte a second, must not hold an agent or a child relay for the
//! request timeout. The real `updraft agent --once` and `updraft relay --once` are pointed at
//! such a server (started here on 127.0.0.1) with a good source after it; they must fail over
//! within the configured first-byte / stall bounds, install from the good source, and report
//! why the slow one was left.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::*;

const PATTERN: &str = "antimalware.pattern";
/// Loose sanity bound on a whole `--once` run with 2 s bounds (the property is the failover
/// and the reported reason; without the bounds a run would take 300 s or never end).
const BOUND: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
enum Mode {
    /// Accept, read the request, answer nothing.
    Silent,
    /// A 200 header announcing 100 000 bytes, then one byte a second.
    Drip,
}

/// A hostile HTTP server on 127.0.0.1. It stops when dropped, and by itself after 90 s.
struct Hostile {
    base: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hostile {
    fn start(mode: Mode) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(90);
            let mut conns = Vec::new();
            while !flag.load(Ordering::SeqCst) && Instant::now() < end {
                match listener.accept() {
                    Ok((s, _)) => {
                        let f = flag.clone();
                        conns.push(std::thread::spawn(move || serve(s, mode, &f, end)));
                    }
                    // Poll for new connections and for the stop flag.
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            flag.store(true, Ordering::SeqCst);
            for c in conns {
                let _ = c.join();
            }
        });
        Hostile {
            base,
            stop,
            thread: Some(thread),
        }
    }
}

/// One connection: hold it open doing `mode` until the client leaves, the server is stopped,
/// or `end`.
fn serve(mut s: TcpStream, mode: Mode, stop: &AtomicBool, end: Instant) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
    if let Mode::Drip = mode {
        if s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
        )
        .is_err()
        {
            return;
        }
    }
    let mut last = Instant::now();
    while !stop.load(Ordering::SeqCst) && Instant::now() < end {
        match mode {
            Mode::Silent => {
                // Returns after the read timeout; 0 bytes means the client closed.
                if matches!(s.read(&mut buf), Ok(0)) {
                    return;
                }
            }
            Mode::Drip => {
                std::thread::sleep(Duration::from_millis(200));
                if last.elapsed() >= Duration::from_secs(1) {
                    last = Instant::now();
                    if s.write_all(b" ").is_err() {
                        return;
                    }
                }
            }
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An agent configuration with `relays`, 2 s bounds for slow sources.
fn config(bed: &AgentBed, relays: Vec<String>) -> std::path::PathBuf {
    let cfg = bed.config(&AgentOpts {
        relays,
        ..bed.opts()
    });
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("first_byte_timeout = 2\nstall_timeout = 2\n{text}"),
    )
    .unwrap();
    cfg
}

/// The agent leaves the slow relay, installs from the good one and names the slow one with
/// `reason` in its status; the run is bounded.
fn agent_fails_over(mode: Mode, reason: &str) {
    let bed = AgentBed::new();
    let slow = Hostile::start(mode);
    let cfg = config(&bed, vec![slow.base.clone(), bed.origin.base.clone()]);
    let t = Instant::now();
    let r = bed.once(&cfg).unwrap();
    let took = t.elapsed();
    assert_eq!(
        r["installed"][0],
        serde_json::json!([PATTERN, "18.523.00"]),
        "{r:#}"
    );
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.523.00"
    );
    let st = bed.status(&cfg);
    assert_eq!(st["source"], bed.origin.base.as_str(), "{st:#}");
    let rejected = st["rejected"].to_string();
    assert!(
        rejected.contains(&slow.base) && rejected.contains(reason),
        "{st:#}"
    );
    assert!(took < BOUND, "agent --once took {took:?}");
    eprintln!("agent failed over from a {reason} source in {took:?}");
}

#[test]
fn agent_fails_over_from_a_silent_relay() {
    agent_fails_over(Mode::Silent, "first-byte timeout");
}

#[test]
fn agent_fails_over_from_a_dripping_relay() {
    agent_fails_over(Mode::Drip, "stalled");
}

#[test]
fn child_relay_fails_over_from_silent_and_dripping_upstreams() {
    let bed = AgentBed::new();
    let silent = Hostile::start(Mode::Silent);
    let drip = Hostile::start(Mode::Drip);
    let cache = bed.path("relay-cache");
    let t = Instant::now();
    let out = relay_once_with(
        &[&silent.base, &drip.base, &bed.origin.base],
        &bed.repo.root_v1,
        &cache,
        &["--first-byte-timeout", "2", "--stall-timeout", "2"],
        &[],
    )
    .unwrap();
    let took = t.elapsed();
    assert_eq!(out["source"], bed.origin.base.as_str(), "{out:#}");
    assert!(out["downloaded"].as_u64().unwrap() >= 2, "{out:#}");
    let errors = out["upstream_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{out:#}");
    let (e0, e1) = (errors[0].as_str().unwrap(), errors[1].as_str().unwrap());
    assert!(
        e0.contains(&silent.base) && e0.contains("first-byte timeout"),
        "{e0}"
    );
    assert!(e1.contains(&drip.base) && e1.contains("stalled"), "{e1}");
    assert!(took < BOUND, "relay --once took {took:?}");
    eprintln!("relay failed over from a silent and a dripping upstream in {took:?}");
}
