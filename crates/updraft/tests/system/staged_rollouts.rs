//! Staged rollouts with real processes: a manager, the origin and several `updraft agent`
//! hosts. A bad version stops at the canary and every host that took it returns to the version
//! below it (from its own store); a good one advances wave by wave, gated by the health the
//! agents report; a version the publisher withdraws leaves every host within one poll; a
//! group on the `n-1` channel runs the newest version but one.
use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::{json, Value};
use updraft::launch::{agent_config_toml, AgentSetup, ManagerLink, ModuleSetup, ProductSetup};

const C: &str = "antimalware.pattern";
const NEW: &str = "18.600.00";

struct Fleet {
    bed: AgentBed,
    db: String,
    admin: String,
    /// The manager's base URL (the same after a restart).
    base: String,
    listen: String,
    extra: Vec<String>,
    mgr: std::cell::RefCell<Option<Server>>,
    /// Where agents made from now on update from (the origin, or a relay).
    source: std::cell::RefCell<String>,
    relay: std::cell::RefCell<Option<Server>>,
}

impl Fleet {
    /// A manager (gates every second) with agent groups `canary` and `fleet`.
    fn new() -> Fleet {
        Self::with(&[])
    }

    /// The same, with more `updraft manager` flags.
    fn with(extra: &[&str]) -> Fleet {
        let bed = AgentBed::new();
        let db = format!("sqlite://{}", bed.path("manager.db").display());
        let admin = ok(&["admin", "--db", &db, "token", "create"])
            .trim()
            .to_string();
        for g in ["canary", "fleet", "slow"] {
            ok(&[
                "admin",
                "--db",
                &db,
                "group",
                "put",
                g,
                "--poll-interval",
                "60",
            ]);
        }
        let listen = format!("127.0.0.1:{}", free_port());
        let mut f = Fleet {
            bed,
            db,
            admin,
            base: String::new(),
            listen,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            mgr: std::cell::RefCell::new(None),
            source: std::cell::RefCell::new(String::new()),
            relay: std::cell::RefCell::new(None),
        };
        *f.source.borrow_mut() = f.bed.origin.base.clone();
        f.base = f.start_manager();
        f
    }

    /// Start the manager on the fleet's address; its base URL.
    fn start_manager(&self) -> String {
        let mut args = vec![
            "manager",
            "--db",
            &self.db,
            "--listen",
            &self.listen,
            "--rollout-tick",
            "1",
        ];
        args.extend(self.extra.iter().map(String::as_str));
        let mgr = Server::spawn(&args, &[]);
        let base = mgr.base.clone();
        *self.mgr.borrow_mut() = Some(mgr);
        base
    }

    /// Start a relay syncing from the origin every second; agents made afterwards use it.
    /// Its base URL.
    fn start_relay(&self) -> String {
        let cache = self.bed.path("relay-cache");
        let relay = Server::spawn(
            &[
                "relay",
                "--upstream",
                &self.bed.origin.base,
                "--trusted-root",
                self.bed.repo.root_v1.to_str().unwrap(),
                "--cache",
                cache.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--poll-interval",
                "1",
            ],
            &[],
        );
        let base = relay.base.clone();
        *self.source.borrow_mut() = base.clone();
        *self.relay.borrow_mut() = Some(relay);
        base
    }

    /// Kill the manager (-9).
    fn kill_manager(&self) {
        if let Some(m) = self.mgr.borrow_mut().take() {
            m.kill();
        }
    }

    /// An agent of `group` named `name` whose module reload fails unless the pattern file says
    /// "good"; its configuration path.
    fn agent(&self, name: &str, group: &str) -> PathBuf {
        self.agent_with(name, group, None)
    }

    /// The same, with a product `scanner` (build 9.5.1514) restarted by `restart`.
    fn agent_with(&self, name: &str, group: &str, restart: Option<&str>) -> PathBuf {
        let dir = self.bed.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        let token = enroll_token(&self.db, group, Some(1));
        std::fs::write(dir.join("enroll.token"), token.trim()).unwrap();
        let av = dir.join("av");
        let setup = AgentSetup {
            state_dir: dir.join("state"),
            trusted_root: self.bed.repo.root_v1.clone(),
            relays: vec![self.source.borrow().clone()],
            origin: None,
            allow_direct: false,
            poll_interval: Some(60),
            manager: Some(ManagerLink {
                url: self.base.clone(),
                enroll_token_file: dir.join("enroll.token"),
                hostname: name.into(),
            }),
            modules: vec![ModuleSetup {
                name: "antimalware".into(),
                components: vec![C.into()],
                install_dir: av.clone(),
                reload: Some(format!("grep -q good {}/{C}.dat", av.display())),
                self_upgrade: false,
            }],
            products: restart
                .map(|cmd| {
                    copy_dir(&self.bed.path("opt"), &dir.join("opt"));
                    vec![ProductSetup {
                        name: "scanner".into(),
                        build: "9.5.1514".into(),
                        install_dir: dir.join("opt"),
                        restart: Some(cmd.into()),
                        preflight: Vec::new(),
                    }]
                })
                .unwrap_or_default(),
        };
        let path = dir.join("agent.toml");
        std::fs::write(&path, agent_config_toml(&setup).unwrap()).unwrap();
        path
    }

    /// `updraft admin --db DB ARGS…`; its output.
    fn admin(&self, args: &[&str]) -> String {
        ok(&[&["admin", "--db", &self.db][..], args].concat())
    }

    /// The same, which must fail; its error output.
    fn admin_fails(&self, args: &[&str]) -> String {
        fails(&[&["admin", "--db", &self.db][..], args].concat())
    }

    fn once(&self, config: &Path) -> Value {
        let r = self.bed.once(config).unwrap();
        assert!(r["manager_error"].is_null(), "{r:#}");
        r
    }

    fn pattern(&self, name: &str) -> String {
        std::fs::read_to_string(self.bed.path(&format!("{name}/av/{C}.dat"))).unwrap()
    }

    fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "POST" => http().post(url).json(&body.unwrap_or(json!({}))),
            _ => http().get(url),
        };
        let resp = req.bearer_auth(&self.admin).send().unwrap();
        let status = resp.status();
        let v: Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {v:#}");
        v
    }

    fn rollout(&self, waves: Value, silent_after: u64) -> i64 {
        let body =
            json!({"component": C, "version": NEW, "waves": waves, "silent_after": silent_after});
        self.api("POST", "/api/v1/rollouts", Some(body))["id"]
            .as_i64()
            .unwrap()
    }

    /// Agents `canary-1` (group canary) and `prod-1` (group fleet), a rollout of NEW to the
    /// canary group first (soaked `canary_soak` s), then to everyone, and each agent's first
    /// cycle, which brings it its hold; (canary, prod, rollout id).
    fn canary_then_fleet(&self, canary_soak: u64, silent_after: u64) -> (PathBuf, PathBuf, i64) {
        let canary = self.agent("canary-1", "canary");
        let prod = self.agent("prod-1", "fleet");
        let id = self.rollout(
            json!([{"groups": ["canary"], "share": 100, "soak": canary_soak},
                   {"share": 100, "soak": 0}]),
            silent_after,
        );
        self.once(&canary);
        self.once(&prod);
        (canary, prod, id)
    }

    /// Wait (bounded) until the rollout's state is `state`; the rollout's status.
    fn until(&self, id: i64, state: &str) -> Value {
        eventually(&format!("rollout {id} {state}"), || {
            let v = self.api("GET", &format!("/api/v1/rollouts/{id}"), None);
            if v["state"] == state {
                Ok(v)
            } else {
                Err(format!("{v:#}"))
            }
        })
    }

    fn publish_new(&self, body: &[u8]) {
        self.bed.repo.add(C, NEW, "pattern", body);
        self.bed.repo.publish();
    }
}

/// The base version says "good" so that every module is online before the rollout.
fn good_base(f: &Fleet) {
    f.bed.repo.add(C, "18.524.00", "pattern", b"good 18.524.00");
    f.bed.repo.publish();
}

#[test]
fn a_bad_version_stops_at_the_canary_and_hosts_that_took_it_roll_back() {
    let f = Fleet::new();
    good_base(&f);
    let canary = f.agent("canary-1", "canary");
    let prod: Vec<PathBuf> = (1..=3)
        .map(|i| f.agent(&format!("prod-{i}"), "fleet"))
        .collect();
    for a in prod.iter().chain([&canary]) {
        f.once(a);
    }
    // The canary is released first; it goes silent after taking the version (the crash case).
    let id = f.rollout(
        json!([{"groups": ["canary"], "share": 100, "soak": 60}, {"share": 100, "soak": 0}]),
        3,
    );
    for a in prod.iter().chain([&canary]) {
        f.once(a); // receive the holds
    }
    f.publish_new(b"good but crashes 18.600.00");
    f.once(&canary);
    assert_eq!(f.pattern("canary-1"), "good but crashes 18.600.00");
    for a in &prod {
        f.once(a);
    }
    for i in 1..=3 {
        assert_eq!(
            f.pattern(&format!("prod-{i}")),
            "good 18.524.00",
            "held at wave 1"
        );
    }
    // The canary never reports again: after silent_after (3 s) the gates halt and roll back.
    let halted = f.until(id, "halted");
    assert_eq!(halted["rolled_back"], true, "{halted:#}");
    let reason = halted["reason"].as_str().unwrap();
    assert!(
        reason.contains("canary-1") && reason.contains("silent"),
        "{reason}"
    );
    // When the canary comes back it returns to the version below, from its own store.
    let r = f.once(&canary);
    assert_eq!(f.pattern("canary-1"), "good 18.524.00", "{r:#}");
    for a in &prod {
        f.once(a);
    }
    for i in 1..=3 {
        assert_eq!(
            f.pattern(&format!("prod-{i}")),
            "good 18.524.00",
            "never released"
        );
    }
    let audit = f.api("GET", "/api/v1/audit", None);
    let actions: Vec<&str> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"rollout-halt") && actions.contains(&"rollout-create"),
        "{actions:?}"
    );
}

#[test]
fn a_failed_reload_on_the_canary_halts_before_the_fleet_sees_the_version() {
    let f = Fleet::new();
    good_base(&f);
    let (canary, prod, id) = f.canary_then_fleet(0, 900);
    f.publish_new(b"broken 18.600.00"); // the module's reload refuses it
    f.once(&canary);
    assert_eq!(
        f.pattern("canary-1"),
        "good 18.524.00",
        "the agent restored the old version"
    );
    let halted = f.until(id, "halted");
    let reason = halted["reason"].as_str().unwrap();
    assert!(reason.contains("canary-1: reload failed"), "{reason}");
    f.once(&prod);
    assert_eq!(f.pattern("prod-1"), "good 18.524.00");
    let policy: Value =
        serde_json::from_slice(&std::fs::read(f.bed.path("prod-1/state/policy.json")).unwrap())
            .unwrap();
    assert_eq!(policy["withheld"][C][0], NEW, "{policy:#}");
}

#[test]
fn a_good_version_advances_wave_by_wave_and_a_withdrawn_one_leaves_every_host() {
    let f = Fleet::new();
    good_base(&f);
    let canary = f.agent("canary-1", "canary");
    let prod = f.agent("prod-1", "fleet");
    let mut needs_ok = json!({"share": 100, "soak": 0, "approval": true});
    needs_ok["success"] = json!(100);
    let id = f.rollout(
        json!([{"groups": ["canary"], "share": 100, "soak": 0}, needs_ok]),
        900,
    );
    f.once(&canary);
    f.once(&prod);
    f.publish_new(b"good 18.600.00");
    f.once(&canary);
    f.once(&prod);
    assert_eq!(f.pattern("canary-1"), "good 18.600.00");
    assert_eq!(f.pattern("prod-1"), "good 18.524.00");
    // Wave 1 is healthy, wave 2 waits for an approval.
    eventually("wave 2 awaits approval", || {
        let v = f.api("GET", &format!("/api/v1/rollouts/{id}"), None);
        let why = v["reason"].as_str().unwrap_or_default().to_string();
        if why.contains("awaits approval") {
            Ok(v)
        } else {
            Err(format!("{v:#}"))
        }
    });
    // A host that enrols during the rollout joins it: held like the rest of its wave.
    let late = f.agent("prod-2", "fleet");
    f.once(&late);
    assert_eq!(f.pattern("prod-2"), "good 18.524.00");
    f.api("POST", &format!("/api/v1/rollouts/{id}/approve"), None);
    eventually("wave 2 released", || {
        let v = f.api("GET", &format!("/api/v1/rollouts/{id}"), None);
        if v["wave"] == 1 {
            Ok(())
        } else {
            Err(format!("{v:#}"))
        }
    });
    f.once(&prod);
    f.once(&late);
    assert_eq!(f.pattern("prod-1"), "good 18.600.00");
    assert_eq!(f.pattern("prod-2"), "good 18.600.00");
    let done = f.until(id, "complete");
    assert_eq!(done["waves"][1]["healthy"], 2, "{done:#}");

    // The publisher withdraws the version: every host returns within one poll.
    let target = format!("content/{C}/{NEW}/{C}.dat");
    ok(&["repo", "remove", f.bed.repo.dir.to_str().unwrap(), &target]);
    f.bed.repo.publish();
    for (a, name) in [(&canary, "canary-1"), (&prod, "prod-1"), (&late, "prod-2")] {
        f.once(a);
        assert_eq!(f.pattern(name), "good 18.524.00", "{name}");
    }
}

#[test]
fn a_group_on_the_previous_channel_runs_the_newest_version_but_one() {
    let f = Fleet::new();
    good_base(&f);
    f.publish_new(b"good 18.600.00");
    f.admin(&["group", "put", "slow", "--channel", "n-1"]);
    let slow = f.agent("slow-1", "slow");
    let prod = f.agent("prod-1", "fleet");
    f.once(&slow);
    f.once(&prod);
    assert_eq!(f.pattern("slow-1"), "good 18.524.00");
    assert_eq!(f.pattern("prod-1"), "good 18.600.00");
    // A new host asks for its policy before its first install: it never ran the newest.
    let newest = format!("slow-1/state/versions/{C}/{NEW}");
    assert!(!f.bed.path(&newest).exists(), "{newest} was downloaded");
    let e = f.admin_fails(&["group", "put", "slow", "--channel", "beta"]);
    assert!(e.contains("channel"), "{e}");
}

#[test]
fn a_host_that_crashes_while_installing_halts_the_rollout_and_recovers_to_the_old_version() {
    let f = Fleet::new();
    good_base(&f);
    let (canary, prod, id) = f.canary_then_fleet(60, 3);
    f.publish_new(b"good but crashes 18.600.00");
    // The process dies mid-install (a real abort), before it could report anything.
    let crashed = f
        .bed
        .once_env(&canary, &[("UPDRAFT_FAULT", "install-after-stage")]);
    assert!(crashed.is_err(), "{crashed:?}");
    let halted = f.until(id, "halted");
    let reason = halted["reason"].as_str().unwrap();
    assert!(
        reason.contains("canary-1") && reason.contains("silent"),
        "{reason}"
    );
    // Back up, it completes or undoes the interrupted install, then leaves the withheld version.
    f.once(&canary);
    assert_eq!(f.pattern("canary-1"), "good 18.524.00");
    f.once(&prod);
    assert_eq!(f.pattern("prod-1"), "good 18.524.00");
}

#[test]
fn a_manager_killed_mid_wave_loses_no_rollout_state_and_an_agent_killed_mid_rollback_completes_it()
{
    let f = Fleet::new();
    good_base(&f);
    let (canary, prod, id) = f.canary_then_fleet(3600, 900);
    f.publish_new(b"good 18.600.00");
    f.once(&canary);
    let path = format!("/api/v1/rollouts/{id}");
    let before = eventually("the canary counted healthy", || {
        let v = f.api("GET", &path, None);
        match v["waves"][0]["healthy"] == 1 {
            true => Ok(v),
            false => Err(format!("{v:#}")),
        }
    });
    f.kill_manager();
    f.start_manager();
    let after = f.api("GET", &path, None);
    for field in [
        "state",
        "wave",
        "waves",
        "hosts",
        "component",
        "version",
        "created",
    ] {
        assert_eq!(
            after[field], before[field],
            "{field} after kill -9: {after:#}"
        );
    }
    // The restarted manager's gates still hold wave 2 back (soak), and an abort with rollback
    // reaches the canary, whose return to the old version is cut short by a crash mid-swap.
    f.once(&prod);
    assert_eq!(f.pattern("prod-1"), "good 18.524.00");
    // Answered at once: the next heartbeat already carries the withheld version.
    f.api("POST", &format!("{path}/abort-and-roll-back"), None);
    let crashed = f
        .bed
        .once_env(&canary, &[("UPDRAFT_FAULT", "install-mid-swap")]);
    assert!(crashed.is_err(), "{crashed:?}");
    f.once(&canary);
    assert_eq!(f.pattern("canary-1"), "good 18.524.00");
    let host = eventually("the manager sees the canary back", || {
        let hosts = f.api("GET", "/api/v1/hosts?group=canary", None);
        let h = hosts["hosts"][0].clone();
        match h["components"][C] == "18.524.00" {
            true => Ok(h),
            false => Err(format!("{hosts:#}")),
        }
    });
    assert_eq!(host["hostname"], "canary-1");
}

#[test]
fn without_word_from_the_manager_holds_last_the_lease_then_the_group_channel_decides() {
    let f = Fleet::with(&["--decision-lease", "60"]);
    good_base(&f);
    let prod = f.agent("prod-1", "fleet");
    f.rollout(
        json!([{"groups": ["canary"], "share": 100, "soak": 3600}, {"share": 100, "soak": 0}]),
        900,
    );
    f.once(&prod);
    f.publish_new(b"good 18.600.00");
    let stored = f.bed.path("prod-1/state/policy.json");
    let policy: Value = serde_json::from_slice(&std::fs::read(&stored).unwrap()).unwrap();
    assert_eq!(policy["decision_lease"], 60, "{policy:#}");
    assert_eq!(policy["holds"][C], NEW, "{policy:#}");
    f.kill_manager();
    // Within the lease the hold stands although the manager is gone.
    let r = f.bed.once(&prod).unwrap();
    assert!(!r["manager_error"].is_null(), "{r:#}");
    assert_eq!(f.pattern("prod-1"), "good 18.524.00");
    // The host's clock moves past the lease (the file's time says when the manager last
    // confirmed the policy): the hold lapses and the group's channel (latest) decides.
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(61);
    std::fs::File::options()
        .write(true)
        .open(&stored)
        .unwrap()
        .set_modified(past)
        .unwrap();
    let r = f.bed.once(&prod).unwrap();
    assert_eq!(f.pattern("prod-1"), "good 18.600.00", "{r:#}");
    // Back in touch, the hold is in force again; like every hold it never downgrades what
    // runs, and the manager learns what the host took.
    f.start_manager();
    f.once(&prod);
    let policy: Value = serde_json::from_slice(&std::fs::read(&stored).unwrap()).unwrap();
    assert_eq!(policy["holds"][C], NEW, "{policy:#}");
    let hosts = f.api("GET", "/api/v1/hosts?group=fleet", None);
    assert_eq!(hosts["hosts"][0]["components"][C], NEW, "{hosts:#}");
}

/// `DAYS HH:MM-HH:MM` for an hour that starts two hours from now (UTC): closed now.
fn closed_window() -> String {
    let h = (time::OffsetDateTime::now_utc().hour() + 2) % 24;
    format!(
        "mon,tue,wed,thu,fri,sat,sun {h:02}:00-{:02}:00 +00:00",
        (h + 1) % 24
    )
}

#[test]
fn outside_the_maintenance_window_an_engine_waits_unless_urgent_and_a_pattern_never_does() {
    let f = Fleet::new();
    good_base(&f);
    let w = closed_window();
    f.admin(&["group", "put", "night", "--window", &w]);
    let a = f.agent("host-1", "night");
    f.bed.edit_config(&a, |c| {
        c.modules[0].components.push("antimalware.engine".into())
    });
    f.bed
        .repo
        .add("antimalware.engine", "9.0", "engine", b"engine 9.0");
    f.bed.repo.publish();
    let r = f.once(&a);
    assert_eq!(
        f.pattern("host-1"),
        "good 18.524.00",
        "a pattern never waits: {r:#}"
    );
    let engine = f.bed.path("host-1/av/antimalware.engine.dat");
    assert!(!engine.exists(), "the engine waits for the window");
    let status = f.bed.status(&a);
    assert_eq!(
        status["deferred"][0], "antimalware.engine 9.0",
        "{status:#}"
    );
    // The window opens (all day): the waiting engine goes in without a new publication.
    let all_days = "mon,tue,wed,thu,fri,sat,sun";
    f.admin(&[
        "group",
        "put",
        "night",
        "--window",
        &format!("{all_days} 00:00-00:00"),
    ]);
    f.once(&a);
    assert_eq!(std::fs::read(&engine).unwrap(), b"engine 9.0");
    // Closed again, the publisher marks a fix urgent: it goes in at once.
    f.admin(&["group", "put", "night", "--window", &w]);
    let file = f.bed.path("urgent/antimalware.engine.dat");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"engine 9.1").unwrap();
    let repo = f.bed.repo.dir.to_str().unwrap();
    let add = [
        "repo",
        "add",
        repo,
        file.to_str().unwrap(),
        "--component",
        "antimalware.engine",
    ];
    ok(&[
        &add[..],
        &["--version", "9.1", "--kind", "engine", "--urgent"],
    ]
    .concat());
    f.bed.repo.publish();
    f.once(&a);
    assert_eq!(std::fs::read(&engine).unwrap(), b"engine 9.1");
    let bad = f.admin_fails(&["group", "put", "night", "--window", "someday 25:00-26:00"]);
    assert!(bad.contains("--window"), "{bad}");
}

#[test]
fn a_patch_whose_restart_fails_on_the_canary_halts_its_rollout() {
    let f = Fleet::new();
    good_base(&f);
    let canary = f.agent_with("canary-1", "canary", Some("false"));
    let prod = f.agent_with("prod-1", "fleet", Some("true"));
    let id = f.api(
        "POST",
        "/api/v1/rollouts",
        Some(json!({"component": "scanner", "version": "9.5.1519",
            "waves": [{"groups": ["canary"], "share": 100, "soak": 0}, {"share": 100, "soak": 0}]})),
    )["id"]
        .as_i64()
        .unwrap();
    f.once(&canary);
    f.once(&prod);
    f.bed.publish_patch(
        "CP-1519",
        "9.5.1519",
        ">=9.5.1514",
        "9.5.1519",
        "cp.tar",
        &[("bin/scanner", b"patched")],
    );
    f.once(&canary);
    f.once(&prod);
    let halted = f.until(id, "halted");
    let reason = halted["reason"].as_str().unwrap();
    assert!(
        reason.contains("canary-1: patch CP-1519 failed"),
        "{reason}"
    );
    let scanner = |n: &str| std::fs::read(f.bed.path(&format!("{n}/opt/bin/scanner"))).unwrap();
    assert_eq!(
        scanner("canary-1"),
        b"scanner 9.5.1514\n",
        "restored after the failed restart"
    );
    f.once(&prod);
    assert_eq!(
        scanner("prod-1"),
        b"scanner 9.5.1514\n",
        "the fleet never got the patch"
    );
}

mod behind_a_relay;
mod own_builds;
