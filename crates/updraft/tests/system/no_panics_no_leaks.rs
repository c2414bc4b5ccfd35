//! No panics, no leaks (issue 11, section 3), against the real binaries: numbers out of range
//! are refused with the setting and its range named (never an overflow panic); a panicking sync
//! cycle is a failed cycle in `/status` and a dead sync loop makes `/healthz` answer 503; a
//! closed pipe ends a command quietly; credentials in upstream URLs are shown, stored and logged
//! nowhere; host state and the manager's database are private while a published repository
//! stays readable.
use crate::common::*;
use std::process::Stdio;

/// A panic exits with 101 and says "panicked"; a refusal exits with 1 and names the setting.
fn refused(args: &[&str], names: &[&str]) {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "updraft {args:?}: {err}");
    assert!(!err.contains("panicked"), "updraft {args:?}: {err}");
    for n in names {
        assert!(err.contains(n), "updraft {args:?} should name {n:?}: {err}");
    }
}

#[test]
fn durations_out_of_range_are_refused_naming_the_setting_and_range() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let (root, cache) = (repo.root_v1.to_str().unwrap(), tmp.path().join("cache"));
    let cache = cache.to_str().unwrap();
    let relay = |flag: &str, value: &str| {
        refused(
            &[
                "relay",
                "--once",
                "--trusted-root",
                root,
                "--cache",
                cache,
                "--upstream",
                "http://127.0.0.1:9/",
                flag,
                value,
            ],
            &[&flag[2..].replace('-', "_"), "out of range"],
        )
    };
    relay("--offline-grace", "200000000000000");
    relay("--poll-interval", "18446744073709551615");
    relay("--first-byte-timeout", "18446744073709551615");
    let bundle = tmp.path().join("b.tar").to_str().unwrap().to_string();
    refused(
        &[
            "relay",
            "import",
            "--cache",
            cache,
            "--trusted-root",
            root,
            "--offline-grace",
            "200000000000000",
            &bundle,
        ],
        &["offline-grace", "0 to 3650 days"],
    );
    let db = format!("sqlite://{}", tmp.path().join("manager.db").display());
    ok(&["admin", "--db", &db, "group", "put", "site"]);
    let token = [
        "admin",
        "--db",
        &db,
        "enroll-token",
        "create",
        "--group",
        "site",
    ];
    refused(
        &[&token[..], &["--expires", "4000000"]].concat(),
        &["expires", "1 to 3650 days"],
    );
    assert!(ok(&[&token[..], &["--expires", "3650"]].concat()).starts_with("upd_enroll"));
}

/// A relay syncing from `origin` with `UPDRAFT_FAULT=fault`.
fn faulty_relay(tmp: &std::path::Path, repo: &Repo, origin: &str, fault: &str) -> Server {
    let cache = tmp.join(format!("cache-{fault}"));
    Server::spawn(
        &[
            "relay",
            "--trusted-root",
            repo.root_v1.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
            "--upstream",
            origin,
            "--listen",
            "127.0.0.1:0",
        ],
        &[("UPDRAFT_FAULT", fault)],
    )
}

fn healthz(base: &str) -> u16 {
    http()
        .get(format!("{base}/healthz"))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn a_sync_panic_is_a_failed_cycle_and_a_dead_sync_loop_is_unhealthy() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let origin = Server::start(&repo.dir);
    // A cycle that panics is recorded as failed (not "in progress" forever); the loop lives on.
    let relay = faulty_relay(tmp.path(), &repo, &origin.base, "sync-panic");
    let s = wait_status(&relay.base, "the panicking cycle recorded as failed", |s| {
        s["last_sync"]["result"] == "failed" && s["last_sync"]["in_progress"] == false
    });
    let error = s["last_sync"]["error"].as_str().unwrap();
    assert!(error.contains("panicked"), "{error}");
    assert_eq!(healthz(&relay.base), 200);
    // A sync thread that dies makes /healthz answer 503.
    let dead = faulty_relay(tmp.path(), &repo, &origin.base, "sync-loop-panic");
    eventually(
        "/healthz answers 503 once the sync loop died",
        || match healthz(&dead.base) {
            503 => Ok(()),
            s => Err(format!("/healthz answered {s}")),
        },
    );
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    // The reader is gone before the command writes anything: every write is a broken pipe.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = launcher()
        .command(&["repo", "status", repo.dir.to_str().unwrap()])
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

/// Every file under `dir` (recursively), with its path.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn upstream_credentials_are_never_shown_stored_or_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let origin = Server::start(&repo.dir);
    let db = format!("sqlite://{}", tmp.path().join("manager.db").display());
    ok(&[
        "admin", "--db", &db, "group", "put", "site", "--role", "relay",
    ]);
    let token = enroll_token(&db, "site", None);
    let token_file = tmp.path().join("relay.token");
    std::fs::write(&token_file, token.trim()).unwrap();
    let mgr = Server::spawn(&["manager", "--db", &db, "--listen", "127.0.0.1:0"], &[]);
    // The first upstream refuses connections (its error names it), the second serves.
    let port = origin.base.rsplit(':').next().unwrap();
    let dead = format!("http://user:secret@127.0.0.1:{}", free_port());
    let with_credentials = format!("http://user:secret@127.0.0.1:{port}");
    let (cache, log) = (tmp.path().join("cache"), tmp.path().join("relay.log"));
    let relay = launcher()
        .rust_log("debug")
        .server(
            &[
                "relay",
                "--upstream",
                &dead,
                "--upstream",
                &with_credentials,
                "--trusted-root",
                repo.root_v1.to_str().unwrap(),
                "--cache",
                cache.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--manager",
                &mgr.base,
                "--enroll-token-file",
                token_file.to_str().unwrap(),
                "--hostname",
                "relay-with-credentials",
            ],
            &[],
            updraft::launch::Logs::File(log.clone()),
        )
        .unwrap();
    // The credentials were used to sync (reqwest sends them as basic authentication).
    let status = wait_status(&relay.base, "a sync and a heartbeat", |s| {
        s["view"]["id"].is_u64() && s["manager"]["last_heartbeat"].is_string()
    });
    let shown = format!("http://***@127.0.0.1:{port}");
    assert_eq!(status["upstream_in_use"], shown.as_str(), "{status:#}");
    assert!(!status.to_string().contains("secret"), "{status:#}");
    assert!(
        status.to_string().contains("http://***@127.0.0.1"),
        "{status:#}"
    );
    let mut stored = files_under(&cache);
    stored.push(log.clone());
    stored.extend(files_under(tmp.path()).into_iter().filter(|p| {
        p.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("manager.db")
    }));
    let mut seen_in_db = false;
    for p in &stored {
        let bytes = std::fs::read(p).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let line = text.lines().find(|l| l.contains("secret"));
        assert!(
            line.is_none(),
            "{} holds the password: {line:?}",
            p.display()
        );
        let in_db = p.to_str().unwrap().contains("manager.db");
        seen_in_db |= in_db && contains(&bytes, &shown);
    }
    assert!(seen_in_db, "the manager recorded the redacted upstream");
    assert!(
        contains(&std::fs::read(&log).unwrap(), "http://***@127.0.0.1"),
        "the log names the upstream, redacted"
    );
}

/// Paths under `dir` (itself included) whose mode has group or other bits, with the mode;
/// files for which `keeps_mode` holds may carry them (their directories may not).
#[cfg(unix)]
fn readable_by_others(
    dir: &std::path::Path,
    keeps_mode: impl Fn(&std::path::Path) -> bool,
) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().permissions().mode();
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        if mode(&d) & 0o077 != 0 {
            found.push(format!("{} {:o}", d.display(), mode(&d) & 0o777));
        }
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if mode(&p) & 0o077 != 0 && !keeps_mode(&p) {
                found.push(format!("{} {:o}", p.display(), mode(&p) & 0o777));
            }
        }
    }
    found
}

#[cfg(unix)]
#[test]
fn host_state_and_the_manager_database_are_private_and_the_repository_public() {
    use std::os::unix::fs::PermissionsExt;
    let bed = AgentBed::new();
    let db = format!("sqlite://{}", bed.path("manager/manager.db").display());
    ok(&["admin", "--db", &db, "group", "put", "branch"]);
    let token = enroll_token(&db, "branch", None);
    std::fs::write(bed.path("enroll.token"), token.trim()).unwrap();
    let mgr = Server::spawn(&["manager", "--db", &db, "--listen", "127.0.0.1:0"], &[]);
    let mut o = bed.opts();
    o.restart = Some("true".into());
    o.manager = Some((mgr.base.clone(), bed.path("enroll.token"), "pc-1".into()));
    let cfg = bed.config(&o);
    bed.publish_patch(
        "CP-1519",
        "9.5.1519",
        ">=9.5.1514",
        "9.5.1519",
        "cp.tar",
        &[("bin/scanner", b"new")],
    );
    let r = bed.once(&cfg).unwrap();
    assert!(r["manager_error"].is_null(), "{r:#}");
    let state = bed.path("state");
    for f in [
        "status.json",
        "installed.json",
        "history.jsonl",
        "policy.json",
        "manager.json",
    ] {
        assert!(state.join(f).is_file(), "{f} was written");
    }
    // Patch backups keep the product's modes to restore them; they sit in 0700 directories.
    let backup = |p: &std::path::Path| p.to_str().unwrap().contains(".backup/");
    assert_eq!(readable_by_others(&state, backup), Vec::<String>::new());

    let cache = bed.path("relay-cache");
    relay_once(&[&bed.origin.base], &bed.repo.root_v1, &cache).unwrap();
    assert!(cache.join("views").read_dir().unwrap().next().is_some());
    assert_eq!(readable_by_others(&cache, |_| false), Vec::<String>::new());

    let manager_dir = bed.path("manager");
    assert_eq!(
        readable_by_others(&manager_dir, |_| false),
        Vec::<String>::new()
    );
    assert!(manager_dir.join("manager.db-wal").exists());

    // The published repository stays readable by a web server.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&bed.repo.dir.join("metadata/timestamp.json")), 0o644);
    for t in std::fs::read_dir(bed.repo.dir.join("targets")).unwrap() {
        let p = t.unwrap().path();
        if p.is_file() {
            assert_eq!(mode(&p), 0o644, "{}", p.display());
        }
    }
}
