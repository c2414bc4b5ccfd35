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
    server_with(HEADER, 16)
}

fn server_with(header: Duration, max_connections: usize) -> (String, tokio::runtime::Runtime) {
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    serve(app, header, IDLE, max_connections)
}

/// `app` served under `header` (header and handshake timeouts), `idle` and `max_connections`,
/// on its own runtime (kept alive by the guard).
fn serve(
    app: axum::Router,
    header: Duration,
    idle: Duration,
    max_connections: usize,
) -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let limits = ServeLimits {
        header_timeout: header,
        handshake_timeout: header,
        idle_timeout: idle,
        max_connections,
    };
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

#[test]
fn with_every_slot_held_by_silent_connections_a_new_client_is_served_long_before_the_header_timeout(
) {
    // Header timeout 60 s: if the client had to wait for the silent ones to time out, it would
    // miss its own 10 s read timeout.
    let (addr, _rt) = server_with(Duration::from_secs(60), 8);
    let silent: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // The scenario: the attackers have held every slot for a while.
    std::thread::sleep(Duration::from_millis(1200));
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 1024];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = s
        .read(&mut buf)
        .expect("answered while the silent connections hold every slot");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Some silent connection gave its slot up.
    let shed = silent
        .into_iter()
        .filter_map(|mut c| {
            c.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            matches!(c.read(&mut buf), Ok(0)).then_some(())
        })
        .count();
    assert!(shed >= 1, "no silent connection was closed");
}

/// A body of `left` bytes of zeros in 64 KiB frames.
struct Zeros {
    left: usize,
}

impl hyper::body::Body for Zeros {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let n = self.left.min(65_536);
        self.left -= n;
        std::task::Poll::Ready((n > 0).then(|| Ok(hyper::body::Frame::data(vec![0u8; n].into()))))
    }
}

#[test]
fn a_download_that_pauses_while_every_slot_is_taken_is_not_shed() {
    const SIZE: usize = 64 << 20;
    let app = axum::Router::new().route(
        "/big",
        axum::routing::get(|| async { axum::body::Body::new(Zeros { left: SIZE }) }),
    );
    // No timeout ends the download: only shedding could.
    let minute = Duration::from_secs(60);
    let (addr, _rt) = serve(app, minute, minute, 2);
    let mut download = TcpStream::connect(&addr).unwrap();
    download
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    download
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = download.read(&mut buf).unwrap();
    let _silent = TcpStream::connect(&addr).unwrap();
    // The scenario: the downloader pauses (its buffers fill up) while every slot is taken
    // and another client waits.
    std::thread::sleep(Duration::from_millis(1500));
    let mut other = TcpStream::connect(&addr).unwrap();
    other
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    while got < SIZE {
        match download.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    // The head (about 100 bytes) and every byte of the body arrived.
    assert!(got > SIZE, "the paused download was cut after {got} bytes");
}
