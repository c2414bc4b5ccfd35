//! System scenarios with real processes around a manager:
//! - advisory: "relays with updraft below 0.2.0" lists exactly the two relays; the upgrade plan
//!   orders the manager, the parent relay group, the child relay group, then the agents;
//! - relay failure: the parent relay is killed and agents fail over; with every relay down the
//!   agent allowed to go direct updates from the origin and the others report "update source
//!   unreachable" in the manager;
//! - air-gapped site: a bundle exported from a connected relay is imported into an isolated
//!   relay; its agent updates and the manager shows it once it can report.
use crate::common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use updraft::launch::{agent_config_toml, AgentSetup, ManagerLink, ModuleSetup};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Fleet {
    bed: AgentBed,
    db: String,
    admin: String,
    mgr: Server,
}

impl Fleet {
    fn token(&self, group: &str, name: &str) -> PathBuf {
        let t = enroll_token(&self.db, group, None);
        let p = self.bed.path(&format!("{name}.token"));
        std::fs::write(&p, t.trim()).unwrap();
        p
    }
    fn api(&self, p: &str) -> serde_json::Value {
        serde_json::from_slice(
            &http()
                .get(format!("{}{p}", self.mgr.base))
                .bearer_auth(&self.admin)
                .send()
                .unwrap()
                .bytes()
                .unwrap(),
        )
        .unwrap()
    }
    /// An agent configuration in its own directory, reporting to the manager.
    fn agent(&self, name: &str, group: &str, relays: Vec<String>, allow_direct: bool) -> PathBuf {
        let home = self.bed.path(name);
        std::fs::create_dir_all(&home).unwrap();
        let cfg = agent_config_toml(&AgentSetup {
            state_dir: home.join("state"),
            trusted_root: self.bed.repo.root_v1.clone(),
            relays,
            origin: Some(self.bed.origin.base.clone()),
            allow_direct,
            manager: Some(ManagerLink {
                url: self.mgr.base.clone(),
                enroll_token_file: self.token(group, name),
                hostname: name.into(),
            }),
            modules: vec![ModuleSetup {
                name: "antimalware".into(),
                components: vec!["antimalware.pattern".into()],
                install_dir: home.join("av"),
                reload: None,
                self_upgrade: false,
            }],
            ..AgentSetup::default()
        });
        let path = home.join("agent.toml");
        std::fs::write(&path, cfg.unwrap()).unwrap();
        path
    }
    fn pattern(&self, agent: &str) -> String {
        String::from_utf8(
            std::fs::read(self.bed.path(agent).join("av/antimalware.pattern.dat")).unwrap(),
        )
        .unwrap()
    }
}

fn relay(f: &Fleet, name: &str, upstream: &str, port: u16, group: &str) -> Server {
    let (tok, cache) = (f.token(group, name), f.bed.path(&format!("{name}-cache")));
    Server::spawn(
        &[
            "relay",
            "--upstream",
            upstream,
            "--trusted-root",
            s(&f.bed.repo.root_v1),
            "--cache",
            s(&cache),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--poll-interval",
            "1",
            "--manager",
            &f.mgr.base,
            "--enroll-token-file",
            s(&tok),
            "--hostname",
            name,
        ],
        &[],
    )
}

fn timestamp(dir: &Path) -> u64 {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metadata/timestamp.json")).unwrap())
            .unwrap();
    v["signed"]["version"].as_u64().unwrap()
}

#[test]
fn advisory_plan_relay_failure_and_air_gapped_site() {
    let bed = AgentBed::new();
    let db = format!("sqlite://{}", s(&bed.path("manager.db")));
    let admin = ok(&["admin", "--db", &db, "token", "create"])
        .trim()
        .to_string();
    let mgr = Server::spawn(&["manager", "--db", &db, "--listen", "127.0.0.1:0"], &[]);
    let f = Fleet {
        bed,
        db,
        admin,
        mgr,
    };
    let (pp, cp) = (free_port(), free_port());
    let (parent_url, child_url) = (
        format!("http://127.0.0.1:{pp}"),
        format!("http://127.0.0.1:{cp}"),
    );
    for args in [
        vec![
            "group",
            "put",
            "core",
            "--role",
            "relay",
            "--relay",
            &parent_url,
        ],
        vec![
            "group", "put", "site", "--role", "relay", "--parent", "core", "--relay", &child_url,
        ],
        vec!["group", "put", "office"],
        vec!["group", "put", "roaming", "--allow-direct"],
        vec!["group", "put", "isolated"],
    ] {
        let mut a = vec!["admin", "--db", f.db.as_str()];
        a.extend(args);
        ok(&a);
    }
    let parent = relay(&f, "relay-parent", &f.bed.origin.base, pp, "core");
    let child = relay(&f, "relay-child", &parent_url, cp, "site");
    let t0 = timestamp(&f.bed.repo.dir);
    wait_status(&child.base, "child relay synced", |v| {
        v["trusted_versions"]["timestamp"].as_u64() == Some(t0)
    });
    let office = f.agent(
        "agent-office",
        "office",
        vec![parent_url.clone(), child_url.clone()],
        false,
    );
    let roaming = f.agent("agent-roaming", "roaming", vec![child_url.clone()], false);
    for cfg in [&office, &roaming] {
        let r = f.bed.once(cfg).unwrap();
        assert!(r["manager_error"].is_null(), "{r:#}");
    }
    assert_eq!(f.pattern("agent-office"), "pattern 18.523.00");

    // Advisory and upgrade plan over what the processes reported.
    let r = http()
        .put(format!("{}/api/v1/advisories/UPD-1", f.mgr.base))
        .bearer_auth(&f.admin)
        .json(&json!({"id": "UPD-1", "title": "relay bug", "role": "relay", "product": "updraft", "affected": "<0.2.0"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut affected = eventually("two hosts affected by the advisory", || {
        let v = f.api("/api/v1/advisories/UPD-1/hosts");
        let affected: Vec<String> = v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["hostname"].as_str().unwrap().to_string())
            .collect();
        if affected.len() >= 2 {
            Ok(affected)
        } else {
            Err(format!("{v:#}"))
        }
    });
    affected.sort();
    assert_eq!(
        affected,
        ["relay-child", "relay-parent"],
        "exactly the relays, no agent"
    );
    let plan: serde_json::Value = serde_json::from_slice(
        &http()
            .post(format!("{}/api/v1/upgrade-plan", f.mgr.base))
            .bearer_auth(&f.admin)
            .json(&json!({"targets": {"updraft": "0.2.0"}}))
            .send()
            .unwrap()
            .bytes()
            .unwrap(),
    )
    .unwrap();
    let what: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["what"].as_str().unwrap())
        .collect();
    assert_eq!(
        what,
        [
            "manager",
            "relay group core",
            "relay group site",
            "agent group office",
            "agent group roaming"
        ],
        "{plan:#}"
    );

    // Relay failure: the parent dies; a new pattern appears at the origin.
    parent.kill();
    f.bed.repo.add(
        "antimalware.pattern",
        "18.600.00",
        "pattern",
        b"pattern 18.600.00",
    );
    f.bed.repo.publish();
    let r = f.bed.once(&office).unwrap();
    assert_eq!(
        r["source"],
        child_url.as_str(),
        "the office agent fails over to the child relay"
    );
    // Every relay down: the roaming agent (direct allowed by its group's policy) updates from
    // the origin, the office agent reports the source unreachable.
    child.kill();
    let r = f.bed.once(&roaming).unwrap();
    assert_eq!(r["source"], f.bed.origin.base.as_str(), "{r:#}");
    assert_eq!(f.pattern("agent-roaming"), "pattern 18.600.00");
    f.bed.once(&office).unwrap();
    let hosts = f.api("/api/v1/hosts?role=agent");
    let office_host = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hostname"] == "agent-office")
        .unwrap();
    let reason = office_host["modules"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("update source unreachable since"),
        "{reason}"
    );

    // Air-gapped site: export from a connected relay cache, import into an isolated relay.
    let connected = f.bed.path("connected");
    relay_once(&[&f.bed.origin.base], &f.bed.repo.root_v1, &connected).unwrap();
    let bundle = f.bed.path("site.tar");
    ok(&[
        "relay",
        "export",
        "--cache",
        s(&connected),
        "--out",
        s(&bundle),
    ]);
    let isolated_cache = f.bed.path("isolated-cache");
    ok(&[
        "relay",
        "import",
        "--cache",
        s(&isolated_cache),
        "--trusted-root",
        s(&f.bed.repo.root_v1),
        s(&bundle),
    ]);
    let isolated = relay_offline(&f.bed.repo.root_v1, &isolated_cache);
    let air = f.agent(
        "agent-airgap",
        "isolated",
        vec![isolated.base.clone()],
        false,
    );
    let r = f.bed.once(&air).unwrap();
    assert_eq!(r["source"], isolated.base.as_str());
    assert_eq!(f.pattern("agent-airgap"), "pattern 18.600.00");
    let hosts = f.api("/api/v1/hosts?group=isolated");
    assert_eq!(
        hosts["hosts"][0]["components"]["antimalware.pattern"], "18.600.00",
        "the manager shows it once it reports"
    );
    assert_eq!(timestamp(&f.bed.repo.dir), t0 + 1);
}
