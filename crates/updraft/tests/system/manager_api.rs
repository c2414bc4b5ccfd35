//! The manager over real HTTP: every route but /healthz needs a credential (401 without or with a
//! forged one, 403 for a host credential on administrator routes, repeated failures slowed down);
//! enrolment, heartbeats with validation and policy replies, the fleet questions, the audit log.
use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::path::Path;

struct Mgr {
    server: Server,
    db: String,
    admin: String,
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn manager(tmp: &Path, offline_after: &str) -> Mgr {
    manager_with(tmp, offline_after, "100")
}

fn manager_with(tmp: &Path, offline_after: &str, failure_delay_ms: &str) -> Mgr {
    let db = format!("sqlite://{}", s(&tmp.join("manager.db")));
    let admin = ok(&["admin", "--db", &db, "token", "create", "--name", "ops"])
        .trim()
        .to_string();
    let server = Server::spawn(
        &[
            "manager",
            "--db",
            &db,
            "--listen",
            "127.0.0.1:0",
            "--offline-after",
            offline_after,
            "--failure-delay-ms",
            failure_delay_ms,
        ],
        &[],
    );
    Mgr { server, db, admin }
}

impl Mgr {
    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.server.base)
    }
    fn get(&self, p: &str) -> serde_json::Value {
        let r = http()
            .get(self.url(p))
            .bearer_auth(&self.admin)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{p}");
        serde_json::from_slice(&r.bytes().unwrap()).unwrap()
    }
    fn put(&self, p: &str, body: serde_json::Value) {
        let r = http()
            .put(self.url(p))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{p}: {}", r.text().unwrap());
    }
    fn enroll(&self, group: &str, hostname: &str, role: &str) -> (String, String) {
        let token = enroll_token(&self.db, group, None).trim().to_string();
        let r = http()
            .post(self.url("/api/v1/enroll"))
            .bearer_auth(&token)
            .json(&json!({"hostname": hostname, "role": role}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
        (
            v["host_id"].as_str().unwrap().to_string(),
            v["credential"].as_str().unwrap().to_string(),
        )
    }
    fn beat(&self, cred: &str, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
        let r = http()
            .post(self.url("/api/v1/heartbeat"))
            .bearer_auth(cred)
            .json(&body)
            .send()
            .unwrap();
        let st = r.status();
        (
            st,
            serde_json::from_slice(&r.bytes().unwrap()).unwrap_or(serde_json::Value::Null),
        )
    }
}

/// The running binary documents exactly the routes of `manager::api::ROUTES` (the table the
/// router is built from), and every route but /healthz refuses a request without the right
/// credential.
#[test]
fn every_route_but_healthz_requires_the_right_credential() {
    use manager::api::{Access, ROUTES};
    use manager::db::UserRole;
    let tmp = tempfile::tempdir().unwrap();
    // No slow-down here: this test fails authentication on purpose dozens of times.
    let m = manager_with(tmp.path(), "900", "0");
    ok(&["admin", "--db", &m.db, "group", "put", "lab"]);
    let (_, host_cred) = m.enroll("lab", "h1", "agent");
    let token = |role: &str| {
        let t = ok(&[
            "admin", "--db", &m.db, "token", "create", "--name", role, "--role", role,
        ]);
        format!("Bearer {}", t.trim())
    };
    let (auditor, operator) = (token("auditor"), token("operator"));
    let doc = m.get("/api/v1/openapi.json");
    let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let table: std::collections::BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.as_str().to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, table, "{doc:#}");
    assert_eq!(table.len(), ROUTES.len(), "no route is listed twice");
    let c = http();
    for r in ROUTES {
        let (method, path) = (r.method.as_str(), r.path);
        let concrete = path
            .replace("{id}", "x")
            .replace("{name}", "x")
            .replace("{patch_id}", "x");
        let req = |auth: Option<&str>| {
            let b = c.request(method.parse().unwrap(), m.url(&concrete));
            let b = match auth {
                Some(a) => b.header("Authorization", a),
                None => b,
            };
            b.body("{}")
                .header("content-type", "application/json")
                .send()
                .unwrap()
                .status()
        };
        assert_eq!(
            doc["paths"][path][method.to_lowercase()]["x-access"],
            json!(r.access),
            "{method} {path}: documented access"
        );
        if r.access == Access::Public {
            assert_eq!(req(None), 200, "{method} {path}");
            continue;
        }
        assert_eq!(req(None), 401, "{method} {path} without a credential");
        assert_eq!(
            req(Some("Bearer upd_admin_forged0000")),
            401,
            "{method} {path} with a forged credential"
        );
        assert_eq!(
            req(Some("Basic b3BzOm9wcw==")),
            401,
            "{method} {path} with another scheme"
        );
        let Access::Person(need) = r.access else {
            continue;
        };
        assert_eq!(
            req(Some(&format!("Bearer {host_cred}"))),
            403,
            "{method} {path} with a host credential"
        );
        // A person's token of a role below the route's is refused 403; of the role, let in.
        for (role, cred) in [
            (UserRole::Auditor, &auditor),
            (UserRole::Operator, &operator),
        ] {
            let status = req(Some(cred));
            if role < need {
                assert_eq!(status, 403, "{method} {path} as {role}");
            } else {
                assert!(
                    ![401, 403].contains(&status.as_u16()),
                    "{method} {path} as {role}: {status}"
                );
            }
        }
    }
    assert_eq!(
        ROUTES.iter().filter(|r| r.access == Access::Public).count(),
        1,
        "only /healthz is public"
    );
}

#[test]
fn revoked_tokens_fail_and_repeated_failures_are_slowed_down() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manager(tmp.path(), "900");
    let c = http();
    assert_eq!(
        c.get(m.url("/api/v1/hosts"))
            .bearer_auth(&m.admin)
            .send()
            .unwrap()
            .status(),
        200
    );
    // A revoked administrator token stops working.
    let list: serde_json::Value =
        serde_json::from_str(&ok(&["admin", "--db", &m.db, "--json", "token", "list"])).unwrap();
    let id = list[0]["id"].to_string();
    ok(&["admin", "--db", &m.db, "token", "revoke", &id]);
    assert_eq!(
        c.get(m.url("/api/v1/hosts"))
            .bearer_auth(&m.admin)
            .send()
            .unwrap()
            .status(),
        401
    );
    // Repeated failures from one address are slowed down.
    let t = std::time::Instant::now();
    for _ in 0..10 {
        assert_eq!(
            c.get(m.url("/api/v1/hosts"))
                .bearer_auth("nope")
                .send()
                .unwrap()
                .status(),
            401
        );
    }
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(1000),
        "ten failures took {:?}",
        t.elapsed()
    );
}

#[test]
fn enrolment_heartbeats_policy_and_fleet_questions() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manager(tmp.path(), "900");
    m.put(
        "/api/v1/groups/core",
        json!({"role": "relay", "relays": ["http://relay-core:8080"]}),
    );
    m.put(
        "/api/v1/groups/site-a",
        json!({"role": "relay", "parent": "core", "relays": ["http://relay-a:8080"]}),
    );
    m.put(
        "/api/v1/groups/agents-a",
        json!({"role": "agent", "relays": ["http://relay-a:8080", "http://relay-core:8080"], "poll_interval": 120,
               "allow_direct": true, "pinned": {"antimalware.engine": "12.0.1"}}),
    );
    // A group whose parent is an agent group, or that closes a cycle, is refused with the field.
    let r = http()
        .put(m.url("/api/v1/groups/bad"))
        .bearer_auth(&m.admin)
        .json(&json!({"role": "relay", "parent": "agents-a"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("\"field\": \"parent\""));

    let (core_id, core) = m.enroll("core", "relay-core", "relay");
    let (_, site) = m.enroll("site-a", "relay-a", "relay");
    let (a1_id, a1) = m.enroll("agents-a", "agent-1", "agent");
    let (_, a2) = m.enroll("agents-a", "agent-2", "agent");
    // Enrolment tokens are single-purpose secrets: a wrong one is refused.
    let r = http()
        .post(m.url("/api/v1/enroll"))
        .bearer_auth("upd_enroll_wrong")
        .json(&json!({"hostname": "x", "role": "agent"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    let (st, reply) = m.beat(
        &core,
        json!({"hostname": "relay-core", "role": "relay", "builds": {"updraft": "0.1.0"}}),
    );
    assert_eq!(st, 200);
    assert_eq!(reply["policy"]["group"], "core");
    let (_, reply) = m.beat(&site, json!({"hostname": "relay-a", "role": "relay", "builds": {"updraft": "0.2.0"}, "upstream": "http://relay-core:8080"}));
    assert_eq!(
        reply["policy"]["relays"],
        json!(["http://relay-core:8080"]),
        "a relay group's upstreams are its parent's relays"
    );
    let hist = json!([{"time": "2026-11-23T08:00:00Z", "patch_id": "CP-1519", "product": "scanner", "from_build": "9.5.1514",
        "to_build": "9.5.1519", "outcome": "applied", "message": "ok"}]);
    let (_, reply) = m.beat(&a1, json!({"hostname": "agent-1", "role": "agent", "builds": {"updraft": "0.1.0", "scanner": "9.5.1519"},
        "components": {"antimalware.pattern": "18.523.00"}, "upstream": "http://relay-a:8080", "history": hist,
        "modules": [{"name": "antimalware", "status": "online"}], "last_result": "ok"}));
    assert_eq!(
        reply["policy"],
        json!({"group": "agents-a", "relays": ["http://relay-a:8080", "http://relay-core:8080"],
        "poll_interval": 120, "allow_direct": true, "pinned": {"antimalware.engine": "12.0.1"},
        "decision_lease": 86400})
    );
    m.beat(&a2, json!({"hostname": "agent-2", "role": "agent", "builds": {"updraft": "0.9.0", "scanner": "9.5.1200"}}));

    // Malformed bodies: 400 naming the field.
    for (body, field) in [
        (json!({"role": "agent"}), "hostname"),
        (json!({"hostname": "agent-1", "role": "relay"}), "role"),
        (
            json!({"hostname": "agent-1", "role": "agent", "builds": {"scanner": "nine"}}),
            "builds.scanner",
        ),
        (json!({"hostname": "agent-1", "role": "sensor"}), "role"),
        (
            json!({"hostname": "agent-1", "role": "agent", "modules": [{"name": "m"}]}),
            "modules[0].status",
        ),
        (
            json!({"hostname": "agent-1", "role": "agent", "components": {"Bad Name": "1"}}),
            "components",
        ),
    ] {
        let (st, v) = m.beat(&a1, body);
        assert_eq!(st, 400);
        assert_eq!(v["field"], field, "{v}");
    }
    let big = "x".repeat(300 * 1024);
    let r = http()
        .post(m.url("/api/v1/heartbeat"))
        .bearer_auth(&a1)
        .body(big)
        .send()
        .unwrap();
    assert_eq!(r.status(), 413, "bodies are size-limited");

    // Hosts, filters, detail with history.
    let v = m.get("/api/v1/hosts?role=agent");
    assert_eq!(v["count"], 2);
    let v = m.get("/api/v1/hosts?product=scanner&build_below=9.5.1514");
    assert_eq!(v["hosts"][0]["hostname"], "agent-2");
    let v = m.get("/api/v1/hosts?component=antimalware.pattern&version=18.523.00");
    assert_eq!(v["count"], 1);
    let v = m.get(&format!("/api/v1/hosts/{a1_id}"));
    assert_eq!(v["hotfix_history"][0]["patch_id"], "CP-1519");
    assert_eq!(v["status"], "online");

    // Advisory: relays with an updraft build below 0.2.0 are affected: exactly relay-core.
    m.put("/api/v1/advisories/UPD-2026-01", json!({"id": "", "title": "relay parser bug", "role": "relay", "product": "updraft", "affected": "<0.2.0", "fixed": "0.2.0"}));
    let v = m.get("/api/v1/advisories/UPD-2026-01/hosts");
    assert_eq!(v["count"], 1);
    assert_eq!(v["hosts"][0]["id"], core_id.as_str());

    // Patch coverage.
    let v = m.get("/api/v1/patches/CP-1519/coverage?product=scanner&requires_build=%3E%3D9.5.1514");
    assert_eq!(
        v["counts"],
        json!({"have": 1, "eligible_without": 0, "not_eligible": 1, "unknown": 0})
    );
    assert_eq!(v["have"][0]["id"], a1_id.as_str());
    assert!(v["not_eligible"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("9.5.1200"));

    // Upgrade plan: manager, parent relay group, child relay group, agents; agent-2 violates.
    let r = http()
        .post(m.url("/api/v1/upgrade-plan"))
        .bearer_auth(&m.admin)
        .json(&json!({"targets": {"updraft": "1.0.0"}}))
        .send()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    let what: Vec<&str> = v["steps"]
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
            "relay group site-a",
            "agent group agents-a"
        ],
        "{v:#}"
    );
    assert_eq!(v["violations"][0]["hostname"], "agent-2");
    // The CLI answers the same questions.
    let out = ok(&["admin", "--db", &m.db, "advisory", "hosts", "UPD-2026-01"]);
    assert!(
        out.contains("relay-core") && !out.contains("relay-a "),
        "{out}"
    );
    let out = ok(&["admin", "--db", &m.db, "hosts", "--role", "agent"]);
    assert!(
        out.contains("agent-1") && out.contains("antimalware online"),
        "{out}"
    );

    // Administrative changes are audited.
    let audit = m.get("/api/v1/audit").to_string();
    assert!(
        audit.contains("group-put") && audit.contains("advisory-put") && audit.contains("enroll"),
        "{audit}"
    );
}

#[test]
fn hosts_missing_heartbeats_turn_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manager(tmp.path(), "1");
    ok(&["admin", "--db", &m.db, "group", "put", "lab"]);
    let (id, cred) = m.enroll("lab", "quiet", "agent");
    m.beat(&cred, json!({"hostname": "quiet", "role": "agent"}));
    let v = eventually("the quiet host to turn offline", || {
        let v = m.get(&format!("/api/v1/hosts/{id}"));
        if v["status"] == "offline" {
            Ok(v)
        } else {
            Err(v)
        }
    });
    assert!(
        v["host"]["last_seen"].is_string(),
        "offline hosts show when they were last seen: {v}"
    );
    m.beat(&cred, json!({"hostname": "quiet", "role": "agent"}));
    assert_eq!(m.get(&format!("/api/v1/hosts/{id}"))["status"], "online");
}
