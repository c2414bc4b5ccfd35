//! The connection bounds of the one serving loop (`serve_plain`, shared with TLS and the
//! origin): a silent or dripping request head is cut at the header timeout, a kept-alive
//! connection lives past the header timeout until the idle timeout.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use transport::ServeLimits;

const HEADER: Duration = Duration::from_secs(1);
const IDLE: Duration = Duration::from_secs(3);

/// A server of `GET /` → "ok" under short limits, on its own runtime (kept alive by the guard).
fn server() -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let limits = ServeLimits {
        header_timeout: HEADER,
        handshake_timeout: HEADER,
        idle_timeout: IDLE,
        max_connections: 16,
    };
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    rt.spawn(transport::serve_plain(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    (addr, rt)
}

/// Seconds until the server closes `s` (reads until end of stream; at most 10 s).
fn closed_after(s: &mut TcpStream, since: Instant) -> Duration {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return since.elapsed(),
            Ok(_) => continue,
        }
    }
}

fn request(s: &mut TcpStream) {
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 1024];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("ok"),
        "{text}"
    );
}

#[test]
fn a_silent_connection_is_closed_at_the_header_timeout() {
    let (addr, _rt) = server();
    let t = Instant::now();
    let mut s = TcpStream::connect(&addr).unwrap();
    let after = closed_after(&mut s, t);
    assert!(after >= HEADER && after < IDLE, "closed after {after:?}");
}

#[test]
fn a_dripping_request_head_is_closed_at_the_header_timeout_despite_its_traffic() {
    let (addr, _rt) = server();
    let t = Instant::now();
    let mut s = TcpStream::connect(&addr).unwrap();
    // One byte every 100 ms: traffic all along, never a complete head (bounded: 40 bytes).
    for b in b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaa".iter() {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = closed_after(&mut s, t);
    assert!(after < IDLE, "closed after {after:?}");
}

#[test]
fn a_kept_alive_connection_outlives_the_header_timeout_until_the_idle_timeout() {
    let (addr, _rt) = server();
    let mut s = TcpStream::connect(&addr).unwrap();
    request(&mut s);
    // The client is idle for longer than the header timeout (the scenario, not a wait for
    // the server): the connection is still served.
    std::thread::sleep(HEADER + Duration::from_millis(500));
    request(&mut s);
    let t = Instant::now();
    let after = closed_after(&mut s, t);
    assert!(
        after >= IDLE - Duration::from_millis(200) && after < IDLE * 2,
        "closed {after:?} after the last response"
    );
}
