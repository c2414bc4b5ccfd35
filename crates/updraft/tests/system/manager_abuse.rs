//! The manager under attack by its own hosts and against careless administrators, through the
//! real `updraft manager` and `updraft admin`: one host credential cannot fill the database or
//! the answers, host-controlled strings cannot drive the administrator's terminal, an enrolment
//! token decides the role, policy is validated and audited as stored, authentication failures
//! are logged without flooding the log.

use crate::common::*;
use serde_json::{json, Value};
use updraft::launch::{self, Logs};

struct Mgr {
    server: launch::Server,
    db: String,
    admin: String,
    log: std::path::PathBuf,
}

/// A manager with a small history bound and heartbeat burst, an agent group `lab` and a relay
/// group `core`.
fn manager(tmp: &std::path::Path, extra: &[&str]) -> Mgr {
    let db = format!("sqlite://{}", tmp.join("manager.db").to_str().unwrap());
    let admin = ok(&["admin", "--db", &db, "token", "create", "--name", "alice"])
        .trim()
        .to_string();
    ok(&["admin", "--db", &db, "group", "put", "lab"]);
    ok(&[
        "admin", "--db", &db, "group", "put", "core", "--role", "relay",
    ]);
    let log = tmp.join("manager.log");
    let mut args = vec!["manager", "--db", &db, "--listen", "127.0.0.1:0"];
    args.extend(extra);
    let server = launcher()
        .server(&args, &[], Logs::File(log.clone()))
        .unwrap();
    Mgr {
        server,
        db,
        admin,
        log,
    }
}

impl Mgr {
    fn token(&self, group: &str) -> String {
        enroll_token(&self.db, group, Some(5)).trim().to_string()
    }

    fn enroll(&self, token: &str, hostname: &str, role: &str) -> (u16, Value) {
        let r = http()
            .post(format!("{}/api/v1/enroll", self.server.base))
            .bearer_auth(token)
            .json(&json!({"hostname": hostname, "role": role}))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    fn agent(&self, hostname: &str) -> (String, String) {
        let (status, v) = self.enroll(&self.token("lab"), hostname, "agent");
        assert_eq!(status, 200, "{v}");
        (
            v["host_id"].as_str().unwrap().into(),
            v["credential"].as_str().unwrap().into(),
        )
    }

    fn beat(&self, cred: &str, body: &Value) -> reqwest::blocking::Response {
        http()
            .post(format!("{}/api/v1/heartbeat", self.server.base))
            .bearer_auth(cred)
            .json(body)
            .send()
            .unwrap()
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let r = http()
            .get(format!("{}{path}", self.server.base))
            .bearer_auth(&self.admin)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = http()
            .put(format!("{}{path}", self.server.base))
            .bearer_auth(&self.admin)
            .json(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }
}

fn entries(from: usize, n: usize) -> Vec<Value> {
    (from..from + n)
        .map(|i| {
            json!({"time": "2031-01-02T03:04:05Z", "patch_id": format!("CP-{i}"), "product": "scanner",
                   "from_build": "9.5.1", "to_build": "9.5.2", "outcome": "applied", "message": ""})
        })
        .collect()
}

#[test]
fn one_host_credential_cannot_fill_the_database_or_the_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manager(
        tmp.path(),
        &[
            "--history-per-host",
            "1500",
            "--heartbeat-burst",
            "4",
            "--heartbeats-per-minute",
            "1",
        ],
    );
    let (id, cred) = m.agent("stolen");
    let hb =
        |history: Vec<Value>| json!({"hostname": "stolen", "role": "agent", "history": history});
    // The same entries sent twice are stored once.
    for _ in 0..2 {
        assert_eq!(m.beat(&cred, &hb(entries(0, 10))).status(), 200);
    }
    assert_eq!(m.get(&format!("/api/v1/hosts/{id}")).1["history_count"], 10);
    // Full heartbeats: the history keeps the newest 1500 of this host.
    assert_eq!(m.beat(&cred, &hb(entries(10, 1000))).status(), 200);
    assert_eq!(m.beat(&cred, &hb(entries(1010, 1000))).status(), 200);
    // The burst is spent: the next heartbeat is refused with a time to come back.
    let r = m.beat(&cred, &hb(entries(2010, 1000)));
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Another host is not limited by this one.
    let (_, other) = m.agent("honest");
    assert_eq!(
        m.beat(&other, &json!({"hostname": "honest", "role": "agent"}))
            .status(),
        200
    );

    let (status, v) = m.get(&format!("/api/v1/hosts/{id}"));
    assert_eq!(status, 200);
    assert_eq!(v["history_count"], 1500, "kept per host: the newest");
    assert_eq!(
        v["hotfix_history"].as_array().unwrap().len(),
        100,
        "default page"
    );
    assert!(v["reported_fields"]
        .as_array()
        .unwrap()
        .contains(&json!("hotfix_history")));
    // Paging through the history: bounded pages, a cursor, every entry once, the newest kept.
    let mut after = String::new();
    let mut seen = Vec::new();
    for _ in 0..20 {
        let (_, p) = m.get(&format!("/api/v1/hosts/{id}?limit=1000{after}"));
        seen.extend(
            p["hotfix_history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["patch_id"].clone()),
        );
        match p["history_next"].as_str() {
            Some(n) => after = format!("&after={n}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 1500);
    assert_eq!(
        (&seen[0], &seen[1499]),
        (&json!("CP-510"), &json!("CP-2009"))
    );
    let (status, v) = m.get(&format!("/api/v1/hosts/{id}?limit=100000"));
    assert_eq!((status, v["field"].as_str()), (400, Some("limit")), "{v}");
    let (_, hosts) = m.get("/api/v1/hosts?limit=1");
    assert_eq!(hosts["count"], 1);
    let (_, rest) = m.get(&format!(
        "/api/v1/hosts?limit=1&after={}",
        hosts["next"].as_str().unwrap()
    ));
    assert_eq!(rest["count"], 1);
    assert!(rest["next"].is_null());
    assert_ne!(hosts["hosts"][0]["id"], rest["hosts"][0]["id"]);
}

#[test]
fn host_strings_with_escape_sequences_are_refused_or_escaped_when_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manager(tmp.path(), &[]);
    let evil = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J";
    let (status, v) = m.enroll(&m.token("lab"), evil, "agent");
    assert_eq!(
        (status, v["field"].as_str()),
        (400, Some("hostname")),
        "{v}"
    );
    let (id, cred) = m.agent("web-1");
    for (body, field) in [
        (json!({"hostname": evil, "role": "agent"}), "hostname"),
        (
            json!({"hostname": "web-1", "role": "agent", "upstream": evil}),
            "upstream",
        ),
        (
            json!({"hostname": "web-1", "role": "agent", "builds": {evil: "1.0"}}),
            "builds",
        ),
        (
            json!({"hostname": "web-1", "role": "agent", "modules": [{"name": evil, "status": "online"}]}),
            "modules[0].name",
        ),
        (
            json!({"hostname": "web-1", "role": "agent", "history": [{"time": "t", "patch_id": evil,
                   "product": "p", "from_build": "1", "to_build": "2", "outcome": "applied", "message": ""}]}),
            "history[0].patch_id",
        ),
    ] {
        let r = m.beat(&cred, &body);
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().unwrap();
        assert_eq!(v["field"], field, "{v}");
    }
    // Free text is kept as the host sent it, and escaped when the CLI prints it.
    let body = json!({"hostname": "web-1", "role": "agent", "last_result": evil,
        "history": [{"time": "t", "patch_id": "CP-1", "product": "p", "from_build": "1",
                     "to_build": "2", "outcome": "failed", "message": evil}]});
    assert_eq!(m.beat(&cred, &body).status(), 200);
    assert_eq!(
        m.get(&format!("/api/v1/hosts/{id}")).1["hotfix_history"][0]["message"],
        evil
    );
    let table = ok(&["admin", "--db", &m.db, "hosts"]);
    assert!(
        !table.contains('\u{1b}') && !table.contains('\u{7}'),
        "{table:?}"
    );
    assert!(table.contains("CP-1 evil\\u{1b}]0;pwned\\u{7}"), "{table}");
    assert!(table.contains("(reported)"), "{table}");
}

#[test]
fn the_enrolment_tokens_group_decides_the_role_and_duplicate_hostnames_are_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manager(tmp.path(), &[]);
    let token = m.token("lab");
    let (status, v) = m.enroll(&token, "sneaky", "relay");
    assert_eq!((status, v["field"].as_str()), (400, Some("role")), "{v}");
    let (_, relays) = m.get("/api/v1/hosts?role=relay");
    assert_eq!(relays["count"], 0, "{relays}");
    // The refused request used nothing of the token; one of the relay group enrols relays.
    assert_eq!(m.enroll(&token, "web-1", "agent").0, 200);
    assert_eq!(m.enroll(&m.token("core"), "relay-1", "relay").0, 200);
    assert_eq!(m.enroll(&m.token("core"), "relay-2", "agent").0, 400);

    assert_eq!(m.enroll(&token, "web-1", "agent").0, 200);
    let (_, v) = m.get("/api/v1/hosts?group=lab");
    let flags: Vec<&Value> = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["duplicate_hostname"])
        .collect();
    assert_eq!(flags, [&json!(true), &json!(true)], "{v}");
    let (_, v) = m.get("/api/v1/hosts?group=core");
    assert_eq!(v["hosts"][0]["duplicate_hostname"], false);
    let table = ok(&["admin", "--db", &m.db, "hosts"]);
    assert_eq!(
        table.matches("web-1 (duplicate hostname)").count(),
        2,
        "{table}"
    );
}

#[test]
fn administrator_policy_is_validated_and_audited_as_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manager(tmp.path(), &[]);
    for (group, field) in [
        (
            json!({"role": "agent", "poll_interval": 9223372036854775808u64}),
            "poll_interval",
        ),
        (
            json!({"role": "agent", "poll_interval": 0}),
            "poll_interval",
        ),
        (
            json!({"role": "agent", "relays": ["ftp://relay"]}),
            "relays[0]",
        ),
        (
            json!({"role": "agent", "relays": ["https://"]}),
            "relays[0]",
        ),
        (
            json!({"role": "agent", "pinned": {"Not A Component": "1.0"}}),
            "pinned",
        ),
        (
            json!({"role": "agent", "pinned": {"antimalware.engine": "latest"}}),
            "pinned.antimalware.engine",
        ),
    ] {
        let (status, v) = m.put("/api/v1/groups/bad", &group);
        assert_eq!(
            (status, v["field"].as_str()),
            (400, Some(field)),
            "{group}: {v}"
        );
    }
    let (_, groups) = m.get("/api/v1/groups");
    assert!(
        !groups.to_string().contains("\"bad\""),
        "nothing stored: {groups}"
    );
    let e = fails(&[
        "admin",
        "--db",
        &m.db,
        "group",
        "put",
        "x",
        "--poll-interval",
        "9223372036854775808",
    ]);
    assert!(e.contains("poll_interval"), "{e}");
    let e = fails(&[
        "admin",
        "--db",
        &m.db,
        "enroll-token",
        "create",
        "--group",
        "lab",
        "--expires",
        "4000000",
    ]);
    assert!(e.contains("expires") && e.contains("3650"), "{e}");

    let good = json!({"role": "agent", "relays": ["https://relay-1.example:8443"], "poll_interval": 60,
                      "pinned": {"antimalware.engine": "12.0.1"}});
    assert_eq!(m.put("/api/v1/groups/branch", &good).0, 200);
    let (status, v) = m.get("/api/v1/audit?limit=1");
    assert_eq!(status, 200);
    let last = &v["audit"][0];
    assert_eq!(last["actor"], "admin alice", "{v}");
    let stored: Value = serde_json::from_str(last["detail"].as_str().unwrap()).unwrap();
    assert_eq!(stored["poll_interval"], 60);
    assert_eq!(stored["relays"], json!(["https://relay-1.example:8443"]));
    let (_, older) = m.get(&format!(
        "/api/v1/audit?limit=1&after={}",
        v["next"].as_str().unwrap()
    ));
    assert_ne!(older["audit"][0]["id"], last["id"]);
}

#[test]
fn authentication_failures_are_logged_without_flooding_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manager(tmp.path(), &["--failure-delay-ms", "0"]);
    for _ in 0..50 {
        let r = http()
            .get(format!("{}/api/v1/hosts", m.server.base))
            .bearer_auth("upd_admin_forged")
            .send()
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let log = eventually("the failure logged", || {
        let log = std::fs::read_to_string(&m.log).unwrap_or_default();
        if log.contains("authentication failed") {
            Ok(log)
        } else {
            Err(format!("log: {log:?}"))
        }
    });
    let lines = log.matches("authentication failed").count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} lines for 50 failures: {log}"
    );
}
