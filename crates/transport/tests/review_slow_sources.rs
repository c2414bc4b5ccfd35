//! Review (wt-review2): what a hostile source can still do to `HttpFetcher`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use transport::{HttpConfig, HttpFetcher};
use tuf::Fetcher;

/// Serve every connection on its own thread with `f` (the listener thread lives as long as the
/// test process).
fn server(f: fn(TcpStream)) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || f(s));
        }
    });
    base
}

fn read_request(s: &mut TcpStream) -> String {
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).to_string()
}

/// A relay answering with a redirect to another host (here: another port on loopback standing
/// for an internal service the operator never configured as a source). `HttpFetcher` uses
/// reqwest's default policy: up to 10 redirects, to any host and scheme (https → http too).
/// A configured source can so make every agent and relay issue GETs to arbitrary hosts (SSRF
/// into the host's network; the outcome, 404 vs. refused vs. parse error, lands in the status
/// sent to the manager), and an `https://` relay can move the fetch to plain `http://`.
/// FAILS TODAY.
#[test]
fn a_redirect_to_another_host_is_not_followed() {
    let other = server(|mut s| {
        read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nOTHER");
    });
    let target = format!("{other}/internal-service");
    std::env::set_var("REVIEW_REDIRECT_TO", &target);
    let relay = server(|mut s| {
        read_request(&mut s);
        let to = std::env::var("REVIEW_REDIRECT_TO").unwrap();
        let _ = s.write_all(
            format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        );
    });
    let f = HttpFetcher::new(&HttpConfig::default()).unwrap();
    let got = f.fetch_bytes(&format!("{relay}/metadata/timestamp.json"), 1000);
    assert!(
        got.is_err(),
        "followed a redirect to another host and returned its body: {:?}",
        got.map(|b| String::from_utf8_lossy(&b).to_string())
    );
}

/// A streamed target (no total bound by design) sent at exactly the minimum rate, in one burst
/// per stall window just before the window ends, holds the caller for length / min_rate: here
/// 8 windows of 1 s for 8 000 bytes at min_rate 1 000 B/s. At the defaults (512 B/s, 30 s
/// windows) a first relay holds an agent's whole cycle (and its heartbeat) for ~2.3 days per
/// 100 MB of signed target length, and `download` only tries the next source after an error.
/// Measured here, not asserted as a failure of the transport alone: the fix belongs to the
/// caller (a per-target budget, then the next source).
#[test]
fn a_streamed_target_at_exactly_the_minimum_rate_holds_the_caller_length_over_min_rate() {
    let base = server(|mut s| {
        read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8000\r\n\r\n");
        for _ in 0..8 {
            std::thread::sleep(Duration::from_millis(950));
            if s.write_all(&[b'x'; 1000]).is_err() {
                return;
            }
        }
    });
    let f = HttpFetcher::new(&HttpConfig {
        stall_timeout: Duration::from_secs(1),
        min_rate: 1000,
        request_timeout: Duration::from_secs(2),
        ..HttpConfig::default()
    })
    .unwrap();
    let started = Instant::now();
    let mut body = Vec::new();
    let r = f
        .fetch(&format!("{base}/targets/big.bin"))
        .unwrap()
        .read_to_end(&mut body);
    let took = started.elapsed();
    eprintln!("read {:?} bytes in {took:?}: {r:?}", body.len());
    assert!(r.is_ok() && body.len() == 8000);
    assert!(took >= Duration::from_secs(7), "{took:?}");
}
