//! The HTTP fetcher against the real origin server on 127.0.0.1: found, not found, announced
//! lengths above the caller's bound refused, bodies within the bound read exactly.
#![allow(clippy::unwrap_used)]

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
