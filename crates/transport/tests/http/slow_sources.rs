//! Slow retrieval: a source that accepts the connection and then sends nothing, or sends its
//! headers and then drips a byte a second, is cut off after the configured first-byte timeout
//! or stall window, for streamed targets and for metadata alike; a steady source is read whole.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::hostile::{Hostile, Mode};
use transport::{HttpConfig, HttpFetcher};
use tuf::{FetchError, Fetcher};

fn fetcher(first_byte: u64, stall: u64) -> HttpFetcher {
    HttpFetcher::new(&HttpConfig {
        first_byte_timeout: Duration::from_secs(first_byte),
        stall_timeout: Duration::from_secs(stall),
        ..HttpConfig::default()
    })
    .unwrap()
}

fn timed_out(r: Result<Vec<u8>, FetchError>, what: &str) -> String {
    match r {
        Err(FetchError::Transport { reason, .. }) => {
            assert!(reason.contains(what), "{reason}");
            reason
        }
        other => panic!("expected a {what} error, got {other:?}"),
    }
}

#[test]
fn a_silent_source_fails_after_the_first_byte_timeout() {
    let h = Hostile::start(Mode::Silent);
    let f = fetcher(1, 30);
    let t = Instant::now();
    timed_out(
        f.fetch_bytes(&format!("{}/metadata/timestamp.json", h.base), 16384),
        "first-byte timeout",
    );
    let streamed = f.fetch(&format!("{}/targets/big", h.base));
    assert!(matches!(streamed, Err(FetchError::Transport { .. })));
    // Two requests, one second each; the 300 s request timeout does not apply.
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn a_dripping_source_fails_after_the_stall_window() {
    let h = Hostile::start(Mode::Drip(Duration::from_millis(500)));
    let f = fetcher(10, 1);
    let t = Instant::now();
    // Metadata: a body announced within bounds that never makes progress.
    timed_out(
        f.fetch_bytes(&format!("{}/metadata/timestamp.json", h.base), 200_000),
        "stalled",
    );
    // A streamed target: the reader fails, it does not wait for the 100 000 bytes.
    let mut r = f.fetch(&format!("{}/targets/big", h.base)).unwrap();
    let mut out = Vec::new();
    let e = r.read_to_end(&mut out).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    assert!(out.len() < 10, "{} bytes", out.len());
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn progress_below_the_minimum_rate_fails_and_a_steady_source_does_not() {
    // A byte every 50 ms (20 B/s) keeps the connection busy but is below a 1 KiB/s minimum.
    let h = Hostile::start(Mode::Drip(Duration::from_millis(50)));
    let f = HttpFetcher::new(&HttpConfig {
        stall_timeout: Duration::from_secs(1),
        min_rate: 1024,
        ..HttpConfig::default()
    })
    .unwrap();
    let reason = timed_out(f.fetch_bytes(&format!("{}/x", h.base), 200_000), "stalled");
    assert!(reason.contains("minimum is 1024"), "{reason}");
    drop(h);

    // The same drip is fine when only a stall (no byte at all for the window) is refused.
    let h = Hostile::start(Mode::Drip(Duration::from_millis(50)));
    let f = HttpFetcher::new(&HttpConfig {
        stall_timeout: Duration::from_secs(1),
        min_rate: 0,
        ..HttpConfig::default()
    })
    .unwrap();
    let mut r = f.fetch(&format!("{}/x", h.base)).unwrap();
    let mut got = [0u8; 40];
    r.read_exact(&mut got).unwrap();
    assert_eq!(got, [b'x'; 40]);
}
