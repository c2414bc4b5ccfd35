//! Updraft's own builds as a product: agents and relays replace their own executable under a
//! supervisor, return by themselves from a build that does not come back, and a rollout of a
//! new build follows the upgrade plan (relays before the agents).
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::*;

/// How a published build of `updraft` behaves.
#[derive(Clone, Copy, PartialEq)]
enum Build {
    /// Runs the build under test (versions differ only in their signed version).
    Good,
    /// Passes the check a new build must pass, then dies.
    Dies,
    /// Fails that check.
    FailsCheck,
}

/// A build of `updraft` as a publisher ships it: a script around the build under test.
fn build_script(dir: &Path, version: &str, build: Build) -> PathBuf {
    let real = bin().display().to_string();
    let body = match build {
        Build::Good => format!("#!/bin/sh\nexec '{real}' \"$@\"\n"),
        Build::Dies => {
            format!("#!/bin/sh\ncase \"$*\" in *--check*) exec '{real}' \"$@\";; esac\nexit 7\n")
        }
        Build::FailsCheck => {
            format!("#!/bin/sh\ncase \"$*\" in *--check*) exit 3;; esac\nexec '{real}' \"$@\"\n")
        }
    };
    let file = dir.join(version).join("updraft");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, body).unwrap();
    file
}

/// Publish a build of `updraft` (see [`build_script`]).
fn publish_build(f: &Fleet, version: &str, build: Build) {
    let file = build_script(&f.bed.path("builds"), version, build);
    let repo = f.bed.repo.dir.to_str().unwrap();
    let add = [
        "repo",
        "add",
        repo,
        file.to_str().unwrap(),
        "--component",
        "updraft",
    ];
    ok(&[&add[..], &["--version", version, "--kind", "program"]].concat());
    f.bed.repo.publish();
}

/// An agent `name` (polling every second) whose module `updraft` in `NAME/bin` holds its own
/// build, started as a daemon under its supervisor; (configuration, bin dir, process).
fn self_upgrading_agent(f: &Fleet, name: &str) -> (PathBuf, PathBuf, updraft::launch::Process) {
    f.admin(&["group", "put", "fast", "--poll-interval", "1"]);
    let cfg = f.agent(name, "fast");
    let bindir = f.bed.path(&format!("{name}/bin"));
    std::fs::create_dir_all(&bindir).unwrap();
    f.bed.edit_config(&cfg, |c| {
        c.poll_interval = 1;
        c.modules.push(agent::ModuleConfig {
            name: "updraft".into(),
            components: vec!["updraft".into()],
            install_dir: bindir.clone(),
            reload: None,
            self_upgrade: true,
        })
    });
    let args = ["agent", "--config", cfg.to_str().unwrap()];
    let log = f.bed.path(&format!("{name}/agent.log"));
    let daemon = launcher()
        .daemon(
            &args,
            &[("RUST_LOG", "info")],
            updraft::launch::Logs::File(log),
        )
        .unwrap();
    (cfg, bindir, daemon)
}

/// The first host's record at the manager.
fn first_host(f: &Fleet) -> Value {
    f.api("GET", "/api/v1/hosts", None)["hosts"][0].clone()
}

#[test]
fn an_agent_replaces_its_own_build_keeps_reporting_and_returns_by_itself_from_one_that_dies() {
    let f = Fleet::new();
    good_base(&f);
    publish_build(&f, "1.0", Build::Good);
    let (cfg, bindir, daemon) = self_upgrading_agent(&f, "self-1");
    let reports = |want: &str| runs(&f, "self-1", want);
    let pending = f.bed.path("self-1/state/upgrade.json");
    let confirmed = || {
        eventually("the new build confirmed", || {
            if pending.exists() {
                Err("upgrade.json is there")
            } else {
                Ok(())
            }
        })
    };
    reports("1.0");
    confirmed();
    publish_build(&f, "2.0", Build::Good);
    reports("2.0");
    confirmed();
    // 3.0 passes the check but its worker dies: the supervisor puts 2.0 back by itself.
    publish_build(&f, "3.0", Build::Dies);
    let ledger = f.bed.path("self-1/state/products.json");
    eventually("3.0 recorded as failed", || {
        let l = std::fs::read_to_string(&ledger).unwrap_or_default();
        if l.contains("did not come back") {
            Ok(())
        } else {
            Err(l)
        }
    });
    let before = first_host(&f)["last_seen"].clone();
    eventually("it keeps reporting on 2.0", || {
        let h = first_host(&f);
        if h["last_seen"] != before && h["components"]["updraft"] == "2.0" {
            Ok(())
        } else {
            Err(format!("{h:#}"))
        }
    });
    assert_eq!(
        std::fs::read_to_string(bindir.join("updraft")).unwrap(),
        std::fs::read_to_string(f.bed.path("builds/2.0/updraft")).unwrap()
    );
    let _ = cfg;
    drop(daemon);
}

#[test]
fn a_first_build_that_dies_leaves_the_agent_on_the_build_it_was_installed_with() {
    let f = Fleet::new();
    good_base(&f);
    publish_build(&f, "1.0", Build::Dies);
    let (_cfg, bindir, daemon) = self_upgrading_agent(&f, "self-0");
    let ledger = f.bed.path("self-0/state/products.json");
    eventually("1.0 recorded as failed", || {
        let l = std::fs::read_to_string(&ledger).unwrap_or_default();
        if l.contains("did not come back") {
            Ok(())
        } else {
            Err(l)
        }
    });
    // The supervisor's own build was copied back, and it keeps updating and reporting.
    let back = std::fs::metadata(bindir.join("updraft")).unwrap().len();
    assert_eq!(back, std::fs::metadata(bin()).unwrap().len());
    let before = first_host(&f)["last_seen"].clone();
    eventually("it keeps reporting", || {
        if first_host(&f)["last_seen"] != before {
            Ok(())
        } else {
            Err("no new heartbeat")
        }
    });
    assert_eq!(f.pattern("self-0"), "good 18.524.00");
    drop(daemon);
}

#[test]
fn a_host_outside_the_released_waves_cannot_halt_a_rollout_with_a_forged_failure() {
    let f = Fleet::new();
    good_base(&f);
    let (_canary, _prod, id) = f.canary_then_fleet(3600, 900);
    // prod-1's own credential, as a thief would hold it: it reports the version failed.
    let identity: Value =
        serde_json::from_slice(&std::fs::read(f.bed.path("prod-1/state/manager.json")).unwrap())
            .unwrap();
    let forged = json!({"hostname": "prod-1", "role": "agent",
        "components": {C: "18.524.00"},
        "failed_versions": [{"component": C, "version": NEW, "reason": "reload failed: forged"}]});
    let r = http()
        .post(format!("{}/api/v1/heartbeat", f.base))
        .bearer_auth(identity["credential"].as_str().unwrap())
        .json(&forged)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // The gates run every second: the rollout keeps waiting on its soak, not halted.
    let before = f.api("GET", &format!("/api/v1/rollouts/{id}"), None)["reason"].clone();
    eventually("the gates ran again", || {
        let v = f.api("GET", &format!("/api/v1/rollouts/{id}"), None);
        match v["state"].as_str() {
            Some("running")
                if v["reason"] != before
                    && v["reason"].as_str().is_some_and(|r| r.contains("soaking")) =>
            {
                Ok(v)
            }
            Some("running") => Err(format!("{v:#}")),
            _ => panic!("a forged failure outside the released waves changed the rollout: {v:#}"),
        }
    });
    let v = f.api("GET", &format!("/api/v1/rollouts/{id}"), None);
    assert_eq!(v["state"], "running", "{v:#}");
    assert_eq!(v["waves"][0]["failed"], 0, "{v:#}");
}

#[test]
fn a_manager_cannot_pin_an_agent_back_to_an_older_build_of_itself() {
    let f = Fleet::new();
    good_base(&f);
    publish_build(&f, "1.0", Build::Good);
    publish_build(&f, "2.0", Build::Good);
    let (_cfg, bindir, daemon) = self_upgrading_agent(&f, "self-2");
    let runs = |want: &str| runs(&f, "self-2", want);
    runs("2.0");
    // A hostile (or mistaken) manager pins the agent's own build to the older 1.0.
    f.admin(&[
        "group",
        "put",
        "fast",
        "--poll-interval",
        "1",
        "--pin",
        "updraft=1.0",
    ]);
    let seen = first_host(&f)["last_seen"].clone();
    let h = eventually("heartbeats under the pin", || {
        let h = first_host(&f);
        let pinned = h["applied_policy"]["pinned"]["updraft"] == "1.0";
        if pinned && h["last_seen"] != seen {
            Ok(h)
        } else {
            Err(format!("{h:#}"))
        }
    });
    assert_eq!(h["components"]["updraft"], "2.0", "{h:#}");
    assert_eq!(
        std::fs::read_to_string(bindir.join("updraft")).unwrap(),
        std::fs::read_to_string(f.bed.path("builds/2.0/updraft")).unwrap()
    );
    drop(daemon);
}

/// A relay `name` of group `relays` (syncing every second from the origin, reporting to the
/// manager) whose own build lives in `NAME/bin`, started under its supervisor on a fixed port
/// (a new build listens where the old one did); (bin dir, server).
fn self_upgrading_relay(f: &Fleet, name: &str) -> (PathBuf, updraft::launch::Server) {
    f.admin(&[
        "group",
        "put",
        "relays",
        "--role",
        "relay",
        "--poll-interval",
        "1",
    ]);
    let dir = f.bed.path(name);
    let bindir = dir.join("bin");
    std::fs::create_dir_all(&bindir).unwrap();
    let token = enroll_token(&f.db, "relays", Some(1));
    std::fs::write(dir.join("enroll.token"), token.trim()).unwrap();
    let config = format!(
        "upstream = [{origin:?}]\ntrusted_root = {root:?}\ncache = {cache:?}\n\
         listen = \"127.0.0.1:{port}\"\npoll_interval = 1\nmanager = {mgr:?}\n\
         enroll_token_file = {token:?}\nhostname = {name:?}\n\n\
         [self_upgrade]\ninstall_dir = {bin:?}\n",
        origin = f.bed.origin.base,
        root = f.bed.repo.root_v1.display().to_string(),
        cache = dir.join("cache").display().to_string(),
        port = free_port(),
        mgr = f.base,
        token = dir.join("enroll.token").display().to_string(),
        bin = bindir.display().to_string(),
    );
    let cfg = dir.join("relay.toml");
    std::fs::write(&cfg, config).unwrap();
    let relay = launcher()
        .server(
            &["relay", "--config", cfg.to_str().unwrap()],
            &[],
            updraft::launch::Logs::File(dir.join("relay.log")),
        )
        .unwrap();
    (bindir, relay)
}

/// The record of host `name` at the manager.
fn host(f: &Fleet, name: &str) -> Value {
    let hosts = f.api("GET", "/api/v1/hosts", None)["hosts"].clone();
    hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hostname"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Wait until host `name` reports running build `want` of `updraft`.
fn runs(f: &Fleet, name: &str, want: &str) -> Value {
    eventually(&format!("{name} reports updraft {want}"), || {
        let h = host(f, name);
        match h["components"]["updraft"] == want && h["builds"]["updraft"] == want {
            true => Ok(h),
            false => Err(format!("{h:#}")),
        }
    })
}

/// Wait until host `name` runs on a policy holding `updraft` below `version` (a rollout's
/// holds reach a host with its next heartbeat: publish after that).
fn held(f: &Fleet, name: &str, version: &str) {
    eventually(&format!("{name} holds updraft below {version}"), || {
        let h = host(f, name);
        match h["applied_policy"]["holds"]["updraft"] == version {
            true => Ok(()),
            false => Err(format!("{h:#}")),
        }
    });
}

#[test]
fn a_rollout_of_a_new_build_upgrades_relays_then_agents_and_a_relay_returns_from_one_that_dies() {
    let f = Fleet::new();
    good_base(&f);
    publish_build(&f, "0.0.1", Build::Good);
    let (bindir, relay) = self_upgrading_relay(&f, "relay-1");
    let (_, _, agent) = self_upgrading_agent(&f, "agent-1");
    runs(&f, "relay-1", "0.0.1");
    runs(&f, "agent-1", "0.0.1");
    let pending = f.bed.path("relay-1/cache/self-upgrade/upgrade.json");
    eventually("the relay's first build confirmed", || {
        match pending.exists() {
            true => Err("upgrade.json is there"),
            false => Ok(()),
        }
    });

    // 0.0.2 follows the upgrade plan: the relay group's wave, then the agents'.
    let create = |version: &str| {
        let body = json!({"component": "updraft", "version": version, "follow_plan": true,
            "silent_after": 5, "waves": [{"share": 100, "soak": 2}]});
        f.api("POST", "/api/v1/rollouts", Some(body))
    };
    let r = create("0.0.2");
    let id = r["id"].as_i64().unwrap();
    assert_eq!(r["spec"]["waves"][0]["groups"], json!(["relays"]), "{r:#}");
    held(&f, "agent-1", "0.0.2");
    publish_build(&f, "0.0.2", Build::Good);
    let relay_at = runs(&f, "relay-1", "0.0.2");
    let agent_at = host(&f, "agent-1");
    let progress = f.api("GET", &format!("/api/v1/rollouts/{id}"), None);
    assert_eq!(
        agent_at["components"]["updraft"], "0.0.1",
        "the agents wait for the relay wave: {relay_at:#} {agent_at:#} {progress:#}"
    );
    runs(&f, "agent-1", "0.0.2");
    f.until(id, "complete");

    // 0.0.3 passes the check, then its relay worker dies: the relay's supervisor puts 0.0.2
    // back by itself, the relay wave fails, and the agents never see 0.0.3.
    let r = create("0.0.3");
    let id = r["id"].as_i64().unwrap();
    held(&f, "agent-1", "0.0.3");
    publish_build(&f, "0.0.3", Build::Dies);
    let halted = f.until(id, "halted");
    let reason = halted["reason"].as_str().unwrap();
    assert!(reason.contains("relay-1"), "{reason}");
    let before = runs(&f, "relay-1", "0.0.2")["last_seen"].clone();
    eventually("the relay keeps reporting on 0.0.2", || {
        let h = host(&f, "relay-1");
        match h["last_seen"] != before && h["components"]["updraft"] == "0.0.2" {
            true => Ok(()),
            false => Err(format!("{h:#}")),
        }
    });
    assert_eq!(
        std::fs::read_to_string(bindir.join("updraft")).unwrap(),
        std::fs::read_to_string(f.bed.path("builds/0.0.2/updraft")).unwrap()
    );
    assert_eq!(host(&f, "agent-1")["components"]["updraft"], "0.0.2");
    // It still serves its agents.
    let ts = http()
        .get(format!("{}/metadata/timestamp.json", relay.base))
        .send()
        .unwrap();
    assert!(ts.status().is_success(), "{}", ts.status());
    drop(agent);
}

#[test]
fn a_build_that_fails_its_check_is_refused_once_and_the_agent_keeps_its_build_without_restarting() {
    let f = Fleet::new();
    good_base(&f);
    publish_build(&f, "1.0", Build::Good);
    let (_cfg, bindir, daemon) = self_upgrading_agent(&f, "self-3");
    runs(&f, "self-3", "1.0");
    publish_build(&f, "2.0", Build::FailsCheck);
    let ledger = f.bed.path("self-3/state/products.json");
    eventually("2.0 recorded as failed", || {
        let l = std::fs::read_to_string(&ledger).unwrap_or_default();
        match l.contains("check exited") {
            true => Ok(()),
            false => Err(l),
        }
    });
    // Three more cycles, each reported on 1.0 by the same worker.
    for _ in 0..3 {
        let before = host(&f, "self-3")["last_seen"].clone();
        eventually("another report on 1.0", || {
            let h = host(&f, "self-3");
            match h["last_seen"] != before && h["components"]["updraft"] == "1.0" {
                true => Ok(()),
                false => Err(format!("{h:#}")),
            }
        });
    }
    let log = std::fs::read_to_string(f.bed.path("self-3/agent.log")).unwrap();
    // Regression: the refused build's upgrade record made the worker restart several times a
    // second, for ever.
    assert_eq!(
        log.matches("starting the new build").count(),
        1,
        "only the restart into 1.0: {log}"
    );
    assert!(!f.bed.path("self-3/state/upgrade.json").exists());
    assert_eq!(
        std::fs::read_to_string(bindir.join("updraft")).unwrap(),
        std::fs::read_to_string(f.bed.path("builds/1.0/updraft")).unwrap()
    );
    drop(daemon);
}

#[test]
fn a_self_upgrading_relay_takes_its_settings_from_its_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.toml");
    let text = format!(
        "upstream = [\"http://127.0.0.1:9\"]\ntrusted_root = \"root.json\"\ncache = {:?}\n\n\
         [self_upgrade]\ninstall_dir = {:?}\n",
        dir.path().join("cache"),
        dir.path().join("bin")
    );
    std::fs::write(&cfg, text).unwrap();
    // A flag the supervisor would not pass on to the builds it starts is refused, not dropped.
    let e = fails(&[
        "relay",
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:1",
    ]);
    assert!(e.contains("no other flag than --config"), "{e}");
    // An install directory that is not one is refused before anything runs.
    std::fs::write(dir.path().join("bin"), b"a file").unwrap();
    let e = fails(&["relay", "--config", cfg.to_str().unwrap(), "--check"]);
    assert!(e.contains("self_upgrade.install_dir"), "{e}");
}
