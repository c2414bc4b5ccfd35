//! The agent installs the newest verified version of each component its modules use, removes
//! files the new version dropped, keeps the previous version, restores it when the reload fails,
//! fails over between relays, goes direct only when allowed, and reports why a module is offline.
use crate::common::*;

const PATTERN: &str = "antimalware.pattern";

fn module(status: &serde_json::Value) -> &serde_json::Value {
    &status["modules"][0]
}

#[test]
fn installs_updates_and_reports_module_status() {
    let bed = AgentBed::new();
    let cfg = bed.config(&bed.opts());
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["installed"][0], serde_json::json!([PATTERN, "18.523.00"]));
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.523.00"
    );
    let st = bed.status(&cfg);
    assert_eq!(module(&st)["status"], "online", "{st:#}");
    assert_eq!(st["source"], bed.origin.base.as_str());

    // A newer version with a different file set: the old file goes, the new ones arrive.
    let f = bed.path("extra.ndb");
    std::fs::write(&f, b"extra").unwrap();
    let d = bed.repo.dir.to_str().unwrap();
    ok(&[
        "repo",
        "add",
        d,
        f.to_str().unwrap(),
        "--component",
        PATTERN,
        "--version",
        "18.600.00",
        "--kind",
        "pattern",
    ]);
    let f2 = bed.path("main.hdb");
    std::fs::write(&f2, b"main").unwrap();
    ok(&[
        "repo",
        "add",
        d,
        f2.to_str().unwrap(),
        "--component",
        PATTERN,
        "--version",
        "18.600.00",
        "--kind",
        "pattern",
    ]);
    // An older version published later must not be picked (numeric ordering, not publication).
    bed.repo.add(PATTERN, "18.99.00", "pattern", b"older");
    bed.repo.publish();
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["installed"][0], serde_json::json!([PATTERN, "18.600.00"]));
    let mut names: Vec<String> = std::fs::read_dir(bed.path("av"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    names.sort();
    assert_eq!(names, ["extra.ndb", "main.hdb"]);
    // The previous version is kept for rollback.
    assert!(bed
        .path("state/versions/antimalware.pattern/18.523.00/antimalware.pattern.dat")
        .exists());
    let st = bed.status(&cfg);
    assert_eq!(module(&st)["components"][PATTERN], "18.600.00");
}

#[test]
fn unchanged_poll_writes_nothing() {
    let bed = AgentBed::new();
    let cfg = bed.config(&bed.opts());
    bed.once(&cfg).unwrap();
    bed.once(&cfg).unwrap();
    let snapshot = |dir: &std::path::Path| -> Vec<(String, std::time::SystemTime, u64)> {
        let mut v = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                if m.is_dir() {
                    stack.push(e.path());
                }
                v.push((
                    e.path().to_string_lossy().into_owned(),
                    m.modified().unwrap(),
                    m.len(),
                ));
            }
        }
        v.sort();
        v
    };
    let before = (snapshot(&bed.path("state")), snapshot(&bed.path("av")));
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["timestamp_unchanged"], true);
    assert_eq!(r["status_written"], false);
    assert_eq!(
        (snapshot(&bed.path("state")), snapshot(&bed.path("av"))),
        before,
        "no file written or touched"
    );
}

#[test]
fn failed_reload_restores_the_previous_version_and_reports_it() {
    let bed = AgentBed::new();
    let marker = bed.path("reject-new");
    let mut o = bed.opts();
    // The reload fails while the marker exists and the new pattern is in place.
    o.reload = Some(format!(
        "if [ -e {m} ] && grep -q 18.700 {av}/antimalware.pattern.dat; then echo 'bad signature db' >&2; exit 3; fi",
        m = marker.display(),
        av = bed.path("av").display()
    ));
    let cfg = bed.config(&o);
    bed.once(&cfg).unwrap();
    std::fs::write(&marker, b"").unwrap();
    bed.repo
        .add(PATTERN, "18.700.00", "pattern", b"pattern 18.700.00");
    bed.repo.publish();
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["installed"].as_array().unwrap().len(), 0);
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.523.00"
    );
    let st = bed.status(&cfg);
    assert_eq!(module(&st)["status"], "offline");
    let reason = module(&st)["reason"].as_str().unwrap();
    assert!(
        reason.contains("reload failed") && reason.contains("bad signature db"),
        "{reason}"
    );
    // Not retried every cycle.
    let r = bed.once(&cfg).unwrap();
    assert!(r["installed"].as_array().unwrap().is_empty());
}

#[test]
fn relay_failover_then_direct_only_when_allowed() {
    let bed = AgentBed::new();
    let cache = bed.path("relay-cache");
    relay_once(&[&bed.origin.base], &bed.repo.root_v1, &cache).unwrap();
    let relay = relay_offline(&bed.repo.root_v1, &cache);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut o = bed.opts();
    o.relays = vec![dead.clone(), relay.base.clone()];
    o.origin = Some(bed.origin.base.clone());
    let cfg = bed.config(&o);
    let r = bed.once(&cfg).unwrap();
    assert_eq!(
        r["source"],
        relay.base.as_str(),
        "first relay down: the second one"
    );
    relay.kill();
    // Every relay down, no direct fallback: unreachable, with the time.
    bed.repo
        .add(PATTERN, "18.800.00", "pattern", b"pattern 18.800.00");
    bed.repo.publish();
    let r = bed.once(&cfg).unwrap();
    assert!(r["source"].is_null());
    let st = bed.status(&cfg);
    let reason = module(&st)["reason"].as_str().unwrap().to_string();
    assert!(
        reason.starts_with("update source unreachable since "),
        "{reason}"
    );
    // Still unreachable later: the same "since".
    bed.once(&cfg).unwrap();
    assert_eq!(module(&bed.status(&cfg))["reason"], reason.as_str());
    // Direct fallback allowed: from the origin.
    o.allow_direct = true;
    let cfg = bed.config(&o);
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["source"], bed.origin.base.as_str());
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.800.00"
    );
    assert_eq!(module(&bed.status(&cfg))["status"], "online");
}

#[test]
fn a_relay_serving_tampered_content_is_rejected_and_nothing_installed_from_it() {
    let bed = AgentBed::new();
    // A mirror whose pattern file was replaced (same length, other bytes).
    let evil_dir = bed.path("evil");
    copy_dir(&bed.repo.dir, &evil_dir);
    let hash = tuf::crypto::sha256_hex(b"pattern 18.523.00");
    let stored = evil_dir.join(format!(
        "targets/content/antimalware.pattern/18.523.00/{hash}.antimalware.pattern.dat"
    ));
    std::fs::write(&stored, b"pattern 66.666.66").unwrap();
    let evil = Server::start(&evil_dir);
    let mut o = bed.opts();
    o.relays = vec![evil.base.clone(), bed.origin.base.clone()];
    let cfg = bed.config(&o);
    let r = bed.once(&cfg).unwrap();
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.523.00"
    );
    let st = bed.status(&cfg);
    let rejected = st["rejected"].to_string();
    assert!(
        rejected.contains(&evil.base) && rejected.contains("hash"),
        "{st:#} {r:#}"
    );
}

#[test]
fn expired_metadata_is_reported_as_such() {
    let bed = AgentBed::new();
    let cfg = bed.config(&bed.opts());
    bed.once(&cfg).unwrap();
    let settings = bed.repo.dir.join("repository.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    v["expiry"]["timestamp_days"] = serde_json::json!(-1);
    std::fs::write(&settings, serde_json::to_vec(&v).unwrap()).unwrap();
    ok(&["repo", "refresh", bed.repo.dir.to_str().unwrap()]);
    bed.once(&cfg).unwrap();
    let st = bed.status(&cfg);
    assert!(
        module(&st)["reason"]
            .as_str()
            .unwrap()
            .starts_with("signature metadata expired"),
        "{st:#}"
    );
}

#[test]
fn bad_configuration_names_the_key_or_file() {
    let bed = AgentBed::new();
    let cfg = bed.config(&bed.opts());
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}\nfrobnicate = 1\n")).unwrap();
    let out = run(&["agent", "--config", cfg.to_str().unwrap(), "--once"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
    std::fs::write(
        &cfg,
        text.replace(bed.repo.root_v1.to_str().unwrap(), "/no/root.json"),
    )
    .unwrap();
    let out = run(&["agent", "--config", cfg.to_str().unwrap(), "--once"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/root.json"));
    let out = run(&["agent", "--config", "/no/agent.toml", "--once"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/agent.toml"));
}
