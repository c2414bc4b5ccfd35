//! The HTTP fetcher against the real origin server on 127.0.0.1: found, not found, announced
//! lengths above the caller's bound refused, bodies within the bound read exactly.

use std::io::Read;

use transport::{serve_origin, HttpConfig, HttpFetcher};
use tuf::{FetchError, Fetcher};

#[test]
fn fetches_bounds_and_reports_missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("metadata")).unwrap();
    std::fs::create_dir_all(tmp.path().join("targets")).unwrap();
    std::fs::write(tmp.path().join("metadata/small.json"), b"{}").unwrap();
    std::fs::write(tmp.path().join("targets/big.bin"), vec![7u8; 100_000]).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(serve_origin(tmp.path(), "127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", server.addr);
    let f = HttpFetcher::new(&HttpConfig::default()).unwrap();

    assert_eq!(
        f.fetch_bytes(&format!("{base}/metadata/small.json"), 2)
            .unwrap(),
        b"{}"
    );
    let big = format!("{base}/targets/big.bin");
    assert!(matches!(
        f.fetch_bytes(&big, 99_999),
        Err(FetchError::TooLarge { max: 99_999, .. })
    ));
    assert_eq!(f.fetch_bytes(&big, 100_000).unwrap().len(), 100_000);
    let mut streamed = Vec::new();
    f.fetch(&big).unwrap().read_to_end(&mut streamed).unwrap();
    assert_eq!(streamed.len(), 100_000);
    assert!(matches!(
        f.fetch_bytes(&format!("{base}/metadata/none.json"), 10),
        Err(FetchError::NotFound { .. })
    ));
    assert_eq!(
        f.fetch_bytes(&format!("{base}/healthz"), 10).unwrap(),
        b"ok\n"
    );
    rt.block_on(server.shutdown()).unwrap();
    // The server is gone: a transport error, not "not found".
    assert!(matches!(
        f.fetch_bytes(&big, 10),
        Err(FetchError::Transport { .. })
    ));
}

/// Answer the first connection on a loopback port with `response`, then stop.
fn answer_once(response: String) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::Write;
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(response.as_bytes());
        }
    });
    base
}

/// Regression (review of issue 9): a source answering with a redirect moved the request to any
/// host and scheme it named (an SSRF into the host's network from every agent and relay, and
/// https to http). Redirects are not followed: the source's answer is an error like any other.
#[test]
fn a_redirect_to_another_host_is_not_followed() {
    let other = answer_once("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nOTHER".into());
    let relay = answer_once(format!(
        "HTTP/1.1 302 Found\r\nLocation: {other}/internal\r\nContent-Length: 0\r\n\r\n"
    ));
    let f = HttpFetcher::new(&HttpConfig::default()).unwrap();
    match f.fetch_bytes(&format!("{relay}/metadata/timestamp.json"), 1000) {
        Err(FetchError::Status { status, .. }) => assert_eq!(status, 302),
        other => panic!("expected the redirect as an error, got {other:?}"),
    }
}
