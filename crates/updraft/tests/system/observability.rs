//! Observable like a server people already run: `/metrics` of the origin, the relay and the
//! manager (Prometheus text, durations as histograms in seconds, outcomes as labels apart from
//! request kinds, build info, the relay's last sync and expiry per role; the manager's behind
//! its administrator credential), JSON logs on request, one access log line per request, and a
//! logged, clean (status 0) shutdown on SIGTERM.
use std::path::Path;
use std::time::Duration;

use updraft::launch::{Logs, Server as Launched};

use crate::common::*;

/// Where the samples for the note go (best effort).
const SAMPLES: &str = "/tmp/metrics-samples";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `updraft ARGS` at `RUST_LOG=info` with its standard error in `log`.
fn start(args: &[&str], env: &[(&str, &str)], log: &Path) -> Launched {
    launcher()
        .rust_log("info")
        .server(args, env, Logs::File(log.to_path_buf()))
        .unwrap()
}

fn scrape(base: &str, token: Option<&str>) -> String {
    let mut req = http().get(format!("{base}/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    resp.text().unwrap()
}

fn save_sample(name: &str, text: &str) {
    let _ = std::fs::create_dir_all(SAMPLES);
    let _ = std::fs::write(format!("{SAMPLES}/{name}.txt"), text);
}

/// Every series of `updraft_http_request_duration_seconds{server,kind}` is a histogram: ordered
/// cumulative buckets ending in `+Inf`, which equals `_count`; `_sum` present.
fn assert_histogram(text: &str, labels: &str) {
    let name = "updraft_http_request_duration_seconds";
    assert!(text.contains(&format!("# TYPE {name} histogram")), "{text}");
    let buckets: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{{{labels},le=")))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(buckets.len() > 5, "{labels}: {text}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    let inf = sample(text, &format!("{name}_bucket{{{labels},le=\"+Inf\"}}"));
    assert_eq!(inf, sample(text, &format!("{name}_count{{{labels}}}")));
    assert!(inf >= 1.0, "{labels}: no request counted");
    sample(text, &format!("{name}_sum{{{labels}}}"));
    assert!(!text.contains("microseconds"), "{text}");
}

fn requests(server: &str, kind: &str, outcome: &str) -> String {
    format!(
        "updraft_http_requests_total{{server=\"{server}\",kind=\"{kind}\",outcome=\"{outcome}\"}}"
    )
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn origin_and_relay_metrics_count_the_next_root_404_as_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let origin = start(
        &["serve", s(&repo.dir), "--listen", "127.0.0.1:0"],
        &[],
        &tmp.path().join("origin.log"),
    );
    let cache = tmp.path().join("cache");
    let args = [
        "relay",
        "--upstream",
        &origin.base,
        "--trusted-root",
        s(&repo.root_v1),
        "--cache",
        s(&cache),
        "--listen",
        "127.0.0.1:0",
    ];
    let relay = start(&args, &[], &tmp.path().join("relay.log"));
    wait_status(&relay.base, "a first sync", |v| {
        !v["last_success"].is_null()
    });
    // Every poll asks for the next root; there is none: a 404, the routine answer.
    let r = http()
        .get(format!("{}/metadata/2.root.json", relay.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);

    let o = scrape(&origin.base, None);
    save_sample("origin", &o);
    assert!(o.contains("updraft_build_info{version=\""), "{o}");
    assert!(sample(&o, &requests("origin", "metadata", "not_found")) >= 1.0);
    assert!(sample(&o, &requests("origin", "metadata", "ok")) >= 1.0);
    assert_eq!(sample(&o, &requests("origin", "metadata", "error")), 0.0);
    assert_histogram(&o, "server=\"origin\",kind=\"metadata\"");

    let r = scrape(&relay.base, None);
    save_sample("relay", &r);
    assert!(r.contains("updraft_build_info{version=\""), "{r}");
    assert_eq!(sample(&r, &requests("relay", "metadata", "not_found")), 1.0);
    assert_eq!(sample(&r, &requests("relay", "metadata", "error")), 0.0);
    assert_histogram(&r, "server=\"relay\",kind=\"metadata\"");
    assert!(sample(&r, "updraft_relay_sync_duration_seconds_count") >= 1.0);
    let last = sample(&r, "updraft_relay_last_sync_success_timestamp_seconds");
    assert!((now() - last).abs() < 120.0, "last sync at {last}");
    for role in ["root", "timestamp", "snapshot", "targets"] {
        let series = format!("updraft_metadata_expiry_timestamp_seconds{{role=\"{role}\"}}");
        assert!(
            sample(&r, &series) > now(),
            "{role} expiry in the past:\n{r}"
        );
    }
    assert_eq!(sample(&r, "updraft_trusted_root_version"), 1.0);
}

/// The manager with an administrator token; its base URL and the token.
fn manager(tmp: &Path, env: &[(&str, &str)], extra: &[&str]) -> (Launched, String) {
    let db = format!("sqlite://{}", s(&tmp.join("manager.db")));
    let admin = ok(&["admin", "--db", &db, "token", "create", "--name", "ops"])
        .trim()
        .to_string();
    let mut args = vec!["manager", "--db", &db, "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    (start(&args, env, &tmp.join("manager.log")), admin)
}

#[test]
fn manager_metrics_need_a_credential_and_count_heartbeats_and_auth_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, admin) = manager(tmp.path(), &[], &["--failure-delay-ms", "0"]);
    let url = format!("{}/metrics", m.base);
    assert_eq!(http().get(&url).send().unwrap().status(), 401);
    let forged = http().get(&url).bearer_auth("forged").send().unwrap();
    assert_eq!(forged.status(), 401);
    let hb = http()
        .post(format!("{}{}", m.base, model::protocol::HEARTBEAT_PATH))
        .bearer_auth("not-a-host")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(hb.status(), 401);

    let t = scrape(&m.base, Some(&admin));
    save_sample("manager", &t);
    assert!(t.contains("updraft_build_info{version=\""), "{t}");
    assert_eq!(sample(&t, "updraft_manager_auth_failures_total"), 3.0);
    assert_eq!(sample(&t, &requests("manager", "metrics", "denied")), 2.0);
    assert_eq!(
        sample(&t, "updraft_manager_heartbeats_total{outcome=\"denied\"}"),
        1.0
    );
    assert_eq!(
        sample(&t, "updraft_manager_heartbeats_total{outcome=\"ok\"}"),
        0.0
    );
    assert_eq!(sample(&t, "updraft_manager_hosts"), 0.0);
    assert_histogram(&t, "server=\"manager\",kind=\"heartbeat\"");
}

/// Send SIGTERM to `server`; it must log that it shuts down and exit with status 0.
fn terminate(server: &mut Launched, log: &Path) {
    let pid = server.process.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = server.process.wait_exit(Duration::from_secs(20));
    let text = std::fs::read_to_string(log).unwrap();
    let status = status.unwrap_or_else(|| panic!("still running after SIGTERM:\n{text}"));
    assert!(status.success(), "{status}:\n{text}");
    assert!(text.contains("shutting down"), "{text}");
}

/// Every line of `log` is a JSON object; the access line of `path` is there.
fn assert_json_log(log: &Path, path: &str) {
    let text = std::fs::read_to_string(log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(
        lines.iter().any(|v| v["target"] == "access"
            && v["fields"]["path"] == path
            && v["fields"]["method"] == "GET"
            && v["fields"]["status"].as_u64().is_some()
            && v["fields"]["duration_ms"].as_f64().is_some()
            && v["fields"]["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with("127.0.0.1:"))),
        "no access line for {path}:\n{text}"
    );
    assert!(lines
        .iter()
        .any(|v| v["fields"]["message"] == "shutting down"));
}

#[test]
fn servers_log_json_with_access_lines_and_stop_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let cache = tmp.path().join("cache");
    let log = |n: &str| tmp.path().join(format!("{n}.log"));
    let json = ["--log-format", "json", "--listen", "127.0.0.1:0"];
    let mut origin_args = vec!["serve", s(&repo.dir)];
    origin_args.extend_from_slice(&json);
    let origin = start(&origin_args, &[], &log("origin"));
    relay_once(&[&origin.base], &repo.root_v1, &cache).unwrap();
    let relay_args = [
        &["relay", "--offline", "--trusted-root", s(&repo.root_v1)][..],
        &["--cache", s(&cache)],
        &json,
    ]
    .concat();
    let relay = start(&relay_args, &[], &log("relay"));
    // The manager takes the format from the environment.
    let env = [("UPDRAFT_LOG_FORMAT", "json")];
    let (manager, _) = manager(tmp.path(), &env, &[]);
    for (name, mut server) in [("origin", origin), ("relay", relay), ("manager", manager)] {
        let r = http()
            .get(format!("{}/healthz", server.base))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        let log = log(name);
        eventually(&format!("{name}'s access line"), || {
            let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
            match text.contains("\"target\":\"access\"") {
                true => Ok(()),
                false => Err(text),
            }
        });
        terminate(&mut server, &log);
        assert_json_log(&log, "/healthz");
    }
}

/// Syncs (changed or not) the relay at `base` has completed.
fn syncs(base: &str) -> f64 {
    let m = scrape(base, None);
    sample(&m, "updraft_relay_syncs_total{result=\"ok\"}")
        + sample(&m, "updraft_relay_syncs_total{result=\"unchanged\"}")
}

#[test]
fn a_relay_logs_root_updated_once_not_every_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    repo.rotate("root", "1", "1");
    repo.publish();
    // Two upstreams: every cycle also probes the second one (a refresh that keeps nothing),
    // which walks the same root rotation again.
    let (a, b) = (Server::start(&repo.dir), Server::start(&repo.dir));
    let log = tmp.path().join("relay.log");
    let cache = tmp.path().join("cache");
    let args = [
        "relay",
        "--upstream",
        &a.base,
        "--upstream",
        &b.base,
        "--trusted-root",
        s(&repo.root_v1),
        "--cache",
        s(&cache),
        "--poll-interval",
        "1",
        "--listen",
        "127.0.0.1:0",
    ];
    let relay = start(&args, &[], &log);
    eventually("three sync cycles", || match syncs(&relay.base) {
        n if n >= 3.0 => Ok(()),
        n => Err(format!("{n} cycles")),
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("root updated").count(), 1, "{text}");
}
