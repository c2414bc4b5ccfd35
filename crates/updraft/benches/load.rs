//! HTTP load against one URL (prints figures; called by `bench/relay-vs-nginx.sh`). Two modes:
//!
//! - `burst URL [CLIENTS] [EXPECTED_BYTES]`: the release burst. CLIENTS clients, each on its
//!   own connection, fetch URL at the same instant, as agents do right after a publication.
//!   Prints clients, errors, wall seconds, aggregate MB/s and p50/p99 time to the last byte.
//! - `poll URL [CONNECTIONS] [SECONDS] [INTERVAL_MS] [ETAG]`: a fleet polling. CONNECTIONS
//!   keep-alive connections are opened, then each sends a GET (conditional on ETAG when given)
//!   every INTERVAL_MS (spread evenly) for SECONDS; prints the requests answered per second,
//!   p50/p99/max latency, 304s and errors.
//!
//! Run: `cargo bench -p updraft --bench load -- MODE URL …` (without arguments it prints this
//! usage and does nothing). Loopback URLs only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

fn usage() {
    eprintln!("load: cargo bench -p updraft --bench load -- burst URL [CLIENTS] [EXPECTED_BYTES]");
    eprintln!("      cargo bench -p updraft --bench load -- poll URL [CONNECTIONS] [SECONDS] [INTERVAL_MS] [ETAG]");
}

fn main() {
    // cargo bench appends `--bench`; the positional arguments are the rest.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(mode), Some(url)) = (args.first(), args.get(1).cloned()) else {
        return usage();
    };
    assert!(
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://[::1]:"),
        "load: loopback URLs only"
    );
    let arg = |i: usize, default: u64| args.get(i).map_or(default, |v| v.parse().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match mode.as_str() {
        "burst" => rt.block_on(burst(
            url,
            arg(2, 1000) as usize,
            args.get(3).map(|v| v.parse().unwrap()),
        )),
        "poll" => rt.block_on(poll(
            url,
            arg(2, 10_000) as usize,
            Duration::from_secs(arg(3, 10)),
            Duration::from_millis(arg(4, 1000)),
            args.get(5).cloned(),
        )),
        _ => usage(),
    }
}

/// One client with its own connection (no pool shared with the others).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(1)
        .build()
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(f64::NAN, |d| d.as_secs_f64())
}

async fn burst(url: String, clients: usize, expected: Option<u64>) {
    let start = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (url, start, client) = (url.clone(), start.clone(), client());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let t0 = Instant::now();
            let got = fetch(&client, &url, None).await.map(|(_, n)| n);
            (got, t0.elapsed())
        }));
    }
    start.wait().await;
    let t0 = Instant::now();
    let (mut bytes, mut errors, mut times) = (0u64, 0usize, Vec::with_capacity(clients));
    for task in tasks {
        match task.await.unwrap() {
            (Ok(n), took) if expected.is_none_or(|e| e == n) => {
                bytes += n;
                times.push(took);
            }
            _ => errors += 1,
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    times.sort();
    println!(
        "clients {clients} errors {errors} wall_s {wall:.3} mb_per_s {:.1} p50_s {:.3} p99_s {:.3}",
        bytes as f64 / 1_048_576.0 / wall,
        percentile(&times, 0.50),
        percentile(&times, 0.99)
    );
}

/// Per connection: (latencies, 304s, errors).
type Polled = (Vec<Duration>, u64, u64);

async fn poll(url: String, conns: usize, run: Duration, every: Duration, etag: Option<String>) {
    // Open every connection first (one request each), then poll at the interval.
    let opened = Arc::new(tokio::sync::Barrier::new(conns + 1));
    let mut tasks = Vec::with_capacity(conns);
    for i in 0..conns {
        let (url, opened, etag, client) = (url.clone(), opened.clone(), etag.clone(), client());
        let offset = every.mul_f64(i as f64 / conns as f64);
        tasks.push(tokio::spawn(async move {
            let first = fetch(&client, &url, etag.as_deref()).await.is_ok();
            opened.wait().await;
            let mut out: Polled = (Vec::new(), 0, u64::from(!first));
            let end = Instant::now() + run;
            let mut next = tokio::time::Instant::now() + offset;
            while Instant::now() < end {
                tokio::time::sleep_until(next).await;
                next += every;
                let t0 = Instant::now();
                match fetch(&client, &url, etag.as_deref()).await {
                    Ok((status, _)) => {
                        out.0.push(t0.elapsed());
                        out.1 += u64::from(status == 304);
                    }
                    Err(_) => out.2 += 1,
                }
            }
            out
        }));
    }
    opened.wait().await;
    let t0 = Instant::now();
    let (mut times, mut not_modified, mut errors) = (Vec::new(), 0u64, 0u64);
    for task in tasks {
        let (t, n, e) = task.await.unwrap();
        times.extend(t);
        not_modified += n;
        errors += e;
    }
    let wall = t0.elapsed().as_secs_f64();
    times.sort();
    println!(
        "connections {conns} requests {} req_per_s {:.0} p50_ms {:.2} p99_ms {:.2} max_ms {:.2} not_modified {not_modified} errors {errors}",
        times.len(),
        times.len() as f64 / wall,
        percentile(&times, 0.50) * 1000.0,
        percentile(&times, 0.99) * 1000.0,
        times.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
    );
}

/// The status and the bytes of the body (read and dropped chunk by chunk); an error for an
/// answer that is neither 2xx nor 304.
async fn fetch(
    client: &reqwest::Client,
    url: &str,
    etag: Option<&str>,
) -> Result<(u16, u64), String> {
    let mut req = client.get(url);
    if let Some(e) = etag {
        req = req.header("If-None-Match", e);
    }
    let mut resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    if !(resp.status().is_success() || status == 304) {
        return Err(format!("status {status}"));
    }
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        n += chunk.len() as u64;
    }
    Ok((status, n))
}
