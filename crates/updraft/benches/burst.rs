//! The release burst (prints figures; called by `bench/relay-vs-nginx.sh`): N clients, each on
//! its own connection, fetch the same URL at the same instant, as agents do right after a
//! publication. Prints one line: clients, errors, wall seconds, aggregate MB/s and the p50/p99
//! time to the last byte per client.
//!
//! Run: `cargo bench -p updraft --bench burst -- URL [CLIENTS] [EXPECTED_BYTES]`
//! (without a URL it prints this usage and does nothing). Loopback URLs only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

fn usage() {
    eprintln!("burst: cargo bench -p updraft --bench burst -- URL [CLIENTS] [EXPECTED_BYTES]");
}

fn main() {
    // cargo bench appends `--bench`; the positional arguments are the rest.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let Some(url) = args.first().cloned() else {
        return usage();
    };
    assert!(
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://[::1]:"),
        "burst: loopback URLs only"
    );
    let clients: usize = args.get(1).map_or(1000, |v| v.parse().unwrap());
    let expected: Option<u64> = args.get(2).map(|v| v.parse().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(burst(url, clients, expected));
}

async fn burst(url: String, clients: usize, expected: Option<u64>) {
    let start = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (url, start) = (url.clone(), start.clone());
        // One client per connection: no pool shared between them.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let t0 = Instant::now();
            let got = fetch(&client, &url).await;
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
    let pct = |p: f64| {
        times
            .get(((times.len() as f64 * p) as usize).min(times.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64())
    };
    println!(
        "clients {clients} errors {errors} wall_s {wall:.3} mb_per_s {:.1} p50_s {:.3} p99_s {:.3}",
        bytes as f64 / 1_048_576.0 / wall,
        pct(0.50),
        pct(0.99)
    );
}

/// Bytes of the body, read and dropped chunk by chunk; an error for a non-200 answer.
async fn fetch(client: &reqwest::Client, url: &str) -> Result<u64, reqwest::Error> {
    let mut resp = client.get(url).send().await?.error_for_status()?;
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        n += chunk.len() as u64;
    }
    Ok(n)
}
