//! Manager benchmark (prints figures): 50,000 simulated hosts enrolled on SQLite, then
//! heartbeats sent concurrently over loopback to a real `updraft manager` process (with its
//! default per-host rate limit and history bounds) for a bounded time; prints sustained
//! heartbeats/s, p50/p99 latency and how many were refused (429: a host over its rate, which
//! the many hosts keep from happening; any other failure is an error).
//!
//! Run: `cargo build --release && cargo bench -p updraft --bench manager`
//! (UPDRAFT_BENCH_HOSTS, UPDRAFT_BENCH_SECONDS, UPDRAFT_BENCH_CONCURRENCY change the defaults;
//! a staged rollout of the pattern the hosts report is running unless UPDRAFT_BENCH_ROLLOUT=0).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use updraft::launch::{Launcher, Logs};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const CONSOLE_PASSWORD: &str = "bench password, long enough";

/// Time every console page over the fleet just loaded (signed in as an auditor): the median and
/// the slowest of 5 loads each, request to last byte on loopback.
fn console_pages(base: &str) {
    let c = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = c
        .post(format!("{base}/console/login"))
        .form(&[("name", "bench"), ("password", CONSOLE_PASSWORD)])
        .send()
        .unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let get = |path: &str| {
        let t = Instant::now();
        let r = c
            .get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let body = r.text().unwrap();
        (t.elapsed(), body)
    };
    let (_, hosts) = get("/console/hosts?limit=1");
    let id = hosts
        .split("/console/hosts/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or("x")
        .to_string();
    let pages = [
        "/console/".to_string(),
        "/console/hosts".into(),
        "/console/hosts?status=online&component=antimalware.pattern".into(),
        format!("/console/hosts/{id}"),
        "/console/rollouts".into(),
        "/console/rollouts/1".into(),
        "/console/relays".into(),
        "/console/groups".into(),
        "/console/audit".into(),
    ];
    for p in &pages {
        let mut times: Vec<Duration> = (0..5).map(|_| get(p).0).collect();
        times.sort();
        println!(
            "console {p}: median {:.1} ms, slowest {:.1} ms",
            times[2].as_secs_f64() * 1000.0,
            times[4].as_secs_f64() * 1000.0
        );
    }
}

fn main() {
    let hosts = env("UPDRAFT_BENCH_HOSTS", 50_000);
    let seconds = env("UPDRAFT_BENCH_SECONDS", 10) as u64;
    let concurrency = env("UPDRAFT_BENCH_CONCURRENCY", 64);
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", tmp.path().join("manager.db").display());
    let db = manager::Db::open(&url).unwrap();
    db.put_group(
        &manager::db::Group {
            name: "fleet".into(),
            role: model::protocol::Role::Agent,
            poll_interval: 300,
            ..Default::default()
        },
        "bench",
    )
    .unwrap();
    // A rollout of the pattern every host reports, so that each heartbeat is also observed
    // for it and gets its holds, and the gates judge every host (UPDRAFT_BENCH_ROLLOUT=0: none).
    if env("UPDRAFT_BENCH_ROLLOUT", 1) == 1 {
        let wave = |share| manager::rollout::Wave {
            groups: Vec::new(),
            share,
            soak: 3600,
            success: 100,
            max_failures: 1000,
            max_failure_share: 0,
            approval: false,
        };
        db.create_rollout(
            &manager::rollout::RolloutSpec {
                component: "antimalware.pattern".into(),
                version: "18.523.00".into(),
                waves: vec![wave(10), wave(100)],
                auto_rollback: true,
                silent_after: 900,
                follow_plan: false,
            },
            "bench",
        )
        .unwrap();
    }
    let t = Instant::now();
    let token = db.create_enroll_token("fleet", None, None).unwrap();
    let creds: Vec<String> = (0..hosts)
        .map(|i| {
            db.enroll(
                &token,
                &format!("host-{i:05}"),
                model::protocol::Role::Agent,
            )
            .unwrap()
            .unwrap()
            .credential
        })
        .collect();
    println!(
        "enrolled {hosts} hosts in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    db.create_user(
        "bench",
        manager::db::UserRole::Auditor,
        CONSOLE_PASSWORD,
        "bench",
    )
    .unwrap();
    drop(db);

    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/updraft");
    let bin = if bin.exists() {
        bin
    } else {
        Path::new(env!("CARGO_BIN_EXE_updraft")).to_path_buf()
    };
    let manager = Launcher::new(bin)
        .server(
            &[
                "manager",
                "--db",
                &url,
                "--listen",
                "127.0.0.1:0",
                "--rollout-tick",
                &std::env::var("UPDRAFT_BENCH_TICK").unwrap_or("5".into()),
            ],
            &[],
            Logs::Discard,
        )
        .unwrap();
    let base = manager.base.clone();
    let creds = Arc::new(creds);
    let next = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut latencies, errors, limited) = rt.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (client, creds, next, base) = (client.clone(), creds.clone(), next.clone(), base.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let (mut errors, mut limited) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed) % creds.len();
                    let body = format!(
                        r#"{{"hostname":"host-{i:05}","role":"agent","upstream":"http://relay-1:8080","builds":{{"updraft":"0.1.0","scanner":"9.5.1519"}},"components":{{"antimalware.pattern":"18.523.00","antimalware.engine":"12.0.1"}},"modules":[{{"name":"antimalware","status":"online"}}],"last_result":"ok"}}"#
                    );
                    let t = Instant::now();
                    let r = client
                        .post(format!("{base}/api/v1/heartbeat"))
                        .bearer_auth(&creds[i])
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    match r {
                        Ok(resp) if resp.status() == 200 => {
                            let _ = resp.bytes().await;
                            lat.push(t.elapsed());
                        }
                        Ok(resp) if resp.status() == 429 => limited += 1,
                        _ => errors += 1,
                    }
                }
                (lat, errors, limited)
            }));
        }
        let mut all = Vec::new();
        let (mut errors, mut limited) = (0, 0);
        for t in tasks {
            let (l, e, r) = t.await.unwrap();
            all.extend(l);
            errors += e;
            limited += r;
        }
        (all, errors, limited)
    });
    console_pages(&base);
    manager.kill();
    latencies.sort();
    let n = latencies.len();
    let pct = |p: f64| latencies[((n as f64 * p) as usize).min(n - 1)].as_secs_f64() * 1000.0;
    println!(
        "{} heartbeats in {seconds} s from {concurrency} concurrent clients over {hosts} hosts: {:.0} heartbeats/s, p50 {:.2} ms, p99 {:.2} ms, {limited} refused (429), {errors} errors",
        n,
        n as f64 / seconds as f64,
        pct(0.50),
        pct(0.99)
    );
}
