//! Trust-core benchmark (prints figures; no assertions on time):
//! 1. a repository with 10,000 targets served by `transport::serve_origin` on 127.0.0.1:
//!    cold and unchanged refresh with `crates/tuf`, and with python-tuf's ngclient (if the venv
//!    made by scripts/setup-python.sh exists);
//! 2. verification rate of a 256 MiB target (SHA-256 while streaming), in memory and end to end
//!    from a file fetcher into the download directory;
//! 3. one delegation path match with a pathological pattern (`*a` × 12 then `b` against 46 `a`s).
//!
//! Run: `cargo bench -p updraft --bench trust_core` (set UPDRAFT_BENCH_TARGETS to change 10000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tuf::crypto::{sha256_hex, StreamVerifier};
use tuf::repo::{InitOptions, Repository};
use tuf::{Updater, UpdaterConfig};

const RUNS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let n: usize = std::env::var("UPDRAFT_BENCH_TARGETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let t = Instant::now();
    let mut repo = Repository::init(&repo_dir, &InitOptions::default()).unwrap();
    for i in 0..n {
        let path = format!("content/bench.component/1.0.{i}/file-{i}.dat");
        repo.add_target_meta(
            "targets",
            &path,
            tuf::metadata::TargetFile {
                length: 16,
                hashes: BTreeMap::from([("sha256".to_string(), sha256_hex(path.as_bytes()))]),
                custom: None,
                unknown: Default::default(),
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    repo.publish().unwrap();
    let targets_len = std::fs::metadata(repo_dir.join("metadata/targets.json"))
        .unwrap()
        .len();
    println!(
        "repository: {n} targets, targets.json {} KiB, built in {:.2} s",
        targets_len / 1024,
        t.elapsed().as_secs_f64()
    );
    let root = std::fs::read(repo_dir.join("metadata/1.root.json")).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(transport::serve_origin(&repo_dir, "127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", server.addr);
    let meta_url = format!("{base}/metadata");

    let fetcher = transport::HttpFetcher::new(&transport::HttpConfig::default()).unwrap();
    let mut rust = Vec::new();
    let mut unchanged_fetched = Vec::new();
    for durable in [true, false] {
        let config = UpdaterConfig {
            durable_writes: durable,
            ..UpdaterConfig::default()
        };
        let mut cold = Vec::new();
        let mut unchanged = Vec::new();
        for _ in 0..RUNS {
            let md = tempfile::tempdir().unwrap();
            let t = Instant::now();
            let mut up = Updater::new(
                md.path(),
                &meta_url,
                root.clone(),
                fetcher.clone(),
                config.clone(),
            )
            .unwrap();
            up.refresh().unwrap();
            cold.push(t.elapsed());
            let t = Instant::now();
            let mut up = Updater::new(
                md.path(),
                &meta_url,
                root.clone(),
                fetcher.clone(),
                config.clone(),
            )
            .unwrap();
            let out = up.refresh().unwrap();
            unchanged.push(t.elapsed());
            unchanged_fetched = out.fetched;
        }
        let (c, u) = (median(cold), median(unchanged));
        let mode = if durable {
            "fsync on (default)"
        } else {
            "fsync off"
        };
        println!("crates/tuf   cold refresh:      {:8.2} ms   unchanged: {:6.2} ms   [{mode}, median of {RUNS}]", ms(c), ms(u));
        rust.push((c, u));
    }
    let names: Vec<&str> = unchanged_fetched
        .iter()
        .map(|u| u.rsplit('/').next().unwrap_or(""))
        .collect();
    println!("             unchanged refresh requests: {names:?} (the next root is probed per spec 5.3.3 and is a 404)");

    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if py.exists() {
        let root_file = tmp.path().join("root.json");
        std::fs::write(&root_file, &root).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ngclient_refresh.py");
        let out = std::process::Command::new(&py)
            .args([
                script.to_str().unwrap(),
                root_file.to_str().unwrap(),
                &base,
                &RUNS.to_string(),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text
            .split_whitespace()
            .filter_map(|s| s.parse::<f64>().ok());
        match (it.next(), it.next()) {
            (Some(c), Some(u)) => {
                println!("python-tuf   cold refresh:      {c:8.2} ms   unchanged: {u:6.2} ms   [no fsync]");
                println!(
                    "speed-up     fsync on: cold {:.1}x, unchanged {:.1}x; fsync off: cold {:.1}x, unchanged {:.1}x",
                    c / ms(rust[0].0),
                    u / ms(rust[0].1),
                    c / ms(rust[1].0),
                    u / ms(rust[1].1)
                );
            }
            _ => println!(
                "python-tuf run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    } else {
        println!("python-tuf: not measured (run scripts/setup-python.sh first)");
    }
    rt.block_on(server.shutdown()).unwrap();

    // 2. Hash while streaming a 256 MiB target.
    let size: usize = 256 << 20;
    let data: Vec<u8> = (0..size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    let hashes = BTreeMap::from([("sha256".to_string(), sha256_hex(&data))]);
    let mut rates = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let mut v = StreamVerifier::new("big", &hashes).unwrap();
        for chunk in data.chunks(256 * 1024) {
            v.update(chunk);
        }
        v.finish(Some(size as u64)).unwrap();
        rates.push(size as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    println!(
        "verify 256 MiB in memory (SHA-256 streaming): {:.2} GB/s (best of 3; median {:.2})",
        rates[2], rates[1]
    );

    // End to end through the client: file fetcher -> hash -> temp file -> fsync -> rename.
    let big_dir = tmp.path().join("bigrepo");
    let mut big = Repository::init(&big_dir, &InitOptions::default()).unwrap();
    big.add_target_bytes("targets", "content/big/1.0/big.bin", &data, None)
        .unwrap();
    big.publish().unwrap();
    drop(data);
    let root = std::fs::read(big_dir.join("metadata/1.root.json")).unwrap();
    let md = tmp.path().join("big-md");
    let dl = tmp.path().join("big-dl");
    let mut up = Updater::new(
        &md,
        big_dir.join("metadata").to_str().unwrap(),
        root,
        tuf::FileFetcher,
        UpdaterConfig::default(),
    )
    .unwrap();
    up.refresh().unwrap();
    let info = up.target_info("content/big/1.0/big.bin").unwrap().unwrap();
    let t = Instant::now();
    let dest = dl.join("big.bin");
    up.download_target_to(&info, &dest, big_dir.join("targets").to_str().unwrap())
        .unwrap();
    println!(
        "download + verify + fsync 256 MiB from a file mirror: {:.2} GB/s",
        size as f64 / t.elapsed().as_secs_f64() / 1e9
    );

    let pattern = format!("content/{}b", "*a".repeat(12));
    let name = format!("content/{}", "a".repeat(46));
    let t = Instant::now();
    let matched = tuf::delegation::path_matches(&pattern, &name);
    println!(
        "delegation pattern with 12 stars against 46 characters: {:.3} ms (matched: {matched})",
        ms(t.elapsed())
    );
}
